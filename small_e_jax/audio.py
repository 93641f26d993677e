"""Audio I/O, in one place: reading any file libsndfile reads (wav, flac, ogg/opus) as mono
float32, resampling (soxr), the build's checks that reject a bad clip with a reason, and the
synthetic corpora's trim-and-normalise.

Two families of callers: the dataset build (:func:`load_audio`, which never raises on a bad
file's content but turns it into :class:`BadInput` with a reason for the build report) and
evaluation (:func:`read_audio`, :func:`resample`, :func:`as_mono`, which raise ordinary errors).
``data_pipeline.audio_io`` and ``small_e_jax.eval.audio`` re-export these names.
"""

from __future__ import annotations

from dataclasses import dataclass
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


class BadInput(Exception):
    """An utterance that is skipped; ``str(exc)`` is the reason written to the build report."""


@dataclass(frozen=True)
class AudioLimits:
    """What a usable clip looks like (seconds, Hz, peak amplitude)."""

    min_seconds: float = 0.5
    max_seconds: float = 30.0
    min_sample_rate: int = 16_000  # lower rates lack the band a 24 kHz codec models
    silence_peak: float = 1e-3  # a clip whose peak stays below this is silent


def load_audio(path: str, target_rate: int, limits: AudioLimits = AudioLimits(),
               start: float = 0.0, end: float | None = None) -> np.ndarray:
    """Mono float32 waveform ``[S]`` at ``target_rate`` of ``path`` (optionally the [start, end) s span).

    Raises:
      BadInput: unreadable/corrupt, empty, silent, too short/long, or below ``min_sample_rate``.
    """
    try:
        info = sf.info(path)
        rate = info.samplerate
        if rate < limits.min_sample_rate:
            raise BadInput(f"sample rate {rate} Hz below the minimum {limits.min_sample_rate} Hz")
        first = int(round(start * rate))
        last = None if end is None else int(round(end * rate))
        audio, _ = sf.read(path, start=first, stop=last, dtype="float32", always_2d=True)
    except BadInput:
        raise
    except Exception as exc:  # libsndfile errors, truncated files, missing files
        raise BadInput(f"unreadable audio ({type(exc).__name__}: {exc})") from None
    if audio.shape[0] == 0:
        raise BadInput("empty audio (0 samples)")
    audio = audio.mean(axis=1)
    if not np.all(np.isfinite(audio)):
        raise BadInput("audio holds NaN or inf samples")
    seconds = audio.shape[0] / rate
    if seconds < limits.min_seconds:
        raise BadInput(f"too short: {seconds:.2f} s < {limits.min_seconds} s")
    if seconds > limits.max_seconds:
        raise BadInput(f"too long: {seconds:.2f} s > {limits.max_seconds} s")
    peak = float(np.abs(audio).max())
    if peak < limits.silence_peak:
        raise BadInput(f"silent (peak {peak:.2e} < {limits.silence_peak})")
    if peak > 1.0:  # float WAVs may exceed full scale; scale rather than clip
        audio = audio / peak
    if rate != target_rate:
        audio = soxr.resample(audio, rate, target_rate, quality="HQ")
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def trim_and_normalize(audio: np.ndarray, rate: int, pad_s: float = 0.1) -> np.ndarray:
    """Synthesizer output ``[S]``: leading/trailing near-silence cut (``pad_s`` kept), peak at 0.9."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    loud = np.flatnonzero(np.abs(audio) > 0.01 * max(peak, 1e-9))
    if loud.size:
        pad = int(pad_s * rate)
        audio = audio[max(loud[0] - pad, 0): loud[-1] + pad]
    return (0.9 * audio / max(peak, 1e-9)).astype(np.float32)
