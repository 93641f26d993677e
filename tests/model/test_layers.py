"""Building blocks against direct NumPy versions of SPEC §2-§3 formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from small_e_jax.model.layers import apply_rotary, sinusoids
from small_e_jax.model.lclm import GatedLinearAttention, LCLMBlock


def test_rotary_depends_only_on_relative_position():
    rng = np.random.default_rng(0)
    q, k = (jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32) for _ in range(2))

    def score(m, n):
        rq = apply_rotary(q, jnp.array([m]), 8)
        rk = apply_rotary(k, jnp.array([n]), 8)
        return float((rq * rk).sum())

    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-5)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)
    rotated = apply_rotary(q, jnp.array([5]), 8)
    np.testing.assert_array_equal(rotated[..., 8:], q[..., 8:])  # only the first rot_dim channels
    np.testing.assert_allclose(jnp.linalg.norm(rotated[..., :2]), jnp.linalg.norm(q[..., :2]), rtol=1e-6)
    np.testing.assert_allclose(apply_rotary(q, jnp.array([0]), 8), q, atol=1e-7)
    # Pair (0, 1) turns by the position times frequency 1: interleaved pairs.
    x = jnp.zeros((1, 1, 1, 8)).at[..., 0].set(1.0)
    np.testing.assert_allclose(apply_rotary(x, jnp.array([0.5]), 8)[0, 0, 0, :2], [np.cos(0.5), np.sin(0.5)],
                               atol=1e-6)


def test_sinusoids_concatenate_sin_then_cos():
    P = np.asarray(sinusoids(5, 8))
    assert P.shape == (5, 8)
    np.testing.assert_allclose(P[0], [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-7)
    omega = 10000.0 ** (-2 * np.arange(4) / 8)
    np.testing.assert_allclose(P[3], np.concatenate([np.sin(3 * omega), np.cos(3 * omega)]), atol=1e-6)


def _np_gla(layer: GatedLinearAttention, x: np.ndarray) -> np.ndarray:
    """SPEC §2 by hand, token by token: x [T, d] -> y [T, d]."""
    W = lambda lin: np.asarray(lin.kernel[...], np.float64)  # noqa: E731
    H, K, V = layer.heads, layer.head_k, layer.head_v
    q = (x @ W(layer.q_proj)).reshape(-1, H, K)
    k = (x @ W(layer.k_proj)).reshape(-1, H, K)
    v = (x @ W(layer.v_proj)).reshape(-1, H, V)
    g = (x @ W(layer.g_proj)).reshape(-1, H, V)
    if layer.scalar_gate:
        logits = x @ W(layer.gate) + np.asarray(layer.gate.bias[...])
        logits = np.repeat(logits[..., None], K, axis=-1)
    else:
        logits = (x @ W(layer.gate_down) @ W(layer.gate_up) + np.asarray(layer.gate_up.bias[...])).reshape(-1, H, K)
    alpha = np.exp(-np.logaddexp(0, -logits) / layer.gate_logit_normalizer)  # exp(logsigmoid / 16)
    S = np.zeros((H, K, V))
    out = []
    for t in range(x.shape[0]):
        S = alpha[t][..., None] * S + k[t][..., None] * v[t][:, None, :]
        o = np.einsum("hk,hkv->hv", q[t] * K**-0.5, S)
        o = o / np.sqrt((o**2).mean(-1, keepdims=True) + 1e-5) * np.asarray(layer.norm_weight[...])
        y = o * g[t] / (1 + np.exp(-g[t]))
        out.append(y.reshape(-1) @ W(layer.o_proj))
    return np.stack(out)


@pytest.mark.parametrize("scalar_gate", [False, True])
def test_gla_layer_matches_the_spec_recurrence(scalar_gate):
    layer = GatedLinearAttention(16, 2, expand_k=1.0, expand_v=2.0, gate_low_rank=4, gate_logit_normalizer=16.0,
                                 scalar_gate=scalar_gate, chunk_size=4, rngs=nnx.Rngs(0))
    # Larger gate biases so the forget gate is far from 1 and actually matters.
    bias = layer.gate if scalar_gate else layer.gate_up
    bias.bias[...] = jax.random.normal(jax.random.key(2), bias.bias[...].shape) * 30.0
    x = np.random.default_rng(1).normal(size=(1, 9, 16)).astype(np.float32)
    y, state = nnx.jit(lambda m, x: m(x))(layer, jnp.asarray(x))
    expected = _np_gla(layer, x[0].astype(np.float64))
    np.testing.assert_allclose(np.asarray(y[0]), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert state.shape == (1, 2, 8, 16) and state.dtype == jnp.float32


def test_remat_changes_nothing_but_memory():
    x = jax.random.normal(jax.random.key(0), (2, 6, 16))

    def block(remat):
        mixer = GatedLinearAttention(16, 2, expand_k=1.0, expand_v=2.0, gate_low_rank=4,
                                     gate_logit_normalizer=16.0, chunk_size=4, rngs=nnx.Rngs(0))
        return LCLMBlock(16, mixer, dropout=0.0, remat=remat, dtype=jnp.float32, param_dtype=jnp.float32,
                         rngs=nnx.Rngs(0))

    @nnx.jit
    def value_and_grad(model, x):
        return nnx.value_and_grad(lambda m: jnp.sum(m(x)[0] ** 2))(model)

    (v0, g0), (v1, g1) = value_and_grad(block(False), x), value_and_grad(block(True), x)
    assert float(v0) == pytest.approx(float(v1), rel=1e-6)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(float(jnp.abs(a).max()) > 0 for a in jax.tree.leaves(g0))
