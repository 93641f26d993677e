"""Chunked GLA as Pallas Mosaic TPU kernels, forward and backward (`jax.custom_vjp`).

NEVER RUN ON A TPU: no TPU was available. What is proven: every kernel passes Mosaic's TPU
lowering on a CPU machine (`jax.export(..., platforms=["tpu"])`, tests/kernels/
test_pallas_gla.py), and the same kernels match the reference in Pallas interpret mode on CPU.
Speed on a TPU is unmeasured.

Same contract and the same math as pallas_gpu.py (read its docstring for the decomposition,
the sub-chunk scheme and the dlog_g identity); what differs is the TPU structure:

  * Layout [B, H, T, D] (transposed by XLA outside the kernels) so that every block's last
    two dims are (chunk, D): Mosaic tiles are (8, 128) and a squeezed H between T and D would
    break them.
  * The recurrent kernels run over the grid (B, H, N) with the chunk axis "arbitrary"
    (sequential on one core) and the fp32 state in a VMEM scratch buffer that persists across
    grid steps; Pallas double-buffers each chunk's HBM->VMEM copies behind the compute. The
    backward dk/dv walk visits chunks in reverse through its index maps. The whole Dk x Dv
    state fits in VMEM (128 x 256 fp32 = 128 KiB), so no value blocking (B * H programs in
    parallel; on a v4/v5p megacore the two parallel axes are split over the cores).
  * The within-chunk kernels (scores A, and the within-chunk gradients) are pallas_gpu's
    kernel bodies: they only index [C, D] refs.
  * No cumsum inside kernels (Mosaic has no lowering for it): the within-chunk cumsum of
    log_g is done by XLA before the kernels, and dlog_g's reverse cumsum after them.

`interpret`: None (default) = interpret mode when JAX's default backend is not a TPU.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from kernels.gla.pallas_gpu import (
    _advance_state,
    _chunk_cumsum,
    _dot,
    _intra_bwd_kernel,
    _intra_fwd_kernel,
    _pad_axis,
    gate_gradient,
)

_F32 = jnp.float32
SUB_MIN = 16  # smallest chunk (one sub-chunk of pallas_gpu.SUB rows)


def _use_interpret(interpret: bool | None) -> bool:
    return jax.default_backend() != "tpu" if interpret is None else interpret


def _semantics(*kinds: str) -> pltpu.CompilerParams:
    return pltpu.CompilerParams(dimension_semantics=kinds)


def _chunk_spec(C: int, D: int, reverse_n: int | None = None) -> pl.BlockSpec:
    """[B, H, Tp, D] -> chunk n's [C, D] block (chunk N - 1 - n when reverse_n = N)."""
    if reverse_n is None:
        return pl.BlockSpec((None, None, C, D), lambda b, h, n: (b, h, n, 0))
    return pl.BlockSpec((None, None, C, D), lambda b, h, n: (b, h, reverse_n - 1 - n, 0))


def _state_spec(Dv: int, Dk: int) -> pl.BlockSpec:
    return pl.BlockSpec((None, None, Dv, Dk), lambda b, h, n: (b, h, 0, 0))


# ----------------------------------------------------------------------------------------------
# recurrent kernels: one chunk per grid step, the state in VMEM scratch


def _fwd_kernel(q_ref, k_ref, v_ref, b_ref, a_ref, s0_ref, o_ref, st_ref, s_scr, *, scale,
                mm_dtype):
    """Chunk n of one (batch, head). Refs: q, k, b [C, Dk]; v, o [C, Dv]; a [C, C];
    s0, st, s_scr [Dv, Dk] (state transposed: the gate scales its columns)."""
    n = pl.program_id(2)
    C = q_ref.shape[0]

    @pl.when(n == 0)
    def _():
        s_scr[...] = s0_ref[...]

    s = s_scr[...]
    b = b_ref[...]
    b_last = b_ref[pl.ds(C - 1, 1), :]
    q = q_ref[...].astype(_F32)
    k = k_ref[...].astype(_F32)
    v = v_ref[...]
    o = _dot(q * jnp.exp(b), s, mm_dtype, trans_b=True) + _dot(a_ref[...], v, mm_dtype)
    o_ref[...] = (scale * o).astype(o_ref.dtype)
    s = _advance_state(s, k, v, b, b_last, mm_dtype)
    s_scr[...] = s

    @pl.when(n == pl.num_programs(2) - 1)
    def _():
        st_ref[...] = s


def _bwd_dq_kernel(k_ref, v_ref, b_ref, do_ref, s0_ref, dqi_ref, dq_ref, s_scr, *, scale,
                   mm_dtype):
    """Forward walk recomputing the state. Refs: k, b, dqi, dq [C, Dk]; v, do [C, Dv];
    s0, s_scr [Dv, Dk]."""
    n = pl.program_id(2)
    C = k_ref.shape[0]

    @pl.when(n == 0)
    def _():
        s_scr[...] = s0_ref[...]

    s = s_scr[...]
    b = b_ref[...]
    b_last = b_ref[pl.ds(C - 1, 1), :]
    dq_ref[...] = scale * _dot(do_ref[...], s, mm_dtype) * jnp.exp(b) + dqi_ref[...]
    s_scr[...] = _advance_state(s, k_ref[...], v_ref[...], b, b_last, mm_dtype)


def _bwd_dkv_kernel(q_ref, k_ref, v_ref, b_ref, do_ref, dst_ref, dki_ref, dvi_ref, dk_ref,
                    dv_ref, ds0_ref, ds_scr, *, scale, mm_dtype):
    """Backward walk (grid step n visits chunk N - 1 - n) with dS, the gradient of the state
    leaving the chunk. Refs: q, k, b, dki, dk [C, Dk]; v, do, dvi, dv [C, Dv];
    dst, ds0, ds_scr [Dv, Dk]."""
    n = pl.program_id(2)
    C = k_ref.shape[0]

    @pl.when(n == 0)
    def _():
        ds_scr[...] = dst_ref[...]

    ds = ds_scr[...]
    b = b_ref[...]
    b_last = b_ref[pl.ds(C - 1, 1), :]
    tail = jnp.exp(b_last - b)
    v = v_ref[...]
    dk_ref[...] = _dot(v, ds, mm_dtype) * tail + dki_ref[...]
    k_tail = k_ref[...].astype(_F32) * tail
    dv_ref[...] = _dot(k_tail, ds, mm_dtype, trans_b=True) + dvi_ref[...]
    q_e = q_ref[...].astype(_F32) * jnp.exp(b)
    ds = ds * jnp.exp(b_last) + scale * _dot(do_ref[...], q_e, mm_dtype, trans_a=True)
    ds_scr[...] = ds

    @pl.when(n == pl.num_programs(2) - 1)
    def _():
        ds0_ref[...] = ds


# ----------------------------------------------------------------------------------------------
# pallas_call wrappers; arrays are [B, H, Tp, D]


def _forward(q, k, v, b, s0t, *, chunk, scale, interpret):
    B, H, Tp, Dk = q.shape
    Dv = v.shape[-1]
    C, N = chunk, Tp // chunk
    mm_dtype = q.dtype
    ck, cv, cc = _chunk_spec(C, Dk), _chunk_spec(C, Dv), _chunk_spec(C, C)
    a = pl.pallas_call(
        functools.partial(_intra_fwd_kernel, mm_dtype=mm_dtype),
        grid=(B, H, N),
        in_specs=[ck, ck, ck],
        out_specs=cc,
        out_shape=jax.ShapeDtypeStruct((B, H, Tp, C), mm_dtype),  # a matmul operand only
        compiler_params=_semantics("parallel", "parallel", "parallel"),
        interpret=interpret,
        name="gla_intra_fwd_tpu",
    )(q, k, b)
    o, st = pl.pallas_call(
        functools.partial(_fwd_kernel, scale=scale, mm_dtype=mm_dtype),
        grid=(B, H, N),
        in_specs=[ck, ck, cv, ck, cc, _state_spec(Dv, Dk)],
        out_specs=[cv, _state_spec(Dv, Dk)],
        out_shape=[jax.ShapeDtypeStruct(v.shape, q.dtype),
                   jax.ShapeDtypeStruct((B, H, Dv, Dk), _F32)],
        scratch_shapes=[pltpu.VMEM((Dv, Dk), _F32)],
        compiler_params=_semantics("parallel", "parallel", "arbitrary"),
        interpret=interpret,
        name="gla_fwd_tpu",
    )(q, k, v, b, a, s0t)
    return o, a, st


def _backward(q, k, v, b, a, s0t, do, dst, *, scale, interpret):
    B, H, Tp, Dk = q.shape
    Dv = v.shape[-1]
    C = a.shape[-1]
    N = Tp // C
    mm_dtype = q.dtype
    do = do.astype(q.dtype)
    f32 = lambda shape: jax.ShapeDtypeStruct(shape, _F32)  # noqa: E731
    ck, cv, cc = _chunk_spec(C, Dk), _chunk_spec(C, Dv), _chunk_spec(C, C)
    dqi, dki, dvi = pl.pallas_call(
        functools.partial(_intra_bwd_kernel, scale=scale, mm_dtype=mm_dtype),
        grid=(B, H, N),
        in_specs=[ck, ck, cv, ck, cc, cv],
        out_specs=[ck, ck, cv],
        out_shape=[f32(q.shape), f32(q.shape), f32(v.shape)],
        compiler_params=_semantics("parallel", "parallel", "parallel"),
        interpret=interpret,
        name="gla_intra_bwd_tpu",
    )(q, k, v, b, a, do)
    dq = pl.pallas_call(
        functools.partial(_bwd_dq_kernel, scale=scale, mm_dtype=mm_dtype),
        grid=(B, H, N),
        in_specs=[ck, cv, ck, cv, _state_spec(Dv, Dk), ck],
        out_specs=ck,
        out_shape=f32(q.shape),
        scratch_shapes=[pltpu.VMEM((Dv, Dk), _F32)],
        compiler_params=_semantics("parallel", "parallel", "arbitrary"),
        interpret=interpret,
        name="gla_bwd_dq_tpu",
    )(k, v, b, do, s0t, dqi)
    rk, rv = _chunk_spec(C, Dk, reverse_n=N), _chunk_spec(C, Dv, reverse_n=N)
    dk, dv, ds0t = pl.pallas_call(
        functools.partial(_bwd_dkv_kernel, scale=scale, mm_dtype=mm_dtype),
        grid=(B, H, N),
        in_specs=[rk, rk, rv, rk, rv, _state_spec(Dv, Dk), rk, rv],
        out_specs=[rk, rv, _state_spec(Dv, Dk)],
        out_shape=[f32(q.shape), f32(v.shape), f32((B, H, Dv, Dk))],
        scratch_shapes=[pltpu.VMEM((Dv, Dk), _F32)],
        compiler_params=_semantics("parallel", "parallel", "arbitrary"),
        interpret=interpret,
        name="gla_bwd_dkv_tpu",
    )(q, k, v, b, do, dst, dki, dvi)
    return dq, dk, dv, ds0t


# ----------------------------------------------------------------------------------------------
# custom VJP over padded [B, H, Tp, D] inputs with per-key gates


def _bhtd_cumsum(g, chunk):
    """Within-chunk inclusive cumsum of [B, H, Tp, Dk] (reuses the [B, T, H, D] helper)."""
    return jnp.swapaxes(_chunk_cumsum(jnp.swapaxes(g, 1, 2), chunk), 1, 2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _gla_core(q, k, v, g, s0, chunk, scale, interpret):
    return _core_fwd(q, k, v, g, s0, chunk, scale, interpret)[0]


def _core_fwd(q, k, v, g, s0, chunk, scale, interpret):
    b = _bhtd_cumsum(g, chunk)
    s0t = jnp.swapaxes(s0, -1, -2)
    o, a, st = _forward(q, k, v, b, s0t, chunk=chunk, scale=scale, interpret=interpret)
    s_final = jnp.swapaxes(st, -1, -2)
    return (o, s_final), (q, k, v, b, a, s0t, s_final)


def _core_bwd(chunk, scale, interpret, res, cotangents):
    del chunk
    q, k, v, b, a, s0t, s_final = res
    do, ds_final = cotangents
    dq, dk, dv, ds0t = _backward(q, k, v, b, a, s0t, do, jnp.swapaxes(ds_final, -1, -2),
                                 scale=scale, interpret=interpret)
    dg = gate_gradient(q, k, dq, dk, s_final, ds_final, time_axis=2)  # [B, H, Tp, Dk]
    return (dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), dg,
            jnp.swapaxes(ds0t, -1, -2))


_gla_core.defvjp(_core_fwd, _core_bwd)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def gla_pallas_tpu(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    log_g: jax.Array,
    *,
    scale: float,
    initial_state: jax.Array | None = None,
    chunk_size: int = 64,
    interpret: bool | None = None,
) -> tuple[jax.Array, jax.Array]:
    """GLA with the Pallas TPU kernels (inputs assumed validated by `kernels.gla.gla`).

    Args:
      q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; one dtype (bf16 or float32).
      log_g: [B, T, H, Dk] or [B, T, H] (one gate per head), <= 0.
      scale: output multiplier.
      initial_state: [B, H, Dk, Dv] or None (zeros).
      chunk_size: tokens per chunk, rounded to a multiple of 16 in [16, 128] (sub-chunks of
        16 rows; bf16 tiles are 16 rows high); shrunk for short sequences.
      interpret: Pallas interpret mode; None = whenever the default backend is not a TPU.

    Returns:
      (o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32).
    """
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    if log_g.ndim == 3:
        log_g = jnp.broadcast_to(log_g[..., None], q.shape)
    s0 = jnp.zeros((B, H, Dk, Dv), _F32) if initial_state is None else initial_state.astype(_F32)
    if T == 0:
        return jnp.zeros(v.shape, q.dtype), s0
    chunk = max(SUB_MIN, min(chunk_size // SUB_MIN * SUB_MIN, 128, _round_up(T, SUB_MIN)))
    Tp = _round_up(T, chunk)
    # Lane dims padded to multiples of 128 (Mosaic's tile width; Small-E's 128 / 256 need none).
    dk_p, dv_p = _round_up(Dk, 128), _round_up(Dv, 128)

    def prep(x, d):  # [B, T, H, D] -> zero-padded [B, H, Tp, d]
        return jnp.swapaxes(_pad_axis(_pad_axis(x, 1, Tp), 3, d), 1, 2)

    q_p, k_p, g_p = prep(q, dk_p), prep(k, dk_p), prep(log_g.astype(_F32), dk_p)
    v_p = prep(v, dv_p)
    s0_p = _pad_axis(_pad_axis(s0, 2, dk_p), 3, dv_p)
    o, s_final = _gla_core(q_p, k_p, v_p, g_p, s0_p, chunk, float(scale),
                           _use_interpret(interpret))
    return jnp.swapaxes(o, 1, 2)[:, :T, :, :Dv], s_final[:, :, :Dk, :Dv]
