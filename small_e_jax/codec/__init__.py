"""Neural audio codecs as Flax modules: waveforms <-> residual-vector-quantiser codes.

``DACCodec`` (DAC, Descript Audio Codec) and ``EncodecCodec`` (Meta's EnCodec 24 kHz) implement the
:class:`Codec` interface. Weights come from the official PyTorch checkpoints via
``python -m small_e_jax.codec.convert``; PyTorch is needed only for that converter and for the
parity tests.
"""

from small_e_jax.codec.base import PAD_CODE, Codec, bucket_frames_up, prepare_audio, resample
from pathlib import Path

from small_e_jax.codec.dac import DAC, num_params, random_init
from small_e_jax.codec.dac_codec import DACCodec
from small_e_jax.codec.dac_config import PRESETS, DACConfig, dac_16khz, dac_24khz, dac_44khz, dac_mini24, preset
from small_e_jax.codec.encodec import PRESETS as ENCODEC_PRESETS
from small_e_jax.codec.encodec import EnCodec, EncodecCodec, EncodecConfig, encodec_24khz

__all__ = ["PAD_CODE", "Codec", "bucket_frames_up", "prepare_audio", "resample", "DAC", "DACCodec", "DACConfig", "PRESETS",
           "dac_16khz", "dac_24khz", "dac_44khz", "dac_mini24", "num_params", "preset", "random_init", "load_codec",
           "EnCodec", "EncodecCodec", "EncodecConfig", "encodec_24khz", "BUNDLED_DIR", "bundled_weights"]

#: Weights shipped inside the package: ``pretrained/<codec name>/`` (model.safetensors + config.json).
BUNDLED_DIR = Path(__file__).parent / "pretrained"


def bundled_weights(name: str) -> str | None:
    """The directory of the weights shipped for codec ``name``, or ``None`` if none are shipped."""
    path = BUNDLED_DIR / name
    return str(path) if (path / "model.safetensors").is_file() else None


def load_codec(name: str = "dac_24khz", weights: str | None = None, *, n_q: int | None = None, **kwargs) -> Codec:
    """The codec named in the config (``data.codec``) with converted ``weights`` (a directory).

    ``n_q`` (codebooks used; pass the model config's ``n_codebooks``) defaults to the value stored
    with the weights (the converter stores 4 for 24 kHz, else all), or to the preset's without
    weights. ``weights=None`` gives random weights (tests/smoke runs only; the codes mean nothing).
    Other keyword arguments go to :class:`DACCodec` (``mesh``, ``bucket_frames``, ``precision``).
    ``encodec_24khz`` gives an :class:`EncodecCodec` (default 4 codebooks = 3 kbps; it also takes
    ``bandwidth`` in kbps instead of ``n_q``).
    """
    if name in ENCODEC_PRESETS:
        return _load_encodec(name, weights, n_q=n_q, **kwargs)
    if name not in PRESETS:
        raise ValueError(f"unknown codec {name!r}; choose one of {sorted(PRESETS) + sorted(ENCODEC_PRESETS)}")
    if weights == "bundled":
        weights = bundled_weights(name)
        if weights is None:
            raise ValueError(f"no weights are shipped for codec {name!r} (looked in {BUNDLED_DIR / name}); "
                             "train them with python -m small_e_jax.codec.train")
    if weights is None:
        precision = kwargs.pop("precision", "highest")
        return DACCodec(random_init(preset(name, n_q), precision=precision), **kwargs)
    codec = DACCodec.from_pretrained(weights, n_q=n_q, **kwargs)
    expected = preset(name)
    if codec.sample_rate != expected.sample_rate or codec.hop_length != expected.hop_length:
        raise ValueError(f"weights in {weights} are a {codec.sample_rate} Hz / hop {codec.hop_length} model, "
                         f"not {name} ({expected.sample_rate} Hz / hop {expected.hop_length})")
    return codec


def _load_encodec(name: str, weights: str | None, *, n_q: int | None = None, **kwargs) -> Codec:
    expected = ENCODEC_PRESETS[name]()
    if weights is None:
        precision = kwargs.pop("precision", "highest")
        cfg = expected if n_q is None else expected.replace(n_q=n_q)
        return EncodecCodec.random_init(cfg, precision=precision, **kwargs)
    codec = EncodecCodec.from_pretrained(weights, n_q=n_q, **kwargs)
    if codec.sample_rate != expected.sample_rate or codec.hop_length != expected.hop_length:
        raise ValueError(f"weights in {weights} are a {codec.sample_rate} Hz / hop {codec.hop_length} model, "
                         f"not {name} ({expected.sample_rate} Hz / hop {expected.hop_length})")
    return codec
