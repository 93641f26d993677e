"""Reconstruction losses for codec training, as DAC (Kumar et al. 2023) defines them, in JAX.

* :func:`multiscale_mel_loss`: L1 between log10 mel spectrograms at several window sizes (DAC:
  windows 32..2048 with 5..320 mel bands, hop = window / 4). The main training signal.
* :func:`multiscale_stft_loss`: L1 between log10 magnitudes (and optionally raw magnitudes) of
  STFTs at several window sizes.
* :func:`waveform_l1`: plain L1 between waveforms.

The codebook and commitment losses come from the quantiser itself
(:meth:`small_e_jax.codec.quantizer.ResidualVectorQuantizer.train_forward`).

All spectrograms here are *magnitude* STFTs with a periodic Hann window, reflect padding of
``window / 2`` on both sides (``center=True``), and ``n_fft = window``. The mel filterbank is
Slaney's (librosa's default: ``htk=False, norm="slaney"``), computed with numpy once per shape.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


# --------------------------------------------------------------------------- mel filterbank


def hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    freqs = np.asarray(freqs, np.float64)
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_part = min_log_mel + np.log(np.maximum(freqs, 1e-10) / min_log_hz) / logstep
    return np.where(freqs >= min_log_hz, log_part, mels)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


@functools.lru_cache(maxsize=64)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised triangular mel filters ``[n_fft // 2 + 1, n_mels]`` float32.

    Matches ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
    fmax=fmax).T`` (the filterbank DAC's mel loss uses). Each filter is a triangle between
    adjacent mel-spaced frequencies, scaled by ``2 / (f_hi - f_lo)`` (equal area).
    """
    if n_fft < 2 or n_mels < 1:
        raise ValueError(f"need n_fft >= 2 and n_mels >= 1, got n_fft={n_fft}, n_mels={n_mels}")
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={fmin}, fmax={fmax}")
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]  # [n_mels + 2, n_bins]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))  # [n_mels, n_bins]
    weights *= (2.0 / (mel_freqs[2:n_mels + 2] - mel_freqs[:n_mels]))[:, None]
    return weights.T.astype(np.float32)


# --------------------------------------------------------------------------- STFT


def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window ``[length]`` (``torch.hann_window`` / ``scipy.signal.get_window('hann')``)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)).astype(np.float32)


def stft(wav: Array, window: int, hop: int | None = None) -> Array:
    """``wav [B, S]`` -> complex STFT ``[B, frames, window // 2 + 1]`` (``frames = S // hop + 1``).

    ``center=True`` with reflect padding, periodic Hann window, ``n_fft = window``. ``hop``
    (default ``window // 4``) must divide ``window``: frames are then built from
    ``window / hop`` shifted reshapes of the signal instead of a gather (cheap on accelerators).
    """
    hop = window // 4 if hop is None else hop
    if hop < 1 or window % hop:
        raise ValueError(f"hop={hop} must be a positive divisor of window={window}")
    if wav.ndim != 2:
        raise ValueError(f"wav must be [B, S], got shape {wav.shape}")
    b, s = wav.shape
    pad = window // 2
    if s <= pad:
        raise ValueError(f"signal of {s} samples is too short for reflect padding with window {window}")
    x = jnp.pad(wav, ((0, 0), (pad, pad)), mode="reflect")
    n_frames = s // hop + 1
    k = window // hop
    total = (n_frames + k - 1) * hop
    x = jnp.pad(x, ((0, 0), (0, max(0, total - x.shape[1]))))[:, :total]
    chunks = x.reshape(b, n_frames + k - 1, hop)
    frames = jnp.concatenate([chunks[:, i:i + n_frames] for i in range(k)], axis=-1)  # [B, F, window]
    return jnp.fft.rfft(frames * jnp.asarray(hann_window(window), wav.dtype), axis=-1)


def stft_magnitude(wav: Array, window: int, hop: int | None = None, floor: float = 1e-7) -> Array:
    """``|stft(wav)|`` ``[B, frames, window // 2 + 1]``, floored at ``floor``.

    Why the floor: ``|X|`` has an infinite gradient at ``X = 0`` (e.g. digital silence), so the
    squared magnitude is clamped to ``floor**2`` before the square root.
    """
    spec = stft(wav, window, hop)
    return jnp.sqrt(jnp.maximum(jnp.real(spec) ** 2 + jnp.imag(spec) ** 2, floor ** 2))


# --------------------------------------------------------------------------- losses


@dataclasses.dataclass(frozen=True)
class MelLossConfig:
    """DAC's ``MelSpectrogramLoss`` settings (its training config: mag_weight 0, log_weight 1)."""

    windows: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
    n_mels: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)
    clamp_eps: float = 1e-5
    power: float = 2.0
    log_weight: float = 1.0
    mag_weight: float = 0.0

    def __post_init__(self) -> None:
        if len(self.windows) != len(self.n_mels) or not self.windows:
            raise ValueError(f"windows {self.windows} and n_mels {self.n_mels} must be non-empty and of equal length")


@dataclasses.dataclass(frozen=True)
class StftLossConfig:
    """DAC's ``MultiScaleSTFTLoss`` settings."""

    windows: tuple[int, ...] = (2048, 512)
    clamp_eps: float = 1e-5
    power: float = 2.0
    log_weight: float = 1.0
    mag_weight: float = 1.0


def _log_mag_l1(x: Array, y: Array, eps: float, power: float) -> Array:
    return jnp.mean(jnp.abs(power * jnp.log10(jnp.maximum(x, eps)) - power * jnp.log10(jnp.maximum(y, eps))))


def multiscale_mel_loss(pred: Array, target: Array, sample_rate: int,
                        cfg: MelLossConfig = MelLossConfig()) -> Array:
    """Sum over scales of ``log_weight * L1(log10 clamp(mel)^p) + mag_weight * L1(mel)``.

    ``pred``, ``target``: ``[B, S]`` waveforms. Returns a scalar (fp32). Windows longer than the
    signal are skipped (short test signals).
    """
    _check_pair(pred, target)
    pred, target = pred.astype(jnp.float32), target.astype(jnp.float32)
    total = jnp.zeros((), jnp.float32)
    for window, n_mels in zip(cfg.windows, cfg.n_mels):
        if window // 2 >= pred.shape[1]:
            continue
        fb = jnp.asarray(mel_filterbank(sample_rate, window, n_mels))
        mp = stft_magnitude(pred, window) @ fb
        mt = stft_magnitude(target, window) @ fb
        total = total + cfg.log_weight * _log_mag_l1(mp, mt, cfg.clamp_eps, cfg.power)
        if cfg.mag_weight:
            total = total + cfg.mag_weight * jnp.mean(jnp.abs(mp - mt))
    return total


def multiscale_stft_loss(pred: Array, target: Array, cfg: StftLossConfig = StftLossConfig()) -> Array:
    """Sum over scales of ``log_weight * L1(log10 clamp(|X|)^p) + mag_weight * L1(|X|)``; scalar."""
    _check_pair(pred, target)
    pred, target = pred.astype(jnp.float32), target.astype(jnp.float32)
    total = jnp.zeros((), jnp.float32)
    for window in cfg.windows:
        if window // 2 >= pred.shape[1]:
            continue
        mp = stft_magnitude(pred, window)
        mt = stft_magnitude(target, window)
        total = total + cfg.log_weight * _log_mag_l1(mp, mt, cfg.clamp_eps, cfg.power)
        total = total + cfg.mag_weight * jnp.mean(jnp.abs(mp - mt))
    return total


def waveform_l1(pred: Array, target: Array) -> Array:
    """Mean absolute difference of two ``[B, S]`` waveforms; scalar."""
    _check_pair(pred, target)
    return jnp.mean(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)))


def _check_pair(pred: Array, target: Array) -> None:
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"pred and target must both be [B, S] of one shape, got {pred.shape} and {target.shape}")


def mel_distance(pred: Sequence[np.ndarray] | Array, target: Sequence[np.ndarray] | Array, sample_rate: int) -> float:
    """DAC's mel distance (:func:`multiscale_mel_loss` with its default scales) as a Python float."""
    return float(multiscale_mel_loss(jnp.asarray(pred), jnp.asarray(target), sample_rate))
