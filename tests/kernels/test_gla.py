"""GLA kernels: every backend against the token-by-token reference, values and gradients.

Inputs are made with numpy and every JAX computation runs under jit: on a 2-core CPU, XLA
compile time dominates, and eager ops (or jax.random inside jit) multiply the compiles.
"""

from __future__ import annotations

import functools

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.gla import BACKENDS, gla, gla_step
from kernels.gla.reference import gla_reference

# Tolerances: max |actual - expected| <= TOL * max |expected| over the whole array (relative
# to the array's magnitude, so near-zero entries do not dominate).
# float32 inputs: chunked and reference differ by summation order and exp(sum) vs prod(exp)
# (an error that grows with |cumsum log_g|); observed <= 3e-6 for outputs, final states and
# all gradients, including the extreme gates.
FP32_TOL = 1e-4
# bf16 inputs, compared with the float32 reference on the same bf16-rounded inputs: the
# chunked backend feeds bf16 operands to its matmuls (q exp(b), k exp(b_last - b), the
# scores, the per-chunk state snapshots), ~3 significant digits each. Observed ~4e-3 for
# outputs, ~1.5e-3 for final states, <= 5e-3 for gradients.
BF16_OUT_TOL = 2e-2
BF16_STATE_TOL = 1e-2
BF16_GRAD_TOL = 2e-2
GRAD_NAMES = ("q", "k", "v", "log_g", "initial_state")

gla_jit = jax.jit(gla, static_argnames=("scale", "backend", "chunk_size"))
reference_jit = jax.jit(gla_reference, static_argnames=("scale",))


def assert_close(actual, expected, tol: float, what: str, scale: float | None = None) -> None:
    """max |actual - expected| <= tol * scale (default scale: max |expected|); all finite."""
    actual = np.asarray(actual, np.float32)
    expected = np.asarray(expected, np.float32)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values"
    if scale is None:
        scale = float(np.max(np.abs(expected)))
    err = float(np.max(np.abs(actual - expected), initial=0.0)) / (scale + 1e-30)
    assert err <= tol, f"{what}: relative error {err:.2e} > {tol:.0e}"


def make_inputs(
    seed: int,
    B: int,
    T: int,
    H: int,
    Dk: int,
    Dv: int,
    *,
    scalar_gate: bool = False,
    gate: str = "moderate",
    with_state: bool = True,
    dtype=jnp.float32,
):
    """Random q, k, v [B, T, H, D] (dtype), log_g (<= 0, float32), initial state or None.

    gate: "moderate" (gates mostly in (0.7, 1), as a trained GLA tends to have), "strong"
    (exp(-20) per step: only the current token survives; a naive exp(b_i) * exp(-b_j)
    factorisation overflows float32 within 5 steps), "weak" (~no forgetting: the state grows
    with T), "mixed" (each entry anywhere in [-30, 0]), or "extremes" (head h % 3 = 0 strong,
    1 weak, 2 mixed).
    """
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    q, k, v = normal(B, T, H, Dk), normal(B, T, H, Dk), normal(B, T, H, Dv)
    g_shape = (B, T, H) if scalar_gate else (B, T, H, Dk)
    x = normal(*g_shape)
    kinds = {
        "moderate": -np.logaddexp(0.0, -(x + 3.0)),  # log_sigmoid(x + 3)
        "strong": -20.0 + 0.5 * np.tanh(x),
        "weak": -1e-4 * np.abs(x),
        "mixed": -30.0 * rng.random(g_shape, dtype=np.float32) ** 2,
    }
    if gate == "extremes":
        head = np.arange(H).reshape((1, 1, H) + (1,) * (len(g_shape) - 3)) % 3
        log_g = np.select([head == 0, head == 1], [kinds["strong"], kinds["weak"]], kinds["mixed"])
    else:
        log_g = kinds[gate]
    s0 = jnp.asarray(normal(B, H, Dk, Dv)) if with_state else None
    q, k, v = (jnp.asarray(t, dtype) for t in (q, k, v))
    return q, k, v, jnp.asarray(log_g, jnp.float32), s0


@functools.partial(jax.jit, static_argnames=("backend", "chunk_size"))
def _loss_and_grads(q, k, v, log_g, s0, w1, w2, *, backend: str, chunk_size: int):
    def loss(q, k, v, log_g, s0):
        o, s = gla(q, k, v, log_g, initial_state=s0, backend=backend, chunk_size=chunk_size)
        return jnp.sum(o.astype(jnp.float32) * w1) + jnp.sum(s * w2), (o, s)

    grads, (o, s) = jax.grad(loss, argnums=(0, 1, 2, 3, 4), has_aux=True)(q, k, v, log_g, s0)
    return o, s, grads


def loss_and_grads(q, k, v, log_g, s0, *, backend: str, chunk_size: int = 64):
    """Outputs, final state, and gradients of sum(o * w1) + sum(S_final * w2) (w random).

    s0 = None: no initial state; its gradient is then taken at zeros.
    """
    B, T, H, Dv = v.shape
    Dk = q.shape[-1]
    rng = np.random.default_rng(100)
    w1 = rng.standard_normal((B, T, H, Dv), dtype=np.float32)
    w2 = rng.standard_normal((B, H, Dk, Dv), dtype=np.float32)
    s0 = np.zeros((B, H, Dk, Dv), np.float32) if s0 is None else s0
    return _loss_and_grads(
        q, k, v, log_g, s0, w1, w2, backend=backend, chunk_size=chunk_size
    )


def check_against_reference(inputs, *, chunk_size: int, out_tol, state_tol, grad_tol):
    """Chunked vs scan backend: outputs, final state and all five gradients."""
    # Reference in float32 on the same (possibly bf16-rounded) values.
    ref_inputs = [None if x is None else x.astype(jnp.float32) for x in inputs]
    reference = loss_and_grads(*ref_inputs, backend="scan")
    got = loss_and_grads(*inputs, backend="chunked", chunk_size=chunk_size)
    assert_matches_reference(inputs, got, reference, out_tol=out_tol, state_tol=state_tol,
                             grad_tol=grad_tol)


def assert_matches_reference(inputs, got, reference, *, out_tol, state_tol, grad_tol):
    """A backend's (o, S_T, 5 gradients) against the scan reference's on the same inputs
    (also used by the Pallas tests): dtypes, shapes, then values within the tolerances."""
    q, k, v, _, _ = inputs
    o, s, g = got
    o_ref, s_ref, g_ref = reference
    assert o.dtype == q.dtype and o.shape == v.shape
    assert s.dtype == jnp.float32 and s.shape == s_ref.shape
    assert_close(o, o_ref, out_tol, "output")
    assert_close(s, s_ref, state_tol, "final state")
    for name, x, a, e in zip(GRAD_NAMES, inputs, g, g_ref):
        assert a.dtype == (jnp.float32 if x is None else x.dtype), name
        scale = None
        if name == "log_g":
            # dlog_g is a cumulative sum of q * dq - k * dk terms that cancel almost exactly
            # under strong gates (true dlog_g ~ 1e-8): judge its error on the scale of those
            # terms.
            q_max, dq_max, k_max, dk_max = (
                float(np.max(np.abs(np.asarray(t, np.float32)))) for t in (q, g_ref[0], k, g_ref[1])
            )
            scale = max(float(np.max(np.abs(e))), q_max * dq_max, k_max * dk_max)
        assert_close(a, e, grad_tol, f"d{name}", scale=scale)


SHAPE = (2, 100, 3, 16, 24)  # shared by several tests so that jit's cache serves them
# (B, T, H, Dk, Dv, chunk_size, scalar_gate, with_state)
CONFIGS = [
    (*SHAPE, 32, False, True),  # T not a multiple of the chunk, Dk != Dv
    (*SHAPE, 32, True, True),  # one gate per head
    (1, 1, 1, 8, 8, 64, False, True),  # T = 1, H = 1
    (1, 1, 1, 8, 8, 64, True, False),  # T = 1, one gate per head, no initial state
    (2, 64, 1, 32, 16, 64, False, False),  # exactly one chunk, no initial state, Dk > Dv
    (1, 77, 2, 8, 12, 24, False, True),  # chunk 24 = 3 sub-chunks of gcd(24, 16) = 8
    (1, 40, 2, 8, 8, 12, False, True),  # chunk 12 = 3 sub-chunks of 4
]


@pytest.mark.parametrize("B,T,H,Dk,Dv,chunk,scalar,with_state", CONFIGS)
def test_chunked_matches_reference_fp32(B, T, H, Dk, Dv, chunk, scalar, with_state):
    inputs = make_inputs(0, B, T, H, Dk, Dv, scalar_gate=scalar, with_state=with_state)
    check_against_reference(
        inputs, chunk_size=chunk, out_tol=FP32_TOL, state_tol=FP32_TOL, grad_tol=FP32_TOL
    )


@pytest.mark.parametrize("scalar", [False, True])
def test_chunked_matches_reference_bf16(scalar):
    inputs = make_inputs(1, *SHAPE, scalar_gate=scalar, dtype=jnp.bfloat16)
    assert inputs[0].dtype == jnp.bfloat16
    check_against_reference(
        inputs,
        chunk_size=32,
        out_tol=BF16_OUT_TOL,
        state_tol=BF16_STATE_TOL,
        grad_tol=BF16_GRAD_TOL,
    )


@pytest.mark.parametrize("scalar", [False, True])
def test_extreme_gates_finite_and_exact(scalar):
    """Strong (-20 per step), weak (~0) and widely mixed gates, one kind per head."""
    inputs = make_inputs(2, *SHAPE, scalar_gate=scalar, gate="extremes")
    log_g = np.asarray(inputs[3])
    assert log_g[:, :, 0].max() < -19.0  # strong
    assert log_g[:, :, 1].min() > -1e-3  # weak
    assert log_g[:, :, 2].min() < -25.0  # mixed reaches very strong entries
    check_against_reference(
        inputs, chunk_size=32, out_tol=FP32_TOL, state_tol=FP32_TOL, grad_tol=FP32_TOL
    )


def test_strong_gates_keep_only_current_token():
    """With exp(log_g) ~ 2e-9 the state is (almost exactly) k_t^T v_t: check it directly."""
    q, k, v, _, _ = make_inputs(3, 1, 40, 1, 8, 8, with_state=False)
    o, s = gla_jit(q, k, v, jnp.full(q.shape, -20.0), backend="chunked", chunk_size=16)
    q, k, v = (np.asarray(x)[:, :, 0] for x in (q, k, v))
    expected_o = 8**-0.5 * np.einsum("btk,btk,btv->btv", q, k, v)
    assert_close(np.asarray(o)[:, :, 0], expected_o, 1e-5, "output")
    assert_close(np.asarray(s)[:, 0], k[:, -1, :, None] * v[:, -1, None, :], 1e-5, "state")


@pytest.mark.parametrize("scalar", [False, True])
def test_decode_steps_equal_full_sequence(scalar):
    q, k, v, log_g, s0 = make_inputs(4, 2, 21, 2, 8, 12, scalar_gate=scalar)
    o_full, s_full = gla_jit(q, k, v, log_g, initial_state=s0, chunk_size=8)
    step = jax.jit(gla_step)
    q, k, v, log_g = (np.asarray(x) for x in (q, k, v, log_g))  # host-side slicing
    state, outs = s0, []
    for t in range(q.shape[1]):
        o_t, state = step(q[:, t], k[:, t], v[:, t], log_g[:, t], state)
        assert o_t.shape == (2, 2, 12) and state.dtype == jnp.float32
        outs.append(np.asarray(o_t))
    assert_close(np.stack(outs, axis=1), o_full, FP32_TOL, "stepped outputs")
    assert_close(state, s_full, FP32_TOL, "stepped state")


def test_gla_step_bf16_keeps_fp32_state():
    q, k, v, log_g, s0 = make_inputs(5, 1, 1, 2, 8, 8, dtype=jnp.bfloat16)
    o, state = jax.jit(gla_step)(q[:, 0], k[:, 0], v[:, 0], log_g[:, 0], s0)
    assert o.dtype == jnp.bfloat16 and state.dtype == jnp.float32
    f32 = [x.astype(jnp.float32) for x in (q, k, v, log_g)]
    o_ref, s_ref = reference_jit(*f32, scale=8**-0.5, initial_state=s0)
    assert_close(state, s_ref, 1e-6, "state")
    assert_close(o, np.asarray(o_ref)[:, 0], BF16_OUT_TOL, "output")


@pytest.mark.parametrize("scalar", [False, True])
def test_chaining_two_calls_equals_one(scalar):
    """gla over [0, cut) then over [cut, T) from its final state == gla over [0, T)."""
    q, k, v, log_g, s0 = make_inputs(6, 2, 90, 2, 16, 8, scalar_gate=scalar)
    o_all, s_all = gla_jit(q, k, v, log_g, initial_state=s0, chunk_size=32)
    cut = 37
    arrays = [np.asarray(x) for x in (q, k, v, log_g)]
    o1, s1 = gla_jit(*(x[:, :cut] for x in arrays), initial_state=s0, chunk_size=32)
    o2, s2 = gla_jit(*(x[:, cut:] for x in arrays), initial_state=s1, chunk_size=32)
    assert_close(np.concatenate([o1, o2], axis=1), o_all, FP32_TOL, "output")
    assert_close(s2, s_all, FP32_TOL, "state")


def test_auto_backend_and_default_scale():
    q, k, v, log_g, s0 = make_inputs(7, 1, 33, 2, 16, 8)
    o_auto, s_auto = gla_jit(q, k, v, log_g, initial_state=s0)
    o_ref, s_ref = reference_jit(q, k, v, log_g, scale=16**-0.5, initial_state=s0)
    assert_close(o_auto, o_ref, FP32_TOL, "output")
    assert_close(s_auto, s_ref, FP32_TOL, "state")
    o_half, _ = gla_jit(q, k, v, log_g, initial_state=s0, scale=0.5)
    assert_close(o_half, np.asarray(o_ref) * (0.5 / 16**-0.5), FP32_TOL, "explicit scale")


def test_zero_initial_state_equals_none():
    q, k, v, log_g, _ = make_inputs(8, 1, 20, 1, 8, 8, with_state=False)
    o_none, s_none = gla_jit(q, k, v, log_g, chunk_size=8)
    o_zero, s_zero = gla_jit(q, k, v, log_g, initial_state=np.zeros((1, 1, 8, 8)), chunk_size=8)
    np.testing.assert_allclose(np.asarray(o_none), np.asarray(o_zero), rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(s_none), np.asarray(s_zero), rtol=0, atol=1e-6)
    assert float(np.max(np.abs(s_none))) > 0.1


def test_empty_sequence_returns_initial_state():
    q, k, v, log_g, s0 = make_inputs(10, 1, 0, 2, 8, 4)
    for backend in ("scan", "chunked"):
        o, s = gla_jit(q, k, v, log_g, initial_state=s0, backend=backend)
        assert o.shape == (1, 0, 2, 4)
        np.testing.assert_array_equal(np.asarray(s), np.asarray(s0))


def test_jit_and_vmap():
    q, k, v, log_g, s0 = make_inputs(9, 2, 30, 2, 8, 8)
    f = functools.partial(gla, backend="chunked", chunk_size=16)
    # vmap over an extra leading axis of size 3 (each slice a different problem).
    stacked = [np.stack([x, 0.5 * x, -x]) for x in map(np.asarray, (q, k, v))]
    g3 = np.stack([log_g, 2 * log_g, log_g])
    s3 = np.stack([s0, s0, -s0])
    o_v, s_v = jax.jit(jax.vmap(lambda *a: f(*a[:4], initial_state=a[4])))(*stacked, g3, s3)
    assert o_v.shape == (3, 2, 30, 2, 8) and s_v.shape == (3, 2, 2, 8, 8)
    ref = jax.jit(jax.vmap(lambda *a: gla_reference(*a[:4], scale=8**-0.5, initial_state=a[4])))
    o_ref, s_ref = ref(*stacked, g3, s3)
    for i in range(3):
        assert_close(o_v[i], o_ref[i], FP32_TOL, f"vmap output {i}")
        assert_close(s_v[i], s_ref[i], FP32_TOL, f"vmap state {i}")
    # The vmapped reference itself agrees with an unbatched call.
    o_0, s_0 = reference_jit(q, k, v, log_g, scale=8**-0.5, initial_state=s0)
    assert_close(o_ref[0], o_0, 1e-6, "unbatched reference")


def _bad(shape_q=(1, 5, 2, 4), shape_k=None, shape_v=(1, 5, 2, 3), shape_g=None, state=None):
    q = jnp.zeros(shape_q)
    k = jnp.zeros(shape_k or shape_q)
    v = jnp.zeros(shape_v)
    g = jnp.zeros(shape_g or shape_q)
    return q, k, v, g, state


@pytest.mark.parametrize(
    "args,match",
    [
        (_bad(shape_q=(5, 2, 4), shape_v=(5, 2, 3)), "q must have rank 4"),
        (_bad(shape_k=(1, 5, 2, 5)), "k must have the shape of q"),
        (_bad(shape_v=(1, 6, 2, 3)), "v must match q"),
        (_bad(shape_v=(2, 5, 2, 3)), "v must match q"),
        (_bad(shape_v=(1, 5, 3, 3)), "v must match q"),
        (_bad(shape_g=(1, 5, 2, 3)), "log_g must have shape"),
        (_bad(shape_g=(1, 5)), "log_g must have shape"),
        (_bad(state=jnp.zeros((1, 2, 3, 4))), "initial_state must have shape"),
        (_bad(state=jnp.zeros((2, 4, 3))), "initial_state must have shape"),
    ],
)
def test_bad_shapes_raise(args, match):
    q, k, v, g, state = args
    with pytest.raises(ValueError, match=match):
        gla(q, k, v, g, initial_state=state)


def test_bad_dtypes_and_options_raise():
    q, k, v, g, _ = _bad()
    with pytest.raises(ValueError, match="share one dtype"):
        gla(q, k, v.astype(jnp.bfloat16), g)
    with pytest.raises(ValueError, match="floating-point"):
        gla(q.astype(jnp.int32), k.astype(jnp.int32), v.astype(jnp.int32), g)
    with pytest.raises(ValueError, match="unknown backend 'triton'.*'auto', 'scan', 'chunked'"):
        gla(q, k, v, g, backend="triton")
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        gla(q, k, v, g, chunk_size=0)
    assert set(BACKENDS) >= {"scan", "chunked"}


def test_gla_step_bad_inputs_raise():
    q, k, v, g = jnp.zeros((1, 2, 4)), jnp.zeros((1, 2, 4)), jnp.zeros((1, 2, 3)), jnp.zeros((1, 2))
    with pytest.raises(ValueError, match="state must have shape"):
        gla_step(q, k, v, g, jnp.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="q must have rank 3"):
        gla_step(q[None], k, v, g, jnp.zeros((1, 2, 4, 3)))
    with pytest.raises(ValueError, match="state must have shape"):
        gla_step(q, k, v, g, None)


@hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
@hypothesis.given(
    B=st.integers(1, 2),
    T=st.integers(1, 70),
    H=st.integers(1, 3),
    Dk=st.sampled_from([4, 8, 16]),
    Dv=st.sampled_from([4, 8, 12]),
    chunk=st.sampled_from([8, 12, 16, 24, 32, 48]),
    scalar=st.booleans(),
    gate=st.sampled_from(["moderate", "strong", "mixed", "extremes"]),
    seed=st.integers(0, 2**16),
)
def test_property_chunked_matches_reference(B, T, H, Dk, Dv, chunk, scalar, gate, seed):
    q, k, v, log_g, s0 = make_inputs(seed, B, T, H, Dk, Dv, scalar_gate=scalar, gate=gate)
    o_ref, s_ref = gla_jit(q, k, v, log_g, initial_state=s0, backend="scan")
    o, s = gla_jit(q, k, v, log_g, initial_state=s0, backend="chunked", chunk_size=chunk)
    assert_close(o, o_ref, FP32_TOL, "output")
    assert_close(s, s_ref, FP32_TOL, "final state")
