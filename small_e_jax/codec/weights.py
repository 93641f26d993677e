"""Save and load converted codec parameters (DAC or EnCodec): ``model.safetensors`` + ``config.json`` in a directory.

Why safetensors rather than orbax: these are fixed inference weights, not training state. A
single safetensors file is a flat ``name -> tensor`` map that any framework can read (it stays
inspectable with PyTorch/numpy), holds no pickled code (safe to load from strangers), loads
lazily/mmap'd, and is not tied to orbax's directory layout or version. Our names are the NNX
state paths joined with ``.`` (e.g. ``decoder.blocks.0.conv_t.kernel``) and the arrays are in our
layout (channels-last kernels, weight norm folded), so loading is a plain copy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "small_e_jax.codec.dac"
FORMAT_ENCODEC = "small_e_jax.codec.encodec"
FORMAT_VERSION = 1

# The codec models register themselves here (``dac.py``: FORMAT, ``encodec.py``: FORMAT_ENCODEC)
# so that this module sits below both and imports neither; the package's ``__init__`` imports
# both, so both are registered before any function here runs.
AnyConfig = Any  # a DACConfig or an EncodecConfig
AnyModel = Any  # a DAC or an EnCodec


@dataclasses.dataclass(frozen=True)
class _Kind:
    config_type: type
    model_type: type
    abstract_model: Callable[..., Any]  # (cfg, *, precision) -> model without memory


_KINDS: dict[str, _Kind] = {}


def register(format_name: str, config_type: type, model_type: type, abstract_model: Callable[..., Any]) -> None:
    """Tie a ``format`` string of ``config.json`` to a codec's config class, model class and
    ``abstract_model(cfg, *, precision)``."""
    _KINDS[format_name] = _Kind(config_type, model_type, abstract_model)


def _format_of(cfg: AnyConfig) -> str:
    return FORMAT_ENCODEC if isinstance(cfg, _KINDS[FORMAT_ENCODEC].config_type) else FORMAT


def _abstract(cfg: AnyConfig, precision: str) -> AnyModel:
    return _KINDS[_format_of(cfg)].abstract_model(cfg, precision=precision)


def _flat_params(model: AnyModel) -> dict[str, Any]:
    """``{dotted name: Param variable}`` for every parameter of ``model``."""
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {".".join(str(k) for k in path): var for path, var in flat}


def param_shapes(cfg: AnyConfig) -> dict[str, tuple[int, ...]]:
    """The parameter names and shapes a model of ``cfg`` has (no memory allocated)."""
    return {name: tuple(var.shape) for name, var in _flat_params(_abstract(cfg, "highest")).items()}


def model_to_arrays(model: AnyModel) -> dict[str, np.ndarray]:
    """``{dotted name: float32 numpy array}`` of a model's parameters."""
    return {name: np.asarray(jax.device_get(var[...]), np.float32) for name, var in _flat_params(model).items()}


def model_from_arrays(cfg: AnyConfig, arrays: Mapping[str, np.ndarray], *, precision: str = "highest"
                      ) -> AnyModel:
    """Build a :class:`DAC` (or :class:`EnCodec`) of ``cfg`` holding ``arrays``; names and shapes must match."""
    model = _abstract(cfg, precision)
    params = _flat_params(model)
    missing = sorted(set(params) - set(arrays))
    unexpected = sorted(set(arrays) - set(params))
    if missing or unexpected:
        raise ValueError(f"parameters do not match the {type(cfg).__name__}: missing {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
                         f"{' ...' if len(unexpected) > 8 else ''}")
    for name, var in params.items():
        value = np.asarray(arrays[name])
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"parameter {name} has shape {tuple(value.shape)}, the config needs {tuple(var.shape)}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"parameter {name} holds NaN/inf values")
        var.set_value(jnp.asarray(value, jnp.float32))
    return model


def save_dac(directory: str | Path, cfg: AnyConfig, arrays: Mapping[str, np.ndarray],
             extra: Optional[Mapping[str, Any]] = None, *, overwrite: bool = False) -> Path:
    """Write ``arrays`` (checked against ``cfg``) and the config to ``directory``; returns it.

    Works for both codecs: the ``format`` written is ``small_e_jax.codec.dac`` or
    ``small_e_jax.codec.encodec`` after the type of ``cfg``.
    """
    from safetensors.numpy import save_file

    model_from_arrays(cfg, arrays)  # validates names, shapes and values before anything is written
    directory = Path(directory)
    for f in (WEIGHTS_FILE, CONFIG_FILE):
        if (directory / f).exists() and not overwrite:
            raise ValueError(f"{directory / f} already exists; choose another directory or overwrite")
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in arrays.items()}, str(directory / WEIGHTS_FILE),
              metadata={"format": _format_of(cfg), "format_version": str(FORMAT_VERSION)})
    meta = {"format": _format_of(cfg), "format_version": FORMAT_VERSION, "config": cfg.to_dict(), **dict(extra or {})}
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return directory


def save_model(directory: str | Path, model: AnyModel, **kwargs: Any) -> Path:
    """Save an in-memory :class:`DAC` or :class:`EnCodec` (e.g. a random one in tests)."""
    return save_dac(directory, model.config, model_to_arrays(model), **kwargs)


def load_config(directory: str | Path) -> AnyConfig:
    """Read ``config.json`` of a converted model directory (a :class:`DACConfig` or :class:`EncodecConfig`)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{path} not found: convert official weights first "
                         "(python -m small_e_jax.codec.convert --from weights.pth --to DIR)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") not in (FORMAT, FORMAT_ENCODEC) or "config" not in meta:
        raise ValueError(f"{path} is not a {FORMAT} config (no 'format': '{FORMAT}' / 'config' keys)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {meta.get('format_version')!r}; this code reads {FORMAT_VERSION}")
    return _KINDS[meta["format"]].config_type.from_dict(meta["config"])


def load_dac(directory: str | Path, *, n_q: Optional[int] = None, precision: str = "highest") -> AnyModel:
    """Load a converted model directory into a :class:`DAC` (``n_q`` overrides the stored one)."""
    model = load_model(directory, n_q=n_q, precision=precision)
    if not isinstance(model, _KINDS[FORMAT].model_type):
        raise ValueError(f"{directory} holds an EnCodec model, not DAC (use load_encodec / EncodecCodec)")
    return model


def load_encodec(directory: str | Path, *, n_q: Optional[int] = None, precision: str = "highest") -> AnyModel:
    """Load a converted EnCodec directory into an :class:`EnCodec` (``n_q`` overrides the stored one)."""
    model = load_model(directory, n_q=n_q, precision=precision)
    if not isinstance(model, _KINDS[FORMAT_ENCODEC].model_type):
        raise ValueError(f"{directory} holds a DAC model, not EnCodec (use load_dac / DACCodec)")
    return model


def load_model(directory: str | Path, *, n_q: Optional[int] = None, precision: str = "highest") -> AnyModel:
    """Load whichever codec model (DAC or EnCodec) a converted directory holds."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    cfg = load_config(directory)
    if n_q is not None:
        cfg = cfg.replace(n_q=n_q)
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise ValueError(f"{path} not found")
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from None
    return model_from_arrays(cfg, arrays, precision=precision)
