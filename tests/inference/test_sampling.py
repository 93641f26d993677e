"""The sampling filters on their own: top-k by counting equals top-k by sorting, ties included."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from small_e_jax import sampling
from small_e_jax.sampling import NEG_INF, filter_top_k


def sorted_top_k(logits: np.ndarray, k: int) -> np.ndarray:
    """The reference: numpy's sort gives the k-th largest value; ties with it are kept."""
    kth = np.sort(logits, axis=-1)[..., -k][..., None]
    return np.where(logits < kth, NEG_INF, logits)


@pytest.mark.parametrize("k", [1, 2, 7, 100, 1026])
def test_counting_top_k_equals_sorting(k):
    logits = np.array(jax.random.normal(jax.random.PRNGKey(k), (2, 4, 1027)), np.float32)
    # Ties, also at the cut: whole runs of equal values.
    logits[0, 0, :300] = np.round(logits[0, 0, :300])
    logits[1, 2, :] = 0.5
    logits[1, 3, 10:20] = 3.0
    assert logits.size * logits.shape[-1] <= sampling.RANK_TOP_K_MAX_PAIRS  # the counting path
    got = np.asarray(filter_top_k(jnp.asarray(logits), k))
    np.testing.assert_array_equal(got, sorted_top_k(logits, k))
    kept = (got > NEG_INF).sum(-1)
    assert (kept >= k).all()
    assert kept[1, 2] == 1027  # all tied: all kept


def test_large_inputs_sort_and_agree(monkeypatch):
    logits = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 257))
    counted = filter_top_k(logits, 50)
    monkeypatch.setattr(sampling, "RANK_TOP_K_MAX_PAIRS", 0)  # force the lax.top_k path
    np.testing.assert_array_equal(np.asarray(filter_top_k(logits, 50)), np.asarray(counted))
    np.testing.assert_array_equal(np.asarray(counted), sorted_top_k(np.asarray(logits), 50))


@pytest.mark.parametrize("k", [0, 1027, 5000])
def test_top_k_off(k):
    logits = jax.random.normal(jax.random.PRNGKey(1), (1, 4, 1027))
    np.testing.assert_array_equal(np.asarray(filter_top_k(logits, k)), np.asarray(logits))
