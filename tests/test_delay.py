"""The MusicGen delay pattern and its inverse (SPEC §1)."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from small_e_jax.delay import BOA, EOA, N_SPECIAL, PAD, delay, delayed_length, undelay, undelay_predictions


def test_small_example_by_hand():
    codes = np.array([[10, 20], [11, 21], [12, 22]])  # T = 3 frames, Q = 2 codebooks
    tokens, mask = delay(codes)
    c = N_SPECIAL
    expected = np.array([
        [BOA, BOA],
        [10 + c, BOA],
        [11 + c, 20 + c],
        [12 + c, 21 + c],
        [EOA, 22 + c],
        [EOA, EOA],
    ])
    np.testing.assert_array_equal(tokens, expected)
    assert tokens.shape[0] == delayed_length(3, 2) == 6 and mask.all()


def test_batch_is_right_padded_per_item():
    codes = np.arange(2 * 4 * 3).reshape(2, 4, 3)
    tokens, mask = delay(codes, np.array([4, 2]))
    assert tokens.shape == (2, 4 + 3 + 1, 3)
    np.testing.assert_array_equal(mask.sum(1), [8, 6])
    np.testing.assert_array_equal(tokens[1, 6:], PAD)  # past the item's delayed length
    np.testing.assert_array_equal(tokens[1, 5], EOA)  # its last real column is all-EOA
    single, _ = delay(codes[1, :2])
    np.testing.assert_array_equal(tokens[1, :6], single)  # frames past the length are ignored


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(T=st.integers(0, 9), Q=st.integers(1, 5), data=st.data())
def test_undelay_inverts_delay_and_keeps_frame_0(T, Q, data):
    B = 3
    codes = np.array(data.draw(st.lists(st.integers(0, 1023), min_size=B * T * Q, max_size=B * T * Q)),
                     dtype=np.int64).reshape(B, T, Q)
    lengths = np.array(data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B)))
    tokens, mask = delay(codes, lengths, codebook_size=1024)
    recovered, valid = undelay(tokens)
    assert recovered.shape == codes.shape
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(recovered[b, :n], codes[b, :n])
        assert valid[b, :n].all() and not valid[b, n:].any()
    # The stream the model generates (step s predicts column s + 1) undelays the same way.
    recovered2, _ = undelay_predictions(tokens[:, 1:])
    np.testing.assert_array_equal(recovered2, recovered)


def test_jax_arrays_and_jit():
    codes = jax.random.randint(jax.random.key(0), (2, 5, 4), 0, 1024)
    lengths = jnp.array([5, 3])
    tokens, mask = jax.jit(delay)(codes, lengths)
    np_tokens, np_mask = delay(np.asarray(codes), np.asarray(lengths))
    np.testing.assert_array_equal(tokens, np_tokens)
    np.testing.assert_array_equal(mask, np_mask)
    np.testing.assert_array_equal(jax.jit(undelay)(tokens)[0][0], codes[0])


@pytest.mark.parametrize("codes, lengths, message", [
    (np.full((1, 3, 2), 1024), None, "outside the codebook range"),
    (np.full((1, 3, 2), -1), None, "outside the codebook range"),
    (np.zeros((1, 3, 2)), None, "integers"),
    (np.zeros((3,), np.int32), None, r"\[T, Q\]"),
    (np.zeros((2, 3, 2), np.int32), np.array([1, 4]), "lengths"),
    (np.zeros((2, 3, 2), np.int32), np.array([1]), "lengths"),
])
def test_bad_codes_raise(codes, lengths, message):
    with pytest.raises(ValueError, match=message):
        delay(codes, lengths, codebook_size=1024)


def test_out_of_range_codes_past_the_length_are_ignored():
    codes = np.zeros((1, 3, 2), np.int32)
    codes[0, 2] = 5000  # beyond length 2: padding, not checked
    delay(codes, np.array([2]), codebook_size=1024)


def test_undelay_needs_enough_columns():
    with pytest.raises(ValueError, match="fewer than"):
        undelay(np.zeros((2, 4), np.int32))
