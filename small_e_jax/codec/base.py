"""The codec interface that the TTS model consumes, and audio input checks shared by codecs.

A :class:`Codec` turns waveforms into residual-vector-quantiser codes and back::

    codes = codec.encode(wav, sample_rate)      # wav [B, S] (or [B, C, S]) -> codes [B, n_q, F] int32
    wav = codec.decode(codes)                   # codes [B, n_q, F] -> wav [B, F * hop] float32

``encode`` accepts any sample rate (audio is resampled with soxr to ``codec.sample_rate``) and
multi-channel audio (mixed down to mono by averaging channels). Batches of clips of different
lengths are passed zero-padded together with ``lengths`` (valid samples per item); frames past
an item's end hold :data:`PAD_CODE`. Bad input (empty, wrong rank, NaN/inf, out of [-1, 1],
integer PCM) raises ``ValueError`` with a message saying what to do.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

#: Code in frames past an item's valid length (see ``lengths``).
PAD_CODE = -1


@runtime_checkable
class Codec(Protocol):
    """What the TTS model needs from a neural audio codec."""

    @property
    def sample_rate(self) -> int:
        """Sample rate (Hz) of the codec's waveforms (``decode`` output)."""
        ...

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        ...

    @property
    def hop_length(self) -> int:
        """Samples per code frame at ``sample_rate``."""
        ...

    @property
    def n_q(self) -> int:
        """Codebooks per frame produced by ``encode``."""
        ...

    @property
    def codebook_size(self) -> int:
        """Entries per codebook; codes lie in ``[0, codebook_size)``."""
        ...

    def encode(self, wav: Any, sample_rate: int, lengths: Optional[Sequence[int]] = None) -> np.ndarray:
        """``wav [B, S]`` or ``[B, C, S]`` at ``sample_rate`` -> ``codes [B, n_q, F]`` int32."""
        ...

    def decode(self, codes: Any, frame_lengths: Optional[Sequence[int]] = None) -> np.ndarray:
        """``codes [B, n_q, F]`` -> ``wav [B, F * hop_length]`` float32 at ``sample_rate``."""
        ...


class CodeRates:
    """What a codec config derives from its ``sample_rate``, ``hop_length``, ``n_codebooks`` and
    ``n_q`` (shared by the DAC and EnCodec configs)."""

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def num_quantizers(self) -> int:
        """Codebooks used to encode (``n_q`` resolved)."""
        return self.n_codebooks if self.n_q is None else self.n_q


def bucket_frames_up(frames: int, unit: int) -> int:
    """``frames`` rounded up to the next length bucket: multiples of ``unit`` up to ``4 * unit``,
    then steps that double with the length (``unit=32``: 32, 64, 96, 128, 192, 256, 384, 512, 768,
    1024, 1536, ...), so a padded batch is less than 1.5x its longest item past the first
    few buckets. Few buckets mean few jit compilations: tokenizing a 32-hour corpus with buckets of
    a fixed 32 frames compiled 114 encoder shapes (21 with these), which on a GPU took longer
    than the encoding itself."""
    step = int(unit)
    while frames > 4 * step:
        step *= 2
    return -(-int(frames) // step) * step


def resample(wav: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a 1-D float signal with soxr (high quality). Returns float32 ``[S']``."""
    import soxr  # deferred: only needed when rates differ

    wav = np.asarray(wav, np.float32)
    if in_rate == out_rate:
        return wav
    return np.asarray(soxr.resample(wav, in_rate, out_rate, quality="HQ"), np.float32)


def _check_rate(sample_rate: Any, what: str = "sample_rate") -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float, np.floating)):
        raise ValueError(f"{what} must be a positive integer (Hz), got {sample_rate!r}")
    if not float(sample_rate).is_integer() or sample_rate <= 0:
        raise ValueError(f"{what} must be a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)


def prepare_audio(wav: Any, sample_rate: Any, target_rate: int,
                  lengths: Optional[Sequence[int]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate, mix down to mono and resample a batch of waveforms.

    Args:
      wav: ``[B, S]`` (mono) or ``[B, C, S]`` (``C`` channels, averaged to mono) floating-point
        samples in ``[-1, 1]``; numpy, JAX or anything ``np.asarray`` takes.
      sample_rate: rate of ``wav`` in Hz.
      target_rate: the codec's rate; items are resampled with soxr when it differs.
      lengths: valid samples per item (``None``: all ``S``); the rest of each row is ignored.

    Returns:
      ``(wav [B, S'] float32 zero-padded past each item's end, lengths [B] int64)`` at
      ``target_rate``.

    Raises:
      ValueError: on wrong rank, integer or complex dtype, empty batch or clip, NaN/inf,
        samples outside ``[-1, 1]``, a bad ``sample_rate`` or bad ``lengths``.
    """
    sample_rate = _check_rate(sample_rate)
    target_rate = _check_rate(target_rate, "target_rate")
    try:
        arr = np.asarray(wav)
    except Exception as exc:  # ragged lists, objects
        raise ValueError(f"wav must be an array [B, S] or [B, C, S] ({exc}); for clips of different lengths "
                         "zero-pad them to one length and pass `lengths`") from None
    if arr.dtype == object:
        raise ValueError("wav must be a numeric array [B, S] or [B, C, S]; got ragged/object data — "
                         "zero-pad the clips to one length and pass `lengths`")
    if arr.ndim not in (2, 3):
        hint = " (a single clip: pass wav[None])" if arr.ndim == 1 else ""
        raise ValueError(f"wav must be [B, S] (mono) or [B, C, S] (multi-channel), got rank {arr.ndim} "
                         f"with shape {arr.shape}{hint}")
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        raise ValueError(f"wav has integer dtype {arr.dtype}; convert PCM to float in [-1, 1] first "
                         "(e.g. int16 / 32768)")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"wav must be real floating point, got dtype {arr.dtype}")
    if arr.shape[0] == 0:
        raise ValueError(f"wav is an empty batch (shape {arr.shape})")
    if arr.ndim == 3 and arr.shape[1] == 0:
        raise ValueError(f"wav has no channels (shape {arr.shape})")
    if arr.shape[-1] == 0:
        raise ValueError(f"wav is empty: 0 samples (shape {arr.shape})")
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 3:
        arr = arr.mean(axis=1)
    b, s = arr.shape

    if lengths is None:
        lens = np.full((b,), s, np.int64)
    else:
        try:
            lens = np.asarray(lengths)
        except Exception as exc:
            raise ValueError(f"lengths must be a sequence of {b} integers: {exc}") from None
        if lens.shape != (b,) or not (np.issubdtype(lens.dtype, np.integer)
                                      or (np.issubdtype(lens.dtype, np.floating) and np.all(lens == np.round(lens)))):
            raise ValueError(f"lengths must be {b} integers (one per item), got {lengths!r}")
        lens = lens.astype(np.int64)
        if np.any(lens < 1) or np.any(lens > s):
            raise ValueError(f"lengths must lie in 1..{s} (an empty clip cannot be encoded), got {lens.tolist()}")

    for i in range(b):
        item = arr[i, :lens[i]]
        if not np.all(np.isfinite(item)):
            bad = int(np.count_nonzero(~np.isfinite(item)))
            raise ValueError(f"wav item {i} has {bad} NaN/inf samples")
        peak = float(np.max(np.abs(item)))
        if peak > 1.0:
            raise ValueError(f"wav item {i} has samples outside [-1, 1] (peak {peak:.4g}): the audio is clipped "
                             "or not normalised; scale it into [-1, 1] first")

    if sample_rate == target_rate:
        out = np.zeros((b, s), np.float32)
        for i in range(b):
            out[i, :lens[i]] = arr[i, :lens[i]]
        return out, lens

    items = [resample(arr[i, :lens[i]], sample_rate, target_rate) for i in range(b)]
    new_lens = np.array([max(1, len(x)) for x in items], np.int64)
    out = np.zeros((b, int(new_lens.max())), np.float32)
    for i, x in enumerate(items):
        out[i, :len(x)] = x
    return out, new_lens
