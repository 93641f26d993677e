"""The MusicGen-style delay pattern over RVQ codebooks, and its inverse (docs/model.md §1).

Audio vocabulary, per codebook: ``PAD = 0``, ``BOA = 1`` (begin of audio), ``EOA = 2`` (end of
audio), and code ``c`` as token ``c + 3`` (``N_SPECIAL = 3``).

Layout is time-major: codes ``[T, Q]`` (or ``[B, T, Q]``), Q codebooks. The delayed matrix D has
``T + Q + 1`` columns (time steps); codebook k is shifted right by k + 1::

    D[col, k] = BOA           if col < k + 1
              = codes[col-k-1, k] + 3   if k + 1 <= col <= T + k
              = EOA           if T + k < col <= T + Q

so column 0 is all-BOA and column T + Q all-EOA. A batch of different lengths is right-padded
with PAD to the longest delayed length, and ``mask`` marks the real columns. The model reads
columns ``0 … L-2`` and predicts columns ``1 … L-1``.

Undelay keeps frame 0 (the authors' code drops it, docs/model.md §8): frame f of codebook k is
``D[f + k + 1, k]``; for a generated stream ``o`` (step s predicts column s + 1) it is
``o[f + k, k]`` (:func:`undelay_predictions`).

Works on NumPy arrays (data pipeline) and JAX arrays (inside ``jit``); value checks (codes in
range, lengths) run only on concrete arrays.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

PAD, BOA, EOA = 0, 1, 2
N_SPECIAL = 3

Array = np.ndarray | jax.Array


def _xp(x: Array):
    return np if isinstance(x, np.ndarray) else jnp


def _concrete(x: Array) -> bool:
    return not isinstance(x, jax.core.Tracer)


def delayed_length(n_frames: int, n_codebooks: int) -> int:
    """Columns of the delayed matrix for ``n_frames`` frames: T + Q + 1."""
    return n_frames + n_codebooks + 1


def _check_codes(codes: Array, lengths: Array, codebook_size: Optional[int]) -> None:
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"delay: codes must be integers, got dtype {codes.dtype}")
    if not (_concrete(codes) and _concrete(lengths)):
        return
    codes_np, lengths_np = np.asarray(codes), np.asarray(lengths)
    T = codes_np.shape[1]
    if np.any(lengths_np < 0) or np.any(lengths_np > T):
        raise ValueError(f"delay: lengths must be in [0, {T}] (the frame axis), got {lengths_np.tolist()}")
    valid = np.arange(T)[None, :] < lengths_np[:, None]  # [B, T]
    real = codes_np[valid]
    if real.size and (real.min() < 0 or (codebook_size is not None and real.max() >= codebook_size)):
        bad = real[(real < 0) | (real >= (codebook_size if codebook_size is not None else np.inf))][0]
        upper = f"{codebook_size}" if codebook_size is not None else "inf"
        raise ValueError(f"delay: code {int(bad)} is outside the codebook range [0, {upper})")


def delay(codes: Array, lengths: Optional[Array] = None, *,
          codebook_size: Optional[int] = None) -> tuple[Array, Array]:
    """Apply the delay pattern.

    Args:
      codes: raw codes [T, Q] or [B, T, Q], integers in [0, codebook_size).
      lengths: [B] valid frames per item (frames past it are ignored); default T.
      codebook_size: if given, codes are checked against it (ValueError on concrete arrays).
    Returns:
      tokens [(B,) T + Q + 1, Q] int32 in the audio vocabulary, and
      mask [(B,) T + Q + 1] bool (True for the ``length + Q + 1`` real columns of each item).
    """
    xp = _xp(codes)
    single = codes.ndim == 2
    if codes.ndim not in (2, 3):
        raise ValueError(f"delay: codes must be [T, Q] or [B, T, Q], got shape {codes.shape}")
    if single:
        codes = codes[None]
        if lengths is not None:
            raise ValueError("delay: lengths are for batched codes [B, T, Q]")
    B, T, Q = codes.shape
    lengths = xp.full((B,), T, dtype=np.int32) if lengths is None else xp.asarray(lengths)
    if lengths.shape != (B,):
        raise ValueError(f"delay: lengths must have shape [B] = ({B},), got {lengths.shape}")
    _check_codes(codes, lengths, codebook_size)

    L = delayed_length(T, Q)
    col = xp.arange(L)[:, None]  # [L, 1]
    frame = col - xp.arange(Q)[None, :] - 1  # [L, Q]: source frame of D[col, k]
    # One extra frame so that T = 0 still gathers in range; it is never selected.
    padded = xp.concatenate([codes.astype(np.int32), xp.zeros((B, 1, Q), np.int32)], axis=1)
    index = xp.broadcast_to(xp.clip(frame, 0, T)[None], (B, L, Q))
    gathered = xp.take_along_axis(padded, index, axis=1) + N_SPECIAL
    n = lengths.astype(np.int32)[:, None, None]  # [B, 1, 1]
    tokens = xp.where(frame[None] < 0, BOA,
                      xp.where(frame[None] < n, gathered,
                               xp.where(col[None] <= n + Q, EOA, PAD))).astype(np.int32)
    mask = xp.arange(L)[None, :] < (lengths.astype(np.int32)[:, None] + Q + 1)
    return (tokens[0], mask[0]) if single else (tokens, mask)


def undelay(tokens: Array) -> tuple[Array, Array]:
    """Invert :func:`delay` on a delayed matrix (column 0 = the BOA column); keeps frame 0.

    Args:
      tokens: [(B,) L, Q] audio-vocabulary tokens, L >= Q + 1.
    Returns:
      codes [(B,) L - Q - 1, Q] int32 (token - 3, clamped at 0), and
      valid [(B,) L - Q - 1, Q] bool: True where the token was a real code (not PAD/BOA/EOA).
    """
    xp = _xp(tokens)
    if tokens.ndim not in (2, 3):
        raise ValueError(f"undelay: tokens must be [L, Q] or [B, L, Q], got shape {tokens.shape}")
    L, Q = tokens.shape[-2:]
    if L < Q + 1:
        raise ValueError(f"undelay: {L} columns is fewer than Q + 1 = {Q + 1} (no frame to recover)")
    T = L - Q - 1
    index = xp.arange(T)[:, None] + xp.arange(Q)[None, :] + 1  # [T, Q]: column of frame f, codebook k
    index = xp.broadcast_to(index, (*tokens.shape[:-2], T, Q))
    picked = xp.take_along_axis(tokens, index, axis=-2).astype(np.int32)
    return xp.maximum(picked - N_SPECIAL, 0), picked >= N_SPECIAL


def undelay_predictions(outputs: Array) -> tuple[Array, Array]:
    """Undelay a generated stream: ``outputs[(B,) s, Q]`` = prediction of column s + 1.

    Frame f of codebook k is ``outputs[f + k, k]``. Returns codes and valid as :func:`undelay`,
    with ``S - Q`` frames for S steps.
    """
    xp = _xp(outputs)
    boa = xp.full((*outputs.shape[:-2], 1, outputs.shape[-1]), BOA, dtype=outputs.dtype)
    return undelay(xp.concatenate([boa, outputs], axis=-2))
