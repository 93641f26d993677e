"""Skip/repeat/stall detection on constructed attention maps and paths."""

import numpy as np
import pytest

from small_e_jax.eval.attention_alignment import (AlignmentThresholds, alignment_events, alignment_path,
                                                  summarize_alignment)


def diagonal(frames: int, tokens: int) -> np.ndarray:
    """A clean monotonic attention [L, J]: frame t attends token t * J // L."""
    att = np.full((frames, tokens), 0.01)
    att[np.arange(frames), np.arange(frames) * tokens // frames] = 1.0
    return att / att.sum(axis=1, keepdims=True)


def test_clean_diagonal_has_no_events():
    path = alignment_path(diagonal(60, 12))
    e = alignment_events(path, 12)
    assert (e.backward_jumps, e.forward_jumps, e.stalls, e.end_skip) == (0, 0, 0, False)
    assert e.longest_stall == 5 and not e.skips and not e.repeats


def test_paca_maps_are_summed_and_padding_cropped():
    att = np.zeros((2, 10, 8))
    att[0] = np.pad(diagonal(10, 5), ((0, 0), (0, 3)))  # A1 (content-based)
    att[1] = 0.5 * att[0]  # A2 (position-based), agreeing
    att[:, :, 7] = 0.3  # a padded token that must not win once cropped to the 5 real tokens
    np.testing.assert_array_equal(alignment_path(att, text_len=5, frames=8), np.arange(8) * 5 // 10)


def test_jump_back_forward_stall_and_end_skip():
    t = AlignmentThresholds(max_forward=3, back_tolerance=1, max_stall=4, end_tolerance=1)
    repeat = np.array([0, 1, 2, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9])  # back from 3 to 1: one repeat
    e = alignment_events(repeat, 10, t)
    assert (e.backward_jumps, e.forward_jumps, e.stalls, e.end_skip) == (1, 0, 0, False)
    skip = np.array([0, 1, 2, 7, 8, 9])  # 2 -> 7 jumps over 4 tokens
    e = alignment_events(skip, 10, t)
    assert (e.backward_jumps, e.forward_jumps, e.end_skip) == (0, 1, False) and e.skips
    stall = np.array([0, 1, 2, 2, 2, 2, 2, 2, 3, 4, 5])  # 6 frames on token 2 > max_stall 4
    e = alignment_events(stall, 6, t)
    assert (e.stalls, e.longest_stall) == (1, 6)
    early = np.array([0, 1, 2, 3, 4])  # stops at token 4 of 10
    assert alignment_events(early, 10, t).end_skip
    jitter = np.array([0, 1, 0, 1, 2, 3])  # falling back by one token is tolerated
    assert alignment_events(jitter, 4, t).backward_jumps == 0


def test_summary_per_100():
    t = AlignmentThresholds(max_forward=2, max_stall=50)
    events = [alignment_events(np.arange(10), 10, t)] * 3 + [alignment_events(np.array([0, 1, 5, 6, 7, 8, 9]), 10, t)]
    s = summarize_alignment(events)
    assert s["skip_utterances_per_100"] == 25.0 and s["repeat_utterances_per_100"] == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="text_len"):
        alignment_events(np.array([0, 5]), 3)
    with pytest.raises(ValueError, match="attention must be"):
        alignment_path(np.zeros(5))
