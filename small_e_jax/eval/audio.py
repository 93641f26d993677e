"""Waveform helpers for evaluation: read files, resample, check input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


def as_mono(wav: np.ndarray, name: str = "wav") -> np.ndarray:
    """[S] or [S, C] float audio -> mono float32 [S]; ValueError on empty/non-finite input."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    if wav.ndim != 1:
        raise ValueError(f"{name} must be [S] or [S, C] samples, got shape {wav.shape}")
    if wav.size == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    if not np.all(np.isfinite(wav)):
        raise ValueError(f"{name} holds NaN or inf samples")
    return wav


def resample(wav: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono [S] at ``rate`` Hz -> float32 [S'] at ``target`` Hz (soxr high quality)."""
    if rate <= 0 or target <= 0:
        raise ValueError(f"sample rates must be positive, got {rate} -> {target}")
    wav = as_mono(wav)
    return wav if rate == target else soxr.resample(wav, rate, target).astype(np.float32)


def read_audio(path: str | Path, target_rate: int) -> np.ndarray:
    """An audio file (anything libsndfile reads: wav, flac, ogg/opus) -> mono float32 at ``target_rate``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist")
    try:
        wav, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:  # not audio, truncated: name the file, exit as bad input
        raise ValueError(f"audio file {path} is not readable audio ({' '.join(str(exc).split())})") from None
    return resample(as_mono(wav, str(path)), rate, target_rate)
