"""The synthetic reading check: its ground-truth alignment and its command line."""

import numpy as np
import pytest

from experiments import synthetic_reading as sr
from small_e_jax.config import load_config
from small_e_jax.delay import N_SPECIAL
from small_e_jax.synthetic_data import SyntheticSpec, _Examples


def test_true_positions_follow_the_generator():
    """The positions scored as 'aligned' are the tokens the synthetic codes are made from."""
    model = load_config("tiny").model
    spec = SyntheticSpec(text_len=12, frames=48, codes_follow_time=False)
    examples = _Examples(spec, model, 32, salt=1)
    for i in range(32):
        ex = examples[i]
        n_text = int(ex["text_mask"].sum())
        n_frames = int(ex["audio_mask"].sum()) - model.n_codebooks - 1
        # codebook 0 of frame t sits in column t + 1 of the delayed matrix, as token code + N_SPECIAL
        code0 = ex["audio"][1:n_frames + 1, 0] - N_SPECIAL
        source = ex["text"][sr.true_positions(n_text, n_frames)]
        np.testing.assert_array_equal(code0, (7 * source) % model.codebook_size)


def test_aligned_share():
    want = sr.true_positions(4, 8)  # [0 0 1 1 2 2 3 3]
    assert sr.aligned_share(want, 4, 8) == 1.0
    assert sr.aligned_share(want[::-1], 4, 8, tolerance=0) == 0.0
    assert sr.aligned_share(np.array([0, 0, 1, 3, 2, 2, 3, 0]), 4, 8) == pytest.approx(6 / 8)


@pytest.mark.parametrize("argv", [["--arms", "paca,nope"], ["--steps", "0"], ["--arms", ""]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        sr.parse_args(argv)
    assert e.value.code == 2


def test_switch_frames_are_where_the_token_changes():
    np.testing.assert_array_equal(sr.switch_frames(4, 8), [2, 4, 6])
    np.testing.assert_array_equal(sr.switch_frames(1, 5), [])
    np.testing.assert_array_equal(sr.switch_frames(3, 3), [1, 2])
