"""Skips, repeats and stalls from the cross-attention alignment (independent of any ASR).

Input: the attention of one utterance ``[L, J]`` (audio frames x text tokens), e.g. the
model's ``return_attention`` output ``[B, 2 or H, L, J]`` reduced over its second axis by
:func:`alignment_path` (PACA: the sum of its two maps; plain: the mean over heads). The
*path* is the argmax text position per frame ``[L]``. On it:

* **backward jump** (a repeat): the position falls by more than ``back_tolerance`` tokens
  between consecutive frames;
* **forward jump** (a skip): the position rises by more than ``max_forward`` tokens between
  consecutive frames;
* **stall**: the position stays the same for more than ``max_stall`` frames;
* **end skip**: the last frame's position is more than ``end_tolerance`` tokens before the last
  text token (the model stopped before reading all text).

An utterance counts as *skipping* if it has a forward jump or an end skip, as *repeating* if
it has a backward jump. Frame counts are in codec frames (75 frames/s for DAC 24 kHz); a
token is a BPE or phoneme token of the model's text encoder.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class AlignmentThresholds:
    max_forward: int = 3  # tokens one frame may advance
    back_tolerance: int = 1  # tokens one frame may fall back without counting
    max_stall: int = 40  # frames on one token (~0.53 s at 75 frames/s)
    end_tolerance: int = 2  # tokens the last frame may fall short of the text's end


@dataclasses.dataclass
class AlignmentEvents:
    backward_jumps: int
    forward_jumps: int
    stalls: int
    longest_stall: int
    end_skip: bool
    frames: int
    text_tokens: int

    @property
    def skips(self) -> bool:
        return self.forward_jumps > 0 or self.end_skip

    @property
    def repeats(self) -> bool:
        return self.backward_jumps > 0


def alignment_path(attention: np.ndarray, text_len: Optional[int] = None,
                   frames: Optional[int] = None) -> np.ndarray:
    """Argmax text position per frame.

    attention: [L, J] or [A, L, J] (A maps or heads, summed — PACA's two maps are mixtures over
      the same text positions). ``text_len``/``frames`` crop padding (valid tokens/frames).
    Returns: int path [L'] with values in [0, text_len).
    """
    att = np.asarray(attention, dtype=np.float64)
    if att.ndim == 3:
        att = att.sum(axis=0)
    if att.ndim != 2:
        raise ValueError(f"attention must be [L, J] or [A, L, J], got shape {np.shape(attention)}")
    if text_len is not None:
        att = att[:, :text_len]
    if frames is not None:
        att = att[:frames]
    if att.size == 0:
        raise ValueError(f"empty attention after cropping (shape {att.shape})")
    return att.argmax(axis=1)


def alignment_events(path: np.ndarray, text_len: int,
                     thresholds: AlignmentThresholds = AlignmentThresholds()) -> AlignmentEvents:
    """Count jumps and stalls of a path [L] over ``text_len`` tokens (see module doc)."""
    path = np.asarray(path, dtype=np.int64)
    if path.ndim != 1 or path.size == 0:
        raise ValueError(f"path must be a non-empty 1-D array, got shape {path.shape}")
    if text_len < 1 or path.max() >= text_len or path.min() < 0:
        raise ValueError(f"path values must lie in [0, text_len={text_len})")
    step = np.diff(path)
    backward = int((step < -thresholds.back_tolerance).sum())
    forward = int((step > thresholds.max_forward).sum())
    # Run lengths of constant position.
    change = np.flatnonzero(np.diff(path) != 0)
    bounds = np.concatenate([[-1], change, [path.size - 1]])
    runs = np.diff(bounds)
    stalls = int((runs > thresholds.max_stall).sum())
    end_skip = bool(path[-1] < text_len - 1 - thresholds.end_tolerance)
    return AlignmentEvents(backward, forward, stalls, int(runs.max()), end_skip, int(path.size), int(text_len))


def summarize_alignment(events: Iterable[AlignmentEvents]) -> dict[str, float]:
    """Rates per 100 utterances: utterances with a skip / repeat / stall, and event counts."""
    events = list(events)
    n = len(events)
    if n == 0:
        raise ValueError("no utterances to summarize")
    per100 = 100.0 / n
    return {
        "utterances": n,
        "skip_utterances_per_100": sum(e.skips for e in events) * per100,
        "repeat_utterances_per_100": sum(e.repeats for e in events) * per100,
        "stall_utterances_per_100": sum(e.stalls > 0 for e in events) * per100,
        "forward_jumps_per_100": sum(e.forward_jumps for e in events) * per100,
        "backward_jumps_per_100": sum(e.backward_jumps for e in events) * per100,
        "end_skips_per_100": sum(e.end_skip for e in events) * per100,
    }
