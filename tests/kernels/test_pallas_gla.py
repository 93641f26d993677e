"""Pallas GLA kernels against the token-by-token reference: values, final state, all five
gradients; the Triton kernels' lowering for CUDA and the Mosaic kernels' lowering for TPU on a
CPU; compiled parity on a GPU (`-m gpu`). The TPU kernels have never run on a TPU.

On CPU the kernels run in Pallas interpret mode, whose XLA programs are large: they are
compiled here with XLA's backend optimisation off (compile ~3x faster, run time irrelevant
at these sizes). Default tests use chunk 32 (two sub-chunks, so every code path of the
sub-chunk scheme runs) at tiny shapes; the head dims 64-256 and extreme gates are `slow`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.gla import _AUTO_BACKEND, BACKENDS, gla
from kernels.gla.pallas_gpu import FACTORED_CHUNK, REMOVED_MODES, gla_pallas_gpu, variant_kwargs
from kernels.gla.pallas_tpu import gla_pallas_tpu
from tests.kernels.test_gla import (
    BF16_GRAD_TOL,
    BF16_OUT_TOL,
    BF16_STATE_TOL,
    FP32_TOL,
    GRAD_NAMES,
    assert_close,
    assert_matches_reference,
    make_inputs,
)

_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _gla_fn(backend: str):
    """`gla` for a backend name, or "pallas_gpu@VARIANT" (the benchmark's syntax, e.g.
    "pallas_gpu@:no_factored_chunk"): that backend called directly with the variant's keywords."""
    if "@" not in backend:
        return functools.partial(gla, backend=backend)
    name, spec = backend.split("@")
    return functools.partial(BACKENDS[name], **variant_kwargs(spec))


def _loss_and_grads_fn(backend: str, chunk_size: int, fast_compile: bool):
    call = _gla_fn(backend)

    def run(q, k, v, log_g, s0, w1, w2):
        def loss(q, k, v, log_g, s0):
            o, s = call(q, k, v, log_g, scale=q.shape[-1] ** -0.5, initial_state=s0,
                        chunk_size=chunk_size)
            return jnp.sum(o.astype(jnp.float32) * w1) + jnp.sum(s * w2), (o, s)

        grads, (o, s) = jax.grad(loss, argnums=(0, 1, 2, 3, 4), has_aux=True)(
            q, k, v, log_g, s0
        )
        return o, s, grads

    return jax.jit(run, compiler_options=_FAST_COMPILE if fast_compile else None)


@functools.lru_cache(maxsize=None)
def _cached_fn(backend: str, chunk_size: int, fast_compile: bool):
    return _loss_and_grads_fn(backend, chunk_size, fast_compile)


def loss_and_grads(inputs, backend: str, chunk_size: int = 64):
    """Outputs, final state and the gradients of sum(o * w1) + sum(S_final * w2)."""
    q, k, v, log_g, s0 = inputs
    B, T, H, Dv = v.shape
    Dk = q.shape[-1]
    rng = np.random.default_rng(100)
    w1 = rng.standard_normal((B, T, H, Dv), dtype=np.float32)
    w2 = rng.standard_normal((B, H, Dk, Dv), dtype=np.float32)
    s0 = np.zeros((B, H, Dk, Dv), np.float32) if s0 is None else s0
    fast = jax.default_backend() == "cpu"
    return _cached_fn(backend, chunk_size, fast)(q, k, v, log_g, s0, w1, w2)


def check_backend(backend, inputs, *, chunk_size, out_tol, state_tol, grad_tol):
    """`backend` vs the scan reference (float32, same rounded inputs): o, S_T, 5 gradients."""
    ref_inputs = [None if x is None else jnp.asarray(x, jnp.float32) for x in inputs]
    assert_matches_reference(inputs, loss_and_grads(inputs, backend, chunk_size),
                             loss_and_grads(ref_inputs, "scan"), out_tol=out_tol,
                             state_tol=state_tol, grad_tol=grad_tol)


def test_registered_and_auto_per_platform():
    assert BACKENDS["pallas_gpu"] is gla_pallas_gpu and BACKENDS["pallas_tpu"] is gla_pallas_tpu
    assert _AUTO_BACKEND == {"cpu": "chunked", "gpu": "pallas_gpu", "tpu": "pallas_tpu"}


# The default (whole-chunk matmuls where the gates allow it) and the A/B baseline without them
# (the exact sub-chunk scheme everywhere, diagonal blocks in kernels of their own).
VARIANTS = ["pallas_gpu", "pallas_gpu@:no_factored_chunk"]
# fused_out changes only the primal (no gradient taken), which check_backend never runs (it
# takes gradients): the fused kernel is checked by forward_matches_reference.
FUSED = "pallas_gpu@:fused_out"


def forward_matches_reference(variant, inputs, *, chunk_size, out_tol, state_tol):
    """The jit'd forward of `variant` (no gradient: the primal path, where fused_out applies)
    vs the scan reference in float32: o and the final state."""
    q, k, v, log_g, s0 = inputs
    kwargs = dict(scale=q.shape[-1] ** -0.5, initial_state=s0, chunk_size=chunk_size)
    fast = jax.default_backend() == "cpu"
    fwd = jax.jit(functools.partial(_gla_fn(variant), **kwargs),
                  compiler_options=_FAST_COMPILE if fast else None)
    assert "gla_out_fused_fwd" in str(fwd.trace(q, k, v, log_g).jaxpr)
    o, s = fwd(q, k, v, log_g)
    f32 = [None if x is None else jnp.asarray(x, jnp.float32) for x in inputs]
    o_ref, s_ref = gla(*f32[:4], backend="scan", **dict(kwargs, initial_state=f32[4]))
    assert_close(o, o_ref, out_tol, "o")
    assert_close(s, s_ref, state_tol, "S_T")


@pytest.mark.parametrize("variant", VARIANTS)
def test_pallas_gpu_interpret_fp32(variant):
    """T = 70 (not a multiple of the chunk), Dv = 24 (padded to 32), initial state."""
    inputs = make_inputs(11, 1, 70, 2, 16, 24)
    check_backend(variant, inputs, chunk_size=32, out_tol=FP32_TOL, state_tol=FP32_TOL,
                  grad_tol=FP32_TOL)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_pallas_gpu_fused_out_forward(dtype):
    """fused_out's primal (`gla_out_fused_fwd`, A never stored) against the reference: T = 70
    (ragged), Dv = 24 (padded), initial state, extreme gates: the exact fallback inside the
    fused kernel (head 0) and the factored form (head 1). The model's gates: chunk 128 below."""
    bf16 = dtype == "bfloat16"
    inputs = make_inputs(11, 1, 70, 2, 16, 24, gate="extremes",
                         dtype=jnp.bfloat16 if bf16 else jnp.float32)
    tols = (BF16_OUT_TOL, BF16_STATE_TOL) if bf16 else (FP32_TOL, FP32_TOL)
    forward_matches_reference(FUSED, inputs, chunk_size=32, out_tol=tols[0], state_tol=tols[1])


def test_pallas_gpu_fused_out_only_without_grad():
    """fused_out: the jaxpr of a plain forward runs `gla_out_fused_fwd` and not the unfused
    pair; under jax.grad the custom VJP's forward rule runs the unfused kernels (the backward
    needs A), and the gradients match the reference (fp32, ragged T)."""
    inputs = make_inputs(17, 1, 40, 1, 16, 16)
    q, k, v, log_g, s0 = inputs
    call = functools.partial(gla_pallas_gpu, scale=0.25, initial_state=s0, chunk_size=32,
                             fused_out=True)
    plain = str(jax.make_jaxpr(call)(q, k, v, log_g))
    assert "gla_out_fused_fwd" in plain
    assert "gla_intra_fwd" not in plain and "gla_out_fwd" not in plain
    grad = str(jax.make_jaxpr(jax.grad(lambda q: jnp.sum(call(q, k, v, log_g)[0])))(q))
    assert "gla_out_fused_fwd" not in grad
    assert "gla_intra_fwd" in grad and "gla_out_fwd" in grad
    # Without factored_chunk the flag is ignored (the fused kernel has no sub-chunk form).
    unfactored = str(jax.make_jaxpr(functools.partial(call, factored_chunk=False))(q, k, v, log_g))
    assert "gla_out_fused_fwd" not in unfactored
    check_backend(FUSED, inputs, chunk_size=32, out_tol=FP32_TOL, state_tol=FP32_TOL,
                  grad_tol=FP32_TOL)


def test_pallas_gpu_fused_out_chunk_128():
    """fused_out at chunk 128 (eight sub-chunks in the fused kernel's exact fallback): ragged T,
    fp32 with extreme gates, bf16 with the model's."""
    inputs = make_inputs(22, 1, 200, 2, 32, 32, gate="extremes")
    forward_matches_reference(FUSED, inputs, chunk_size=128, out_tol=FP32_TOL,
                              state_tol=FP32_TOL)
    inputs = make_inputs(23, 1, 200, 2, 32, 32, dtype=jnp.bfloat16)
    forward_matches_reference(FUSED, inputs, chunk_size=128, out_tol=BF16_OUT_TOL,
                              state_tol=BF16_STATE_TOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_pallas_gpu_interpret_bf16_scalar_gate(variant):
    """bf16 inputs, one gate per head (broadcast over Dk), no initial state, B = 2."""
    inputs = make_inputs(12, 2, 45, 1, 32, 16, scalar_gate=True, with_state=False,
                         dtype=jnp.bfloat16)
    check_backend(variant, inputs, chunk_size=32, out_tol=BF16_OUT_TOL,
                  state_tol=BF16_STATE_TOL, grad_tol=BF16_GRAD_TOL)


def test_pallas_gpu_empty_sequence():
    q, k, v, log_g, s0 = make_inputs(13, 1, 0, 2, 16, 16)
    o, s = gla_pallas_gpu(q, k, v, log_g, scale=0.25, initial_state=s0)
    assert o.shape == (1, 0, 2, 16)
    np.testing.assert_array_equal(np.asarray(s), np.asarray(s0))


def test_pallas_gpu_schemes_agree():
    """The default (factored_chunk=True: whole-chunk matmuls, moderate gates) and the exact
    sub-chunk scheme (factored_chunk=False) give the same outputs and gradients (fp32, chunk 32,
    T = 70); the keywords of the deleted A/B schemes are gone, and bad tiles are refused."""
    q, k, v, log_g, s0 = make_inputs(15, 1, 70, 2, 16, 24)

    def run(**schemes):
        def loss(q, k, v, log_g, s0):
            o, s = gla_pallas_gpu(q, k, v, log_g, scale=0.25, initial_state=s0, chunk_size=32,
                                  **schemes)
            return jnp.sum(o * jnp.cos(o)) + jnp.sum(s * s), (o, s)

        grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4), has_aux=True),
                       compiler_options=_FAST_COMPILE)
        grads, (o, s) = grad(q, k, v, log_g, s0)
        return (o, s) + grads

    default = run()
    for name, new, old in zip(("o", "S_T") + GRAD_NAMES, default, run(factored_chunk=False)):
        assert_close(new, old, FP32_TOL, f"{name} vs factored_chunk=False")
    for removed in ({"diag": "separate"}, {"bwd": "split"}, {"unroll": True}, {"factored": True}):
        with pytest.raises(TypeError, match=next(iter(removed))):
            gla_pallas_gpu(q, k, v, log_g, scale=0.25, **removed)
    with pytest.raises(ValueError, match="block_k must be a power of two"):
        gla_pallas_gpu(q, k, v, log_g, scale=0.25, block_k=48)
    with pytest.raises(ValueError, match="num_stages"):
        gla_pallas_gpu(q, k, v, log_g, scale=0.25, num_stages=0)


def test_pallas_gpu_factored_chunk_both_paths():
    """factored_chunk=True: chunks whose gates decay by less than e^FACTORED_MAX_EXP get A and
    the within-chunk dq, dk from whole-chunk matmuls, the others from the exact sub-chunk
    scheme, in one call (fp32 against the reference); bf16 with moderate gates (the matmuls
    everywhere) within bf16 tolerances."""
    from kernels.gla import pallas_gpu

    q, k, v, log_g, s0 = make_inputs(19, 1, 96, 2, 16, 24)
    log_g = np.full(np.shape(log_g), -0.1, np.float32)  # 32 rows: a decay of e^-3.1 per chunk
    log_g[:, 40:44] = -9.0  # except the chunk of rows 32..63
    r = np.cumsum(log_g.reshape(1, 3, 32, 2, 16), axis=2)
    decay = (r[:, :, :1] - r).max(axis=(0, 2, 3, 4))
    assert decay[1] > pallas_gpu.FACTORED_MAX_EXP > decay[[0, 2]].max()
    check_backend("pallas_gpu@:factored_chunk", (q, k, v, jnp.asarray(log_g), s0),
                  chunk_size=32, out_tol=FP32_TOL, state_tol=FP32_TOL, grad_tol=FP32_TOL)
    inputs = make_inputs(20, 1, 50, 2, 32, 32, dtype=jnp.bfloat16)  # moderate gates
    check_backend("pallas_gpu@:factored_chunk", inputs, chunk_size=32, out_tol=BF16_OUT_TOL,
                  state_tol=BF16_STATE_TOL, grad_tol=BF16_GRAD_TOL)


@pytest.mark.parametrize("variant", ["pallas_gpu", "pallas_gpu@:no_factored_chunk"])
def test_pallas_gpu_chunk_128(variant):
    """Chunks of 128 (the A/B candidate for the forward: half the sequential steps of the
    state walks): ragged T, fp32 with extreme gates (whole-chunk matmuls where they are
    allowed, the exact scheme elsewhere), and bf16 with the model's gates."""
    inputs = make_inputs(22, 1, 300, 2, 32, 32, gate="extremes")
    check_backend(variant, inputs, chunk_size=128, out_tol=FP32_TOL, state_tol=FP32_TOL,
                  grad_tol=FP32_TOL)
    inputs = make_inputs(23, 1, 300, 2, 32, 32, dtype=jnp.bfloat16)
    check_backend(variant, inputs, chunk_size=128, out_tol=BF16_OUT_TOL,
                  state_tol=BF16_STATE_TOL, grad_tol=BF16_GRAD_TOL)


def test_variant_kwargs():
    assert variant_kwargs("") == {}
    assert variant_kwargs("64x32x128x1") == {"block_v": 64, "block_k": 32, "block_v_out": 128,
                                             "num_stages": 1}
    assert variant_kwargs("64x64") == {"block_v": 64, "block_k": 64}
    assert variant_kwargs(":factored_chunk") == {"factored_chunk": True}
    assert variant_kwargs(":no_factored_chunk") == {"factored_chunk": False}
    assert variant_kwargs(":fused_out") == {"fused_out": True}
    assert variant_kwargs("64x64x64:fused_out:c128") == {"block_v": 64, "block_k": 64,
                                                        "block_v_out": 64, "fused_out": True,
                                                        "chunk_size": 128}
    assert variant_kwargs(":no_fused_out") == {"fused_out": False}
    assert variant_kwargs("64x64:c128") == {"block_v": 64, "block_k": 64, "chunk_size": 128}
    with pytest.raises(ValueError, match="chunk 96 is not a power of two"):
        variant_kwargs(":c96")
    assert variant_kwargs("32x64::no_factored_chunk") == {"block_v": 32, "block_k": 64,
                                                         "factored_chunk": False}
    # The deleted A/B schemes: a ValueError that says so and lists what is accepted.
    assert set(REMOVED_MODES) == {"stores", "loop_select", "separate", "split", "fused", "unroll",
                                  "factored"}
    for mode in [*REMOVED_MODES, "no_unroll", "no_factored"]:
        with pytest.raises(ValueError, match=f"scheme '{mode}' was removed .*accepted: "
                                             "factored_chunk, no_factored_chunk"):
            variant_kwargs(f"64x64:{mode}")
    with pytest.raises(ValueError, match="unknown scheme 'selects' .accepted: factored_chunk"):
        variant_kwargs(":selects")


@pytest.mark.parametrize("variant", VARIANTS)
def test_pallas_gpu_interpret_bf16_extreme_gates(variant):
    """Both schemes against the reference itself: bf16, extreme per-key gates (the default
    falls back to the exact scheme where they decay strongly), ragged T."""
    inputs = make_inputs(16, 1, 50, 2, 32, 32, gate="extremes", dtype=jnp.bfloat16)
    check_backend(variant, inputs, chunk_size=32, out_tol=BF16_OUT_TOL,
                  state_tol=BF16_STATE_TOL, grad_tol=BF16_GRAD_TOL)


@pytest.mark.slow
@pytest.mark.parametrize("Dk,Dv,variant", [(64, 64, ""), (128, 256, ""), (256, 128, ""),
                                           (128, 256, ":no_factored_chunk"),
                                           (256, 128, ":no_factored_chunk")])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_pallas_gpu_interpret_head_dims(Dk, Dv, variant, dtype):
    """Head dims 64-256 at chunk 64 (four sub-chunks), T = 100, extreme gates per head (by
    default the weak-gate head takes the whole-chunk matmuls, the others the exact scheme)."""
    bf16 = dtype == "bfloat16"
    inputs = make_inputs(14, 1, 100, 3, Dk, Dv, gate="extremes",
                         dtype=jnp.bfloat16 if bf16 else jnp.float32)
    tols = (BF16_OUT_TOL, BF16_STATE_TOL, BF16_GRAD_TOL) if bf16 else (FP32_TOL,) * 3
    check_backend(f"pallas_gpu{'@' + variant if variant else ''}", inputs, chunk_size=64,
                  out_tol=tols[0], state_tol=tols[1], grad_tol=tols[2])


# --- lowering for CUDA on a machine without a GPU ------------------------------------------

SMALL_E = (8, 4096, 4, 128, 256)  # B, T, H, Dk, Dv of one Small-E GLA layer


LOWERING_CASES = [  # (shape, variant): every kernel body of both schemes
    (SMALL_E, ""), (SMALL_E, ":no_factored_chunk"), ((2, 1000, 3, 64, 64), ""),
    ((2, 1000, 3, 64, 64), ":no_factored_chunk"), (SMALL_E, ":c128"),
    (SMALL_E, ":no_factored_chunk:c128"),
    # fused_out: the forward alone (its backward is the default's, lowered above)
    (SMALL_E, ":fused_out"), ((2, 1000, 3, 64, 64), ":fused_out"), (SMALL_E, ":fused_out:c128"),
]


@pytest.mark.parametrize("shape,variant", LOWERING_CASES,
                         ids=["small_e", "small_e-no_factored_chunk", "ragged",
                              "ragged-no_factored_chunk", "small_e-c128",
                              "small_e-no_factored_chunk-c128", "small_e-fused_out",
                              "ragged-fused_out", "small_e-fused_out-c128"])
def test_pallas_gpu_lowers_for_cuda(shape, variant):
    """Forward and backward lower to their Triton kernels for CUDA (runs the Triton lowering of
    every kernel body: unsupported ops or tile shapes fail here, without a GPU), for the
    default scheme and the one kept for A/B timing; fused_out's forward without a gradient."""
    B, T, H, Dk, Dv = shape
    sds = jax.ShapeDtypeStruct
    args = (sds((B, T, H, Dk), jnp.bfloat16), sds((B, T, H, Dk), jnp.bfloat16),
            sds((B, T, H, Dv), jnp.bfloat16), sds((B, T, H, Dk), jnp.float32),
            sds((B, H, Dk, Dv), jnp.float32))
    fused_out = variant_kwargs(variant).get("fused_out", False)

    def loss(q, k, v, g, s0):
        o, s = gla_pallas_gpu(q, k, v, g, scale=Dk**-0.5, initial_state=s0, interpret=False,
                              **variant_kwargs(variant))
        return jnp.sum(o.astype(jnp.float32)) + jnp.sum(s)

    fn = jax.jit(loss if fused_out else jax.grad(loss, argnums=(0, 1, 2, 3, 4)))
    text = fn.trace(*args).lower(lowering_platforms=("cuda",)).as_text()
    kernels = ["gla_chunk_cumsum", "gla_intra_fwd", "gla_states_fwd", "gla_out_fwd", "gla_bwd_da",
               "gla_intra_bwd", "gla_dstates_bwd", "gla_bwd_dqk", "gla_bwd_dv"]
    if fused_out:
        kernels = ["gla_chunk_cumsum", "gla_states_fwd", "gla_out_fused_fwd"]
        assert "gla_intra_fwd" not in text and "gla_out_fwd" not in text
    if not variant_kwargs(variant).get("factored_chunk", FACTORED_CHUNK):
        # the sub-chunk scheme's diagonal blocks in kernels of their own
        kernels += ["gla_intra_fwd_diag", "gla_intra_bwd_diag"]
    assert text.count("stablehlo.custom_call @__gpu$xla.gpu.triton") == len(kernels)
    for name in kernels:
        assert name in text, name  # kernel names are embedded in the serialized Triton IR


# --- compiled on a GPU -------------------------------------------------------------------

GPU_CASES = [
    # (B, T, H, Dk, Dv, scalar_gate, gate)
    (8, 4096, 4, 128, 256, False, "moderate"),  # the Small-E layer
    (2, 1000, 3, 64, 64, False, "extremes"),  # T not a multiple of 64, extreme gates
    (1, 333, 2, 256, 128, False, "mixed"),
    (2, 515, 4, 128, 128, True, "moderate"),  # one gate per head
]


@pytest.mark.gpu
@pytest.mark.parametrize("B,T,H,Dk,Dv,scalar,gate", GPU_CASES)
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_pallas_gpu_compiled_matches_reference(B, T, H, Dk, Dv, scalar, gate, dtype):
    if jax.default_backend() != "gpu":
        pytest.fail("the gpu marker needs a CUDA GPU (jax.default_backend() == 'gpu')")
    bf16 = dtype == "bfloat16"
    inputs = make_inputs(21, B, T, H, Dk, Dv, scalar_gate=scalar, gate=gate,
                         dtype=jnp.bfloat16 if bf16 else jnp.float32)
    tols = (BF16_OUT_TOL, BF16_STATE_TOL, BF16_GRAD_TOL) if bf16 else (FP32_TOL,) * 3
    check_backend("pallas_gpu", inputs, chunk_size=64, out_tol=tols[0], state_tol=tols[1],
                  grad_tol=tols[2])


@pytest.mark.gpu
@pytest.mark.parametrize("B,T,H,Dk,Dv,scalar,gate", GPU_CASES)
@pytest.mark.parametrize("chunk,dtype", [(64, "bfloat16"), (64, "float32"), (128, "bfloat16")])
def test_pallas_gpu_compiled_fused_out_forward(B, T, H, Dk, Dv, scalar, gate, chunk, dtype):
    """fused_out's forward (`gla_out_fused_fwd`, only where no gradient is taken), compiled,
    against the reference: o and the final state (its gradients are the default's). Not fp32
    at chunk 128: its matmul operands at Dk = 256 need 320 KB of shared memory (sm_90 cubin;
    the limit is 227 KB)."""
    if jax.default_backend() != "gpu":
        pytest.fail("the gpu marker needs a CUDA GPU (jax.default_backend() == 'gpu')")
    bf16 = dtype == "bfloat16"
    inputs = make_inputs(21, B, T, H, Dk, Dv, scalar_gate=scalar, gate=gate,
                         dtype=jnp.bfloat16 if bf16 else jnp.float32)
    tols = (BF16_OUT_TOL, BF16_STATE_TOL) if bf16 else (FP32_TOL, FP32_TOL)
    forward_matches_reference(FUSED, inputs, chunk_size=chunk, out_tol=tols[0],
                              state_tol=tols[1])


@pytest.mark.gpu
def test_auto_backend_is_pallas_on_gpu():
    if jax.default_backend() != "gpu":
        pytest.fail("the gpu marker needs a CUDA GPU")
    inputs = make_inputs(22, 2, 300, 2, 64, 64, dtype=jnp.bfloat16)
    o_auto, s_auto = jax.jit(gla)(*inputs[:4], initial_state=inputs[4])
    o_p, s_p = jax.jit(functools.partial(gla, backend="pallas_gpu"))(
        *inputs[:4], initial_state=inputs[4])
    np.testing.assert_array_equal(np.asarray(o_auto, np.float32), np.asarray(o_p, np.float32))
    np.testing.assert_array_equal(np.asarray(s_auto), np.asarray(s_p))


# --- TPU (Mosaic) kernels: interpret mode and lowering; never run on a TPU ---------------------


def test_pallas_tpu_interpret_fp32():
    """Same case as the GPU fp32 test: ragged T, Dk/Dv padded to 128 lanes, initial state."""
    inputs = make_inputs(11, 1, 70, 2, 16, 24)
    check_backend("pallas_tpu", inputs, chunk_size=32, out_tol=FP32_TOL, state_tol=FP32_TOL,
                  grad_tol=FP32_TOL)


@pytest.mark.slow
@pytest.mark.parametrize("Dk,Dv", [(128, 256), (256, 128)])
def test_pallas_tpu_interpret_bf16_head_dims(Dk, Dv):
    inputs = make_inputs(15, 2, 100, 2, Dk, Dv, scalar_gate=Dk == 256, gate="extremes",
                         dtype=jnp.bfloat16)
    check_backend("pallas_tpu", inputs, chunk_size=64, out_tol=BF16_OUT_TOL,
                  state_tol=BF16_STATE_TOL, grad_tol=BF16_GRAD_TOL)


@pytest.mark.slow
def test_pallas_tpu_interpret_params_semantics():
    """TPU-semantics interpreter (pltpu.InterpretParams: scratch buffers, grid order as on a
    TPU core) for the forward and all gradients."""
    from jax.experimental.pallas import tpu as pltpu

    q, k, v, log_g, s0 = make_inputs(16, 1, 40, 1, 16, 16)
    rng = np.random.default_rng(3)
    w1 = rng.standard_normal(v.shape, dtype=np.float32)

    def loss(fn, q, k, v, log_g, s0):
        o, s = fn(q, k, v, log_g, scale=0.25, initial_state=s0)
        return jnp.sum(o * w1) + jnp.sum(s)

    tpu = functools.partial(gla_pallas_tpu, chunk_size=32, interpret=pltpu.InterpretParams())
    ref = functools.partial(gla, backend="scan")
    grads = jax.jit(jax.grad(functools.partial(loss, tpu), argnums=(0, 1, 2, 3, 4)))
    grads_ref = jax.jit(jax.grad(functools.partial(loss, ref), argnums=(0, 1, 2, 3, 4)))
    for name, a, e in zip(GRAD_NAMES, grads(q, k, v, log_g, s0), grads_ref(q, k, v, log_g, s0)):
        assert_close(a, e, FP32_TOL, f"d{name}")


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32], ids=["bf16", "fp32"])
def test_pallas_tpu_lowers_for_tpu(dtype):
    """jax.export for platforms=["tpu"] on a CPU runs the Pallas Mosaic lowering of all five
    kernels (block shapes, supported primitives) at the Small-E layer shape. Mosaic's own
    layout passes run only in the TPU compiler, so this is necessary, not sufficient."""
    B, T, H, Dk, Dv = SMALL_E
    sds = jax.ShapeDtypeStruct
    args = (sds((B, T, H, Dk), dtype), sds((B, T, H, Dk), dtype), sds((B, T, H, Dv), dtype),
            sds((B, T, H, Dk), jnp.float32), sds((B, H, Dk, Dv), jnp.float32))

    def loss(q, k, v, g, s0):
        o, s = gla_pallas_tpu(q, k, v, g, scale=Dk**-0.5, initial_state=s0, interpret=False)
        return jnp.sum(o.astype(jnp.float32)) + jnp.sum(s)

    exported = jax.export.export(jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4))),
                                 platforms=["tpu"])(*args)
    assert exported.platforms == ("tpu",)
    assert exported.mlir_module().count("tpu_custom_call") == 5


@pytest.mark.gpu
@pytest.mark.parametrize("B,T,H,Dk,Dv,scalar,gate", GPU_CASES)
def test_pallas_gpu_compiled_no_factored_chunk_matches_reference(B, T, H, Dk, Dv, scalar, gate):
    """The scheme kept for A/B timing (":no_factored_chunk": the exact sub-chunk scheme, its
    diagonal blocks in kernels of their own), compiled, bf16, on every GPU case."""
    if jax.default_backend() != "gpu":
        pytest.fail("the gpu marker needs a CUDA GPU (jax.default_backend() == 'gpu')")
    inputs = make_inputs(21, B, T, H, Dk, Dv, scalar_gate=scalar, gate=gate, dtype=jnp.bfloat16)
    check_backend("pallas_gpu@:no_factored_chunk", inputs, chunk_size=64, out_tol=BF16_OUT_TOL,
                  state_tol=BF16_STATE_TOL, grad_tol=BF16_GRAD_TOL)
