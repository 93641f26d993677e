"""Test-only helpers around the PyTorch reference DAC (``descript-audio-codec``), the parity oracle.

Nothing in ``small_e_jax`` imports this. Install the oracle with
``pip install --no-deps -r requirements-oracle.txt`` (``--no-deps`` matters: the package's own
dependency pins would downgrade protobuf and pull a CUDA torchaudio).

``descript-audio-codec`` imports ``torchaudio`` (through ``audiotools``) but the model code never
calls it, so :func:`install_torchaudio_stub` registers a stand-in module in ``sys.modules`` whose
every attribute access fails loudly. It is installed only when no working ``torchaudio`` exists.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any, Optional

import numpy as np


class _TorchaudioStub(types.ModuleType):
    """``torchaudio`` stand-in: importable, but any use raises (the DAC model never uses it)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise RuntimeError(f"torchaudio.{name} used, but only a test stand-in for torchaudio is installed "
                           "(tests/codec/torch_oracle.py)")


def install_torchaudio_stub() -> bool:
    """Make ``import torchaudio`` succeed; returns True if the stand-in was installed."""
    if "torchaudio" in sys.modules:
        return isinstance(sys.modules["torchaudio"], _TorchaudioStub)
    try:
        importlib.import_module("torchaudio")
        return False
    except Exception:  # absent, or a build that cannot load beside this torch
        sys.modules.pop("torchaudio", None)
    stub = _TorchaudioStub("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", loader=None)
    stub.__file__ = __file__
    sys.modules["torchaudio"] = stub
    return True


def import_reference_dac() -> Optional[types.ModuleType]:
    """The ``dac`` package of descript-audio-codec, or None if torch or it is missing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    install_torchaudio_stub()
    try:
        dac = importlib.import_module("dac")
    except ImportError:
        return None
    if not hasattr(dac, "DAC") or not hasattr(dac, "model"):
        raise RuntimeError(f"the importable 'dac' module ({getattr(dac, '__file__', '?')}) is not descript-audio-codec "
                           "(the PyPI package named 'dac' is unrelated: uninstall it)")
    return dac


def build_reference(cfg_kwargs: dict[str, Any], seed: int = 0, *, randomize: bool = True):
    """A PyTorch DAC in eval mode with random weights.

    ``randomize`` also draws the weight-norm gains ``g`` (else ``g = ||v||`` and folding would be
    the identity), the Snake ``alpha`` (else all ones) and the biases (else zero for convs), so
    that the conversion of every tensor kind is exercised.
    """
    import torch

    dac = import_reference_dac()
    if dac is None:
        raise RuntimeError("descript-audio-codec is not importable")
    torch.manual_seed(seed)
    model = dac.DAC(**cfg_kwargs)
    if randomize:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("weight_g"):
                    p.mul_(torch.empty_like(p).uniform_(0.5, 1.5, generator=gen))
                elif name.endswith("alpha"):
                    p.copy_(torch.empty_like(p).uniform_(0.5, 2.0, generator=gen))
                elif name.endswith("bias"):
                    p.copy_(torch.empty_like(p).normal_(0.0, 0.05, generator=gen))
    return model.eval()


def save_official(model, path: Path) -> Path:
    """Save like the official release files: ``{"state_dict": ..., "metadata": {"kwargs": ...}}``."""
    model.save(str(path), package=False)
    return path


def reference_encode(model, wav: np.ndarray, n_q: int) -> np.ndarray:
    """Codes of ONE clip ``[S]`` as DAC makes them: ``preprocess`` (right-pad to a hop multiple), encode."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.asarray(wav, np.float32))[None, None]
        x = model.preprocess(x, model.sample_rate)
        _, codes, *_ = model.encode(x, n_quantizers=n_q)
    return codes[0].numpy().astype(np.int32)


def reference_decode(model, codes: np.ndarray) -> np.ndarray:
    """Waveform ``[S_out]`` DAC decodes from the codes ``[n_q, F]`` of one clip."""
    import torch

    with torch.no_grad():
        z, _, _ = model.quantizer.from_codes(torch.from_numpy(np.asarray(codes, np.int64))[None])
        return model.decode(z)[0, 0].numpy()


def reference_latents(model, wav: np.ndarray) -> np.ndarray:
    """Continuous encoder output ``[F, D]`` (channels-last) of one clip."""
    import torch

    with torch.no_grad():
        x = model.preprocess(torch.from_numpy(np.asarray(wav, np.float32))[None, None], model.sample_rate)
        return model.encoder(x)[0].T.numpy()


# --------------------------------------------------------------------------- EnCodec (Meta's ``encodec``)


def import_reference_encodec() -> Optional[types.ModuleType]:
    """Meta's ``encodec`` package (0.1.1), or None if torch or it is missing.

    Its ``__init__`` imports ``torchaudio`` (for file I/O in ``encodec.utils``); the model code never
    calls it, so the same stand-in as for DAC is registered.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    install_torchaudio_stub()
    try:
        encodec = importlib.import_module("encodec")
    except ImportError:
        return None
    if not hasattr(encodec, "EncodecModel"):
        raise RuntimeError(f"the importable 'encodec' module ({getattr(encodec, '__file__', '?')}) is not Meta's encodec")
    return encodec


def build_reference_encodec(seed: int = 0, *, randomize: bool = True):
    """``EncodecModel.encodec_model_24khz(pretrained=False)`` in eval mode with random weights.

    The untrained model's codebooks are all zero (they are initialised by k-means during
    training), which would make every code 0; ``randomize`` draws them (stage ``q``: Gaussian with
    the per-dimension mean and std of its residual on a noise clip) and also the weight-norm gains
    and biases, so that the conversion of every tensor kind is exercised.
    """
    import torch

    encodec = import_reference_encodec()
    if encodec is None:
        raise RuntimeError("encodec is not importable")
    torch.manual_seed(seed)
    model = encodec.EncodecModel.encodec_model_24khz(pretrained=False)
    if randomize:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("weight_g"):
                    p.mul_(torch.empty_like(p).uniform_(0.5, 1.5, generator=gen))
                elif name.endswith("bias") and ".conv" in name:
                    p.copy_(torch.empty_like(p).normal_(0.0, 0.05, generator=gen))
            # Calibrate each stage's codebook to the statistics of its residual on a noise clip, so
            # that nearest neighbours are spread over many entries (the comparison is not vacuous).
            calib = torch.randn((1, 1, 4800), generator=gen).mul_(0.3).clamp_(-1, 1)
            residual = model.encoder(calib).transpose(1, 2).reshape(-1, model.quantizer.dimension)
            for layer in model.quantizer.vq.layers:
                book = layer._codebook
                mean, std = residual.mean(0), residual.std(0)
                book.embed.copy_(mean + std * torch.randn(book.embed.shape, generator=gen))
                book.embed_avg.copy_(book.embed)
                book.inited.fill_(1.0)
                residual = residual - book.dequantize(book.quantize(residual))
    return model.eval()


def reference_encodec_encode(model, wav: np.ndarray, bandwidth: float) -> np.ndarray:
    """Codes ``[n_q, F]`` of ONE clip ``[S]`` as ``EncodecModel.encode`` makes them at ``bandwidth`` kbps."""
    import torch

    model.set_target_bandwidth(bandwidth)
    with torch.no_grad():
        frames = model.encode(torch.from_numpy(np.asarray(wav, np.float32))[None, None])
    assert len(frames) == 1 and frames[0][1] is None  # the 24 kHz model: no segments, no scale
    return frames[0][0][0].numpy().astype(np.int32)


def reference_encodec_decode(model, codes: np.ndarray) -> np.ndarray:
    """Waveform ``[F * 320]`` ``EncodecModel.decode`` makes from the codes ``[n_q, F]`` of one clip."""
    import torch

    with torch.no_grad():
        return model.decode([(torch.from_numpy(np.asarray(codes, np.int64))[None], None)])[0, 0].numpy()


def reference_encodec_latents(model, wav: np.ndarray) -> np.ndarray:
    """Encoder output ``[F, 128]`` (channels-last) of one clip."""
    import torch

    with torch.no_grad():
        return model.encoder(torch.from_numpy(np.asarray(wav, np.float32))[None, None])[0].T.numpy()
