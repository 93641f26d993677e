"""Convert an official DAC or EnCodec 24 kHz PyTorch checkpoint into our Flax parameters.

Usage::

    python -m small_e_jax.codec.convert --from weights_24khz.pth --to checkpoints/dac_24khz [--n-q 4]
    python -m small_e_jax.codec.convert --from encodec_24khz-d7cc33bc.th --to checkpoints/encodec_24khz

Where the weights come from: the official checkpoints are published as assets of the
descript-audio-codec GitHub releases (https://github.com/descriptinc/descript-audio-codec/releases):
``0.0.5/weights_16khz.pth``, ``0.0.4/weights_24khz.pth``, ``0.0.1/weights.pth`` (44.1 kHz, 8 kbps)
and ``1.0.0/weights_44khz_16kbps.pth``. Download one by hand (the weights are MIT-licensed);
nothing in this project downloads them.

Input: a ``torch.save``-d dict ``{"state_dict": ..., "metadata": {"kwargs": {...}}}`` as written by
``DAC.save(path, package=False)`` (a bare state dict also works; then the architecture is read from
the tensor shapes and ``--sample-rate`` is required). It is read with ``torch.load(...,
weights_only=True)`` — no pickled code runs. PyTorch (CPU is enough) is needed for this command
only: ``pip install torch==2.13.0`` (see requirements-oracle.txt).

**EnCodec 24 kHz** (``--model encodec``, or detected from the ``quantizer.vq.layers.*`` keys): the
official checkpoint ``encodec_24khz-d7cc33bc.th`` (MIT) is published at
https://dl.fbaipublicfiles.com/encodec/v0/encodec_24khz-d7cc33bc.th (the URL Meta's ``encodec``
package downloads it from). Download it by hand; it is a bare state dict (weight-norm convs, LSTMs,
codebook buffers). Its sample rate is not stored: 24 kHz is assumed (``--sample-rate`` overrides);
``--n-q`` defaults to 4 (3 kbps). The codebooks' training buffers (``inited``, ``cluster_size``,
``embed_avg``) are dropped; LSTM biases are summed (``bias_ih + bias_hh``).

Output directory: ``model.safetensors`` (our names and layout: channels-last kernels, weight norm
``g * v / ||v||`` folded into plain kernels, the 1x1 quantiser projections as matrices, the
codebooks stacked) and ``config.json`` (the :class:`DACConfig`, the source file and its SHA-256).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from small_e_jax.codec.dac_config import DACConfig
from small_e_jax.codec.encodec import EncodecConfig

# Keyword arguments of the PyTorch DAC that we map onto DACConfig, and ones that we ignore.
_KWARGS = ("sample_rate", "encoder_dim", "encoder_rates", "latent_dim", "decoder_dim", "decoder_rates",
           "n_codebooks", "codebook_size", "codebook_dim")
_IGNORED_KWARGS = ("quantizer_dropout",)


def default_n_q(cfg: DACConfig) -> Optional[int]:
    """Our default codebook count for converted weights: 4 (3 kbps) for 24 kHz, else all."""
    return 4 if cfg.sample_rate == 24_000 and cfg.n_codebooks >= 4 else None


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ValueError("reading a PyTorch checkpoint needs PyTorch; install the CPU build with "
                         "`pip install torch==2.13.0` (see requirements-oracle.txt)") from None
    return torch


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a DAC ``.pth`` -> ``(state dict as float32 numpy arrays, metadata kwargs or {})``.

    Weight-norm pairs are kept as they are (``*.weight_g`` / ``*.weight_v`` or the newer
    ``*.parametrizations.weight.original0/1``); :func:`convert_state_dict` folds them.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise ValueError(f"checkpoint {path} is not a file")
    torch = _import_torch()
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, truncated file, foreign pickle, not a torch file
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {msg[:300]})") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a dict with a 'state_dict'")
    kwargs: dict[str, Any] = {}
    if "state_dict" in obj:
        state = obj["state_dict"]
        meta = obj.get("metadata") or {}
        if isinstance(meta, Mapping) and isinstance(meta.get("kwargs"), Mapping):
            kwargs = dict(meta["kwargs"])
    else:
        state = obj  # a bare state dict
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"{path} has no (or an empty) state dict")
    arrays: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: state dict entry {name!r} is a {type(value).__name__}, not a tensor")
        arrays[str(name)] = value.detach().to(torch.float32).cpu().numpy()
    return arrays, kwargs


def _conv_prefixes(sd: Mapping[str, np.ndarray]) -> set[str]:
    out = set()
    for k in sd:
        for suffix in (".weight_v", ".parametrizations.weight.original1", ".weight"):
            if k.endswith(suffix):
                out.add(k[: -len(suffix)])
    return out


def _torch_weight(sd: Mapping[str, np.ndarray], prefix: str, used: set[str]) -> np.ndarray:
    """The effective (weight-norm folded) weight of the torch conv at ``prefix``.

    torch's ``weight_norm(dim=0)``: ``w = g * v / ||v||`` with the norm over all axes but 0.
    """
    for g_key, v_key in ((f"{prefix}.weight_g", f"{prefix}.weight_v"),
                         (f"{prefix}.parametrizations.weight.original0", f"{prefix}.parametrizations.weight.original1")):
        if v_key in sd:
            if g_key not in sd:
                raise ValueError(f"state dict has {v_key} but not {g_key}")
            g, v = sd[g_key].astype(np.float32), sd[v_key].astype(np.float32)
            norm = np.sqrt(np.sum(np.square(v), axis=tuple(range(1, v.ndim)), keepdims=True))
            used.update((g_key, v_key))
            return (v * (g / norm)).astype(np.float32)
    if f"{prefix}.weight" in sd:
        used.add(f"{prefix}.weight")
        return sd[f"{prefix}.weight"].astype(np.float32)
    raise ValueError(f"state dict has no weight for {prefix} (looked for weight_g/weight_v, "
                     "parametrizations.weight.original0/1 and weight)")


def _get(sd: Mapping[str, np.ndarray], key: str, used: set[str]) -> np.ndarray:
    if key not in sd:
        raise ValueError(f"state dict is missing {key}")
    used.add(key)
    return sd[key].astype(np.float32)


def config_from_state_dict(sd: Mapping[str, np.ndarray], kwargs: Mapping[str, Any],
                           sample_rate: Optional[int] = None, n_q: Optional[int] = None) -> DACConfig:
    """Work out the :class:`DACConfig` from the tensor shapes, cross-checked with the metadata."""
    convs = _conv_prefixes(sd)

    def weight_shape(prefix: str) -> tuple[int, ...]:
        for suffix in (".weight_v", ".parametrizations.weight.original1", ".weight"):
            if prefix + suffix in sd:
                return sd[prefix + suffix].shape
        raise ValueError(f"state dict has no weight for {prefix}: not a DAC checkpoint?")

    enc_idx = sorted(int(m.group(1)) for k in convs if (m := re.fullmatch(r"encoder\.block\.(\d+)", k)))
    dec_blocks = sorted({int(m.group(1)) for k in convs if (m := re.fullmatch(r"decoder\.model\.(\d+)\.block\.1", k))})
    quantizers = sorted({int(m.group(1)) for k in sd if (m := re.match(r"quantizer\.quantizers\.(\d+)\.codebook\.weight$", k))})
    if not enc_idx or not dec_blocks or not quantizers or enc_idx[0] != 0:
        raise ValueError("state dict does not look like a DAC model (no encoder.block.0 / decoder.model.*.block.1 / "
                         "quantizer.quantizers.*.codebook.weight keys)")
    n_enc = enc_idx[-1] - 2  # block.0 conv, blocks 1..n, block n+1 snake, block n+2 conv
    enc_rates = [weight_shape(f"encoder.block.{i}.block.4")[2] // 2 for i in range(1, n_enc + 1)]
    dec_rates = [weight_shape(f"decoder.model.{i}.block.1")[2] // 2 for i in dec_blocks]
    book = sd[f"quantizer.quantizers.{quantizers[0]}.codebook.weight"].shape
    found = {
        "encoder_dim": weight_shape("encoder.block.0")[0],
        "encoder_rates": enc_rates,
        "latent_dim": weight_shape(f"encoder.block.{n_enc + 2}")[0],
        "decoder_dim": weight_shape("decoder.model.0")[0],
        "decoder_rates": dec_rates,
        "n_codebooks": len(quantizers),
        "codebook_size": book[0],
        "codebook_dim": book[1],
    }
    for key, value in kwargs.items():
        if key in _IGNORED_KWARGS:
            continue
        if key not in _KWARGS:
            raise ValueError(f"checkpoint metadata has an unknown DAC argument {key!r}={value!r}")
        if key == "latent_dim" and value is None:
            continue
        if key == "codebook_dim" and isinstance(value, (list, tuple)):
            if len(set(value)) != 1:
                raise ValueError(f"per-codebook codebook_dim {value} is not supported (all must be equal)")
            value = value[0]
        if key in found and (list(value) if isinstance(value, (list, tuple)) else value) != found[key]:
            raise ValueError(f"checkpoint metadata says {key}={value!r} but the tensors say {found[key]!r}")
    sr = sample_rate if sample_rate is not None else kwargs.get("sample_rate")
    if sr is None:
        raise ValueError("the checkpoint has no metadata sample_rate; pass --sample-rate")
    cfg = DACConfig(sample_rate=int(sr), encoder_dim=found["encoder_dim"], encoder_rates=tuple(enc_rates),
                    latent_dim=found["latent_dim"], decoder_dim=found["decoder_dim"], decoder_rates=tuple(dec_rates),
                    n_codebooks=found["n_codebooks"], codebook_size=found["codebook_size"],
                    codebook_dim=found["codebook_dim"])
    if cfg.latent_dim == cfg.encoder_dim * 2 ** len(cfg.encoder_rates):
        cfg = cfg.replace(latent_dim=None)
    return cfg.replace(n_q=n_q if n_q is not None else default_n_q(cfg))


def convert_state_dict(sd: Mapping[str, np.ndarray], cfg: DACConfig) -> dict[str, np.ndarray]:
    """Map a PyTorch DAC state dict onto our parameter names and layouts.

    * ``Conv1d`` weight ``[C_out, C_in, K]`` -> ``kernel [K, C_in, C_out]``;
    * ``ConvTranspose1d`` weight ``[C_in, C_out, K]`` -> ``kernel [K, C_in, C_out]``;
    * Snake ``alpha [1, C, 1]`` -> ``[C]``;
    * quantiser ``q``: 1x1 ``in_proj``/``out_proj`` -> ``in_kernel[q] [D, d]``/``out_kernel[q] [d, D]``,
      ``codebook.weight [K, d]`` -> ``codebook[q]``.

    Every tensor of ``sd`` must be used (else ``ValueError``: a different architecture).
    """
    used: set[str] = set()
    out: dict[str, np.ndarray] = {}

    def conv(src: str, dst: str, transposed: bool = False) -> None:
        w = _torch_weight(sd, src, used)
        out[f"{dst}.kernel"] = np.ascontiguousarray(w.transpose(2, 0, 1) if transposed else w.transpose(2, 1, 0))
        out[f"{dst}.bias"] = _get(sd, f"{src}.bias", used)

    def snake(src: str, dst: str) -> None:
        out[f"{dst}.alpha"] = _get(sd, f"{src}.alpha", used).reshape(-1)

    def res_unit(src: str, dst: str) -> None:
        snake(f"{src}.block.0", f"{dst}.snake1")
        conv(f"{src}.block.1", f"{dst}.conv1")
        snake(f"{src}.block.2", f"{dst}.snake2")
        conv(f"{src}.block.3", f"{dst}.conv2")

    n_enc, n_dec = len(cfg.encoder_rates), len(cfg.decoder_rates)
    conv("encoder.block.0", "encoder.conv_in")
    for i in range(n_enc):
        src = f"encoder.block.{i + 1}"
        for j in range(3):
            res_unit(f"{src}.block.{j}", f"encoder.blocks.{i}.res_units.{j}")
        snake(f"{src}.block.3", f"encoder.blocks.{i}.snake")
        conv(f"{src}.block.4", f"encoder.blocks.{i}.conv")
    snake(f"encoder.block.{n_enc + 1}", "encoder.snake_out")
    conv(f"encoder.block.{n_enc + 2}", "encoder.conv_out")

    conv("decoder.model.0", "decoder.conv_in")
    for i in range(n_dec):
        src = f"decoder.model.{i + 1}"
        snake(f"{src}.block.0", f"decoder.blocks.{i}.snake")
        conv(f"{src}.block.1", f"decoder.blocks.{i}.conv_t", transposed=True)
        for j in range(3):
            res_unit(f"{src}.block.{j + 2}", f"decoder.blocks.{i}.res_units.{j}")
    snake(f"decoder.model.{n_dec + 1}", "decoder.snake_out")
    conv(f"decoder.model.{n_dec + 2}", "decoder.conv_out")

    ins, in_b, outs, out_b, books = [], [], [], [], []
    for q in range(cfg.n_codebooks):
        src = f"quantizer.quantizers.{q}"
        ins.append(_torch_weight(sd, f"{src}.in_proj", used)[:, :, 0].T)  # [d, D, 1] -> [D, d]
        in_b.append(_get(sd, f"{src}.in_proj.bias", used))
        outs.append(_torch_weight(sd, f"{src}.out_proj", used)[:, :, 0].T)  # [D, d, 1] -> [d, D]
        out_b.append(_get(sd, f"{src}.out_proj.bias", used))
        books.append(_get(sd, f"{src}.codebook.weight", used))
    out["quantizer.in_kernel"] = np.stack(ins)
    out["quantizer.in_bias"] = np.stack(in_b)
    out["quantizer.out_kernel"] = np.stack(outs)
    out["quantizer.out_bias"] = np.stack(out_b)
    out["quantizer.codebook"] = np.stack(books)

    unused = sorted(set(sd) - used)
    if unused:
        raise ValueError(f"state dict has {len(unused)} tensors that a DAC of this config does not use: "
                         f"{unused[:8]}{' ...' if len(unused) > 8 else ''}")
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- EnCodec

_ENCODEC_BUFFERS = ("inited", "cluster_size", "embed_avg")  # training-only codebook state


def is_encodec_state_dict(sd: Mapping[str, np.ndarray]) -> bool:
    """Whether a state dict looks like Meta's ``encodec`` (``quantizer.vq.layers.*._codebook.embed`` keys)."""
    return any(re.fullmatch(r"quantizer\.vq\.layers\.\d+\._codebook\.embed", k) for k in sd)


def encodec_config_from_state_dict(sd: Mapping[str, np.ndarray], sample_rate: Optional[int] = None,
                                   n_q: Optional[int] = None) -> EncodecConfig:
    """Work out the :class:`EncodecConfig` of an ``encodec`` state dict from its tensor shapes.

    Supports the mono, causal, weight-norm family of the 24 kHz model (one residual block per
    stage, an LSTM in encoder and decoder); anything else (e.g. the stereo 48 kHz model with
    ``time_group_norm``) raises ``ValueError``.
    """
    def shape(prefix: str) -> tuple[int, ...]:
        for suffix in (".weight_v", ".parametrizations.weight.original1", ".weight"):
            if prefix + suffix in sd:
                return tuple(sd[prefix + suffix].shape)
        raise ValueError(f"state dict has no weight for {prefix}: not an EnCodec 24 kHz checkpoint?")

    books = sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(r"quantizer\.vq\.layers\.(\d+)\._codebook\.embed", k))})
    if not books or books != list(range(len(books))):
        raise ValueError("state dict does not look like an EnCodec model (no quantizer.vq.layers.*._codebook.embed)")
    if any(".norm." in k for k in sd):
        raise ValueError("this EnCodec checkpoint uses norm layers (the 48 kHz model's time_group_norm?); "
                         "only the causal, weight-norm 24 kHz model is supported")
    first = shape("encoder.model.0.conv.conv")  # [n_filters, channels, kernel]
    if first[1] != 1:
        raise ValueError(f"EnCodec with {first[1]} audio channels is not supported (only mono, the 24 kHz model)")
    res = sorted({int(m.group(1)) for k in sd if (m := re.match(r"encoder\.model\.(\d+)\.block\.1\.", k))})
    if not res or res != [1 + 3 * i for i in range(len(res))]:
        raise ValueError(f"unsupported EnCodec encoder layout (residual blocks at encoder.model.{res}); only one "
                         "residual block per stage is supported")
    if any(re.match(r"encoder\.model\.\d+\.block\.[5-9]\.", k) for k in sd):
        raise ValueError("unsupported EnCodec residual blocks (more than two convs)")
    n_stages = len(res)
    ratios_enc = [shape(f"encoder.model.{3 + 3 * i}.conv.conv")[2] // 2 for i in range(n_stages)]
    lstm_idx = 1 + 3 * n_stages
    lstm_layers = len({k for k in sd if re.fullmatch(rf"encoder\.model\.{lstm_idx}\.lstm\.weight_ih_l\d+", k)})
    embed = sd["quantizer.vq.layers.0._codebook.embed"].shape
    cfg = EncodecConfig(
        sample_rate=int(sample_rate) if sample_rate is not None else 24_000,
        n_filters=first[0], ratios=tuple(reversed(ratios_enc)), dimension=embed[1], n_residual_layers=1,
        lstm_layers=lstm_layers, kernel_size=first[2],
        last_kernel_size=shape(f"encoder.model.{lstm_idx + (2 if lstm_layers else 1)}.conv.conv")[2],
        residual_kernel_size=shape("encoder.model.1.block.1.conv.conv")[2],
        compress=first[0] // shape("encoder.model.1.block.1.conv.conv")[0],
        n_codebooks=len(books), codebook_size=embed[0], n_q=None)
    if n_q is None:
        n_q = 4 if cfg.n_codebooks >= 4 else None
    return cfg.replace(n_q=n_q)


def convert_encodec_state_dict(sd: Mapping[str, np.ndarray], cfg: EncodecConfig) -> dict[str, np.ndarray]:
    """Map an ``encodec`` state dict onto our :class:`~small_e_jax.codec.encodec.EnCodec` names and layouts.

    * ``SConv1d`` weight (norm folded) ``[C_out, C_in, K]`` -> ``kernel [K, C_in, C_out]``;
    * ``SConvTranspose1d`` weight ``[C_in, C_out, K]`` -> ``conv.kernel [K, C_in, C_out]``;
    * LSTM layer ``l``: ``weight_ih_l`` / ``weight_hh_l`` ``[4H, H]`` -> ``kernel_ih`` / ``kernel_hh``
      ``[H, 4H]``, ``bias = bias_ih + bias_hh``;
    * codebooks ``embed [K, D]`` stacked -> ``quantizer.codebook [N, K, D]``.

    Every tensor must be used (the codebooks' training buffers are skipped); else ``ValueError``.
    """
    used: set[str] = set()
    out: dict[str, np.ndarray] = {}
    for k in sd:
        if re.fullmatch(r"quantizer\.vq\.layers\.\d+\._codebook\.(" + "|".join(_ENCODEC_BUFFERS) + ")", k):
            used.add(k)

    def conv(src: str, dst: str, transposed: bool = False) -> None:
        w = _torch_weight(sd, src, used)
        out[f"{dst}.kernel"] = np.ascontiguousarray(w.transpose(2, 0, 1) if transposed else w.transpose(2, 1, 0))
        out[f"{dst}.bias"] = _get(sd, f"{src}.bias", used)

    def res_block(src: str, dst: str) -> None:
        conv(f"{src}.block.1.conv.conv", f"{dst}.conv1")
        conv(f"{src}.block.3.conv.conv", f"{dst}.conv2")
        conv(f"{src}.shortcut.conv.conv", f"{dst}.shortcut")

    def lstm(src: str, dst: str) -> None:
        for layer in range(cfg.lstm_layers):
            out[f"{dst}.layers.{layer}.kernel_ih"] = _get(sd, f"{src}.lstm.weight_ih_l{layer}", used).T
            out[f"{dst}.layers.{layer}.kernel_hh"] = _get(sd, f"{src}.lstm.weight_hh_l{layer}", used).T
            out[f"{dst}.layers.{layer}.bias"] = (_get(sd, f"{src}.lstm.bias_ih_l{layer}", used)
                                                 + _get(sd, f"{src}.lstm.bias_hh_l{layer}", used))

    n = len(cfg.ratios)
    conv("encoder.model.0.conv.conv", "encoder.conv_in")
    for i in range(n):
        res_block(f"encoder.model.{1 + 3 * i}", f"encoder.res_blocks.{i}.0")
        conv(f"encoder.model.{3 + 3 * i}.conv.conv", f"encoder.downsample.{i}")
    idx = 1 + 3 * n
    if cfg.lstm_layers:
        lstm(f"encoder.model.{idx}", "encoder.lstm")
        idx += 1
    conv(f"encoder.model.{idx + 1}.conv.conv", "encoder.conv_out")

    conv("decoder.model.0.conv.conv", "decoder.conv_in")
    idx = 1
    if cfg.lstm_layers:
        lstm("decoder.model.1", "decoder.lstm")
        idx = 2
    for i in range(n):
        conv(f"decoder.model.{idx + 1}.convtr.convtr", f"decoder.upsample.{i}.conv", transposed=True)
        res_block(f"decoder.model.{idx + 2}", f"decoder.res_blocks.{i}.0")
        idx += 3
    conv(f"decoder.model.{idx + 1}.conv.conv", "decoder.conv_out")

    out["quantizer.codebook"] = np.stack([_get(sd, f"quantizer.vq.layers.{q}._codebook.embed", used)
                                          for q in range(cfg.n_codebooks)])
    unused = sorted(set(sd) - used)
    if unused:
        raise ValueError(f"state dict has {len(unused)} tensors that an EnCodec of this config does not use: "
                         f"{unused[:8]}{' ...' if len(unused) > 8 else ''}")
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def convert(src: str | Path, dst: str | Path, *, sample_rate: Optional[int] = None, n_q: Optional[int] = None,
            overwrite: bool = False, model: str = "auto") -> DACConfig | EncodecConfig:
    """Convert checkpoint ``src`` into directory ``dst``; returns the config written.

    ``model``: ``"dac"``, ``"encodec"`` or ``"auto"`` (EnCodec if the keys say so, else DAC).
    """
    from small_e_jax.codec.weights import save_dac

    if model not in ("auto", "dac", "encodec"):
        raise ValueError(f"model must be 'auto', 'dac' or 'encodec', got {model!r}")
    src = Path(src)
    sd, kwargs = load_checkpoint(src)
    if model == "encodec" or (model == "auto" and is_encodec_state_dict(sd)):
        cfg = encodec_config_from_state_dict(sd, sample_rate=sample_rate, n_q=n_q)
        arrays = convert_encodec_state_dict(sd, cfg)
    else:
        cfg = config_from_state_dict(sd, kwargs, sample_rate=sample_rate, n_q=n_q)
        arrays = convert_state_dict(sd, cfg)
    save_dac(dst, cfg, arrays, extra={"source": {"file": src.name, "sha256": _sha256(src)}}, overwrite=overwrite)
    return cfg


if __name__ == "__main__":  # the command line: small_e_jax/cli/codec_convert.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.codec_convert", run_name="__main__")
