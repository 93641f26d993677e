"""One decode step of a whole GLA block as five Pallas Triton kernels (GPU; interpret on CPU).

The block (small_e_jax/model/lclm.py, docs/model.md §2), for one token per row::

    u = LN1(x);  q, k, v, g = u W_q, u W_k, u W_v, u W_g;  log_a = logsigmoid(u W_1 W_2 + b_2) / n
    S = diag(exp(log_a)) S + k^T v;  o = scale * q S                      (per head)
    x = x + W_o [RMSNorm_V(o) * w * silu(g)]
    x = x + W_out [silu(a) * b] + b_out,  [a, b] = LN2(x) W_in + b_in

Why: at batch 1 a decode step is latency-bound (a few µs per kernel on an H200), and XLA runs
this block as ~17 kernels (258 kernels and 0.515 ms per step for the 13 GLA blocks of the 64M model plus the rest). Here a block is five kernels, split only
where every program needs the whole of the previous result:

  `_in_proj`    [N / 8]    LN1 + the q|k|v|g projection (one packed weight).
  `_recurrence` [B, H, Dv / 32]  per (row, head, 32 value channels): the gate (LN1 and the
                           low-rank gate recomputed per program: 512 x 16 multiply-adds), the
                           state update in place, o.
  `_out_proj`   [d / 4]    the output gate RMSNorm_V(o) * w * silu(g) per head, W_o, + x.
  `_mlp_in`     [F / 4]    LN2, W_in's gate and value rows of the tile (one load), silu(a) * b.
  `_mlp_out`    [d / 4]    W_out + b_out + x.

Every program issues its loads before any arithmetic and reads each operand in one load. At
batch 1 a kernel's time follows the bytes each program waits on (benchmarks/kernels/pdl_probe.py,
H200: a chain of dependent kernels of 128 programs costs 1.0 / 2.2 / 3.8 µs per kernel at 2 / 8 /
32 KB per program), so the output tiles are narrow and a weight is spread over many programs (a
512 x 1024 matrix: 128 programs of 4 rows of [out, in], 8 KB each).
Measured (benchmarks/RESULTS.md, eleventh GPU session): 0.254 ms per batch-1 decode step against XLA's
0.510 in the same run on one H200 (2.0x); 17.7 µs per block against XLA's 35.8. `OPTIONS` holds
the variants measured against it (`model.decode_kernel_options`), parity-tested like the default.

Rows (`small_rows`, the default): fewer than 16 real rows are carried as the next power of two
(1 at batch 1) and the matmuls are multiply-and-sum on the CUDA cores (as is any matmul with
fewer than 16 output columns, so 16+ rows are correct but slow with the default tiles). The
option `wide_tiles` (the tenth GPU session's design: 16/32-column tiles, rows a multiple of 16) uses
Triton's tensor-core dots, whose smallest M and N are 16. The first B rows (the state's batch)
are real; the caller pads once (`padded_rows`) and keeps the residual stream padded across
blocks; padded rows stay finite and never mix with real rows.

Weights are packed once per decode call (`pack_block_weights`, outside the loop): q|k|v|g
concatenated, matmul weights transposed to [out, in] (a program's rows are contiguous), the MLP
hidden width padded to a power of two with zero rows/columns (padded hidden units are
silu(0) * 0 = 0; 682 -> 1024 in the 64M model), the gate's first factor transposed.

Numerics follow the XLA path: LayerNorm, gate, state and accumulations in float32; matmul
operands in the compute dtype; results rounded to the compute dtype where the XLA path rounds
them (projections, o, MLP outputs, residual adds). Parity with `LCLMBlock.step` is tested in
fp32 and bf16 (tests/kernels/test_block_step.py).
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

# The block's dimensions and A/B options are pure Python (kernels/block_dims.py: the config
# validates model.decode_kernel_options without JAX); re-exported here, where callers look.
from kernels.block_dims import (KERNEL_WARPS, KERNELS, OPTIONS, ROW_MULTIPLE, BlockDims,  # noqa: F401
                                kernel_warps, make_dims, padded_rows, parse_options, unsupported_reason)
from kernels.gla import block_persistent
from kernels.gla.block_ops import _F32, ln_stats, log_sigmoid, mm, round_dtype, silu, swiglu_paired, whole
from kernels.gla.pallas_gpu import _use_interpret


def pad_rows(x: jax.Array, rows: int) -> jax.Array:
    """x [B, ...] -> [rows, ...] with zero rows appended."""
    return jnp.pad(x, ((0, rows - x.shape[0]),) + ((0, 0),) * (x.ndim - 1))


def pack_block_weights(dims: BlockDims, dtype, *, ln1_scale, ln1_bias, w_q, w_k, w_v, w_g,
                       w_gate_down, w_gate_up, b_gate_up, norm_weight, w_o, ln2_scale,
                       ln2_bias, w_in, b_in, w_out, b_out) -> dict[str, jax.Array]:
    """The block's weights in the kernels' layout (traceable; run once per decode call).

    Shapes as in the model: w_q, w_k [d, H*Dk]; w_v, w_g [d, H*Dv]; w_gate_down [d, r];
    w_gate_up [r, H*Dk]; w_o [H*Dv, d]; w_in [d, 2F] (gate then value); w_out [F, d].
    The matmul weights are stored transposed, [out, in]: a program's output columns are then
    one contiguous block of memory (a [in, 16] column tile would be 16 elements of every row).
    """
    F, Fp, T = dims.hidden, dims.hidden_padded, dims.tile
    pad_cols = lambda w: jnp.pad(w, ((0, 0), (0, Fp - F)))
    f32 = lambda a: jnp.asarray(a, _F32)
    w_in_t = jnp.concatenate([pad_cols(w_in[:, :F]), pad_cols(w_in[:, F:])], axis=1).astype(dtype).T
    b_in = jnp.concatenate([jnp.pad(f32(b_in[:F]), (0, Fp - F)), jnp.pad(f32(b_in[F:]), (0, Fp - F))])
    if dims.paired_mlp_in:  # rows [gate tile j; value tile j] for each tile j
        w_in_t = w_in_t.reshape(2, Fp // T, T, -1).transpose(1, 0, 2, 3).reshape(2 * Fp, -1)
        b_in = b_in.reshape(2, Fp // T, T).transpose(1, 0, 2).reshape(2 * Fp)
    norm_weight = f32(norm_weight)
    if dims.split_recurrence:  # one weight per channel of all heads
        norm_weight = jnp.tile(norm_weight, dims.heads)
    return {
        "ln1_scale": f32(ln1_scale), "ln1_bias": f32(ln1_bias),
        "w_qkvg": jnp.concatenate([w_q, w_k, w_v, w_g], axis=1).astype(dtype).T,  # [N, d]
        "w_gate_down_t": f32(w_gate_down).T,  # [r, d]
        "w_gate_up": f32(w_gate_up), "b_gate_up": f32(b_gate_up),
        "norm_weight": norm_weight,
        "w_o": jnp.asarray(w_o, dtype).T,  # [d, H*Dv]
        "ln2_scale": f32(ln2_scale), "ln2_bias": f32(ln2_bias),
        "w_in": w_in_t, "b_in": b_in,
        "w_out": jnp.pad(jnp.asarray(w_out, dtype), ((0, Fp - F), (0, 0))).T,  # [d, Fp]
        "b_out": f32(b_out),
    }


# ----------------------------------------------------------------------------------------------
# kernel bodies


def _layer_norm(x_ref, s_ref, b_ref, *, eps, dtype):
    """LayerNorm of x [R, d] in float32, rounded to the compute dtype (as the block's LN)."""
    x = x_ref[...].astype(_F32)
    mean, rstd = ln_stats(x, eps)
    return ((x - mean) * rstd * s_ref[...][None, :] + b_ref[...][None, :]).astype(dtype)


# Every kernel issues its weight loads before any arithmetic: at batch 1 a kernel's time is the
# memory latency of its loads, so they must all be in flight at once.


def _in_proj_kernel(x_ref, s_ref, b_ref, w_ref, out_ref, *, eps):
    w = w_ref[...]  # [proj_tile, d]
    u = _layer_norm(x_ref, s_ref, b_ref, eps=eps, dtype=out_ref.dtype)
    out_ref[...] = mm(u, w, out_ref.dtype).astype(out_ref.dtype)


def _head_inputs(x_ref, wd_ref, wu_ref, bu_ref, p_ref, b, h, dims: BlockDims):
    """The loads of row b, head h: x [1, d], the gate's weights, q and k as [Dk, 1] columns."""
    Dk = dims.head_k
    row = pl.ds(b, 1)
    kcols = pl.ds(pl.multiple_of(h * Dk, Dk), Dk)
    wd, wu, bu = wd_ref[...], wu_ref[:, kcols], bu_ref[kcols][None, :]
    x = x_ref[row, :].astype(_F32)
    q = p_ref[row, kcols].astype(_F32).T
    k = p_ref[row, pl.ds(pl.multiple_of(dims.key_dim + h * Dk, Dk), Dk)].astype(_F32).T
    return x, wd, wu, bu, q, k


def _decay(x, s_ref, b_ref, wd, wu, bu, dims: BlockDims, dtype):
    """The forget gate exp(log a) [Dk, 1] of one row and head: LN1 of the row, rounded as the
    block's LayerNorm output, then the low-rank gate in float32."""
    mean, rstd = ln_stats(x, dims.eps)
    u = round_dtype((x - mean) * rstd * s_ref[...][None, :] + b_ref[...][None, :], dtype)  # [1, d]
    down = jnp.sum(wd * u, axis=1, keepdims=True)  # [r, 1]
    logits = jnp.sum(down * wu, axis=0, keepdims=True) + bu  # [1, Dk]
    return jnp.exp(log_sigmoid(logits) / dims.gate_logit_normalizer).T


def _recurrence_kernel(x_ref, s_ref, b_ref, wd_ref, wu_ref, bu_ref, nw_ref, p_ref, st_ref, y_ref,
                       st_out_ref, *, dims: BlockDims, dtype):
    b, h = pl.program_id(0), pl.program_id(1)
    Dv = dims.head_v
    row = pl.ds(b, 1)
    vcols = lambda base: pl.ds(pl.multiple_of(base + h * Dv, Dv), Dv)
    state = st_ref[...]  # [Dk, Dv]: the whole head, one load
    x, wd, wu, bu, q, k = _head_inputs(x_ref, wd_ref, wu_ref, bu_ref, p_ref, b, h, dims)
    v = p_ref[row, vcols(2 * dims.key_dim)].astype(_F32)  # [1, Dv]
    g = p_ref[row, vcols(2 * dims.key_dim + dims.value_dim)].astype(_F32)  # [1, Dv]
    state = _decay(x, s_ref, b_ref, wd, wu, bu, dims, dtype) * state + k * v  # [Dk, Dv]
    st_out_ref[...] = state
    o = round_dtype(dims.scale * jnp.sum(q * state, axis=0, keepdims=True), dtype)  # [1, Dv], as gla_step
    # The mixer's output gate: RMSNorm over the head's Dv channels, * w, * silu(g).
    o = o * jax.lax.rsqrt(jnp.mean(o * o, axis=1, keepdims=True) + dims.eps)
    y = o * nw_ref[...][None, :] * silu(g)
    y_ref[row, vcols(0)] = y.astype(y_ref.dtype)


def _out_proj_kernel(y_ref, w_ref, x_ref, out_ref, *, batch: int):
    R, Vd = y_ref.shape
    dtype = out_ref.dtype
    w = w_ref[...]  # [tile, H*Dv]
    real = jax.lax.broadcasted_iota(jnp.int32, (R, Vd), 0) < batch  # y's padded rows are unwritten
    y = jnp.where(real, y_ref[...].astype(_F32), 0.0)
    acc = mm(y, w, dtype)
    out_ref[...] = (round_dtype(acc, dtype) + x_ref[...].astype(_F32)).astype(dtype)


def _recurrence_split_kernel(x_ref, s_ref, b_ref, wd_ref, wu_ref, bu_ref, p_ref, st_ref, o_ref,
                             st_out_ref, *, dims: BlockDims, dtype):
    """split_recurrence: one value tile of one head; stores o (the gate is W_o's kernel's)."""
    b, h, vt = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    Dv, TV = dims.head_v, dims.value_tile
    row = pl.ds(b, 1)
    state = st_ref[...]  # [Dk, TV]
    x, wd, wu, bu, q, k = _head_inputs(x_ref, wd_ref, wu_ref, bu_ref, p_ref, b, h, dims)
    v0 = 2 * dims.key_dim + h * Dv + vt * TV
    v = p_ref[row, pl.ds(pl.multiple_of(v0, TV), TV)].astype(_F32)  # [1, TV]
    state = _decay(x, s_ref, b_ref, wd, wu, bu, dims, dtype) * state + k * v  # [Dk, TV]
    st_out_ref[...] = state
    o = dims.scale * jnp.sum(q * state, axis=0, keepdims=True)  # [1, TV]
    o_ref[row, pl.ds(pl.multiple_of(h * Dv + vt * TV, TV), TV)] = o.astype(o_ref.dtype)


def _out_proj_gate_kernel(o_ref, p_ref, nw_ref, w_ref, x_ref, out_ref, *, dims: BlockDims, batch: int):
    """split_recurrence: RMSNorm_V(o) * w * silu(g) per head (a reshape to [R, H, Dv]), W_o, + x."""
    R, Vd = o_ref.shape
    dtype = out_ref.dtype
    w = w_ref[...]  # [tile, H*Dv]
    o = o_ref[...].astype(_F32)  # [R, H*Dv]
    g = p_ref[:, pl.ds(2 * dims.key_dim + dims.value_dim, Vd)].astype(_F32)
    real = jax.lax.broadcasted_iota(jnp.int32, (R, Vd), 0) < batch  # o's padded rows are unwritten
    o = jnp.where(real, o, 0.0).reshape(R, dims.heads, dims.head_v)
    o = o * jax.lax.rsqrt(jnp.mean(o * o, axis=2, keepdims=True) + dims.eps)
    y = o.reshape(R, Vd) * nw_ref[...][None, :] * silu(g)
    out_ref[...] = (round_dtype(mm(y, w, dtype), dtype) + x_ref[...].astype(_F32)).astype(dtype)


def _mlp_in_paired_kernel(x_ref, s_ref, b_ref, w_ref, bias_ref, out_ref, *, eps, tile):
    """paired_mlp_in: W_in's [gate; value] rows of this tile in one load, split after the dot."""
    dtype = out_ref.dtype
    w = w_ref[...]  # [2 * tile, d]
    u = _layer_norm(x_ref, s_ref, b_ref, eps=eps, dtype=dtype)
    z = round_dtype(mm(u, w, dtype), dtype) + bias_ref[...][None, :]  # [R, 2 * tile]
    out_ref[...] = swiglu_paired(z, tile, dtype)


def _mlp_in_kernel(x_ref, s_ref, b_ref, wa_ref, wb_ref, ba_ref, bb_ref, out_ref, *, eps):
    dtype = out_ref.dtype
    wa, wb = wa_ref[...], wb_ref[...]  # [tile, d] each
    u = _layer_norm(x_ref, s_ref, b_ref, eps=eps, dtype=dtype)
    a, val = mm(u, wa, dtype), mm(u, wb, dtype)
    a = round_dtype(round_dtype(a, dtype) + ba_ref[...][None, :], dtype)
    val = round_dtype(round_dtype(val, dtype) + bb_ref[...][None, :], dtype)
    out_ref[...] = (silu(a) * val).astype(dtype)


def _mlp_out_kernel(h_ref, w_ref, b_ref, x_ref, out_ref):
    dtype = out_ref.dtype
    w = w_ref[...]  # [tile, F padded]
    acc = mm(h_ref[...], w, dtype)
    y = round_dtype(round_dtype(acc, dtype) + b_ref[...][None, :], dtype)
    out_ref[...] = (y + x_ref[...].astype(_F32)).astype(dtype)


# ----------------------------------------------------------------------------------------------
# the step


def gla_block_step(x: jax.Array, state: jax.Array, weights: dict[str, jax.Array], dims: BlockDims,
                   *, interpret: Optional[bool] = None) -> tuple[jax.Array, jax.Array]:
    """One token through a GLA block.

    Args:
      x: [R, d] the residual stream (compute dtype), R = ``padded_rows(B, dims.small_rows)``; rows >= B padding.
      state: [B, H, Dk, Dv] float32 recurrent state (updated in place where XLA allows).
      weights: ``pack_block_weights``'s dict.
      dims: the block's static shape.
    Returns:
      (x' [R, d] in x.dtype, state' [B, H, Dk, Dv] float32).
    """
    R, d = x.shape
    B, H, Dk, Dv = state.shape
    if (d, H, Dk, Dv) != (dims.d, dims.heads, dims.head_k, dims.head_v):
        raise ValueError(f"gla_block_step: x {x.shape} / state {state.shape} do not match {dims}")
    if R != padded_rows(B, dims.small_rows) and (R % ROW_MULTIPLE or R < B):
        raise ValueError(f"gla_block_step: x has {R} rows; expected padded_rows({B}) = "
                         f"{padded_rows(B, dims.small_rows)}")
    reason = unsupported_reason(dims)
    if reason:
        raise ValueError(f"gla_block_step: {reason}")
    if dims.persistent:
        return block_persistent.gla_block_step_persistent(x, state, weights, dims, interpret=interpret)
    interpret = _use_interpret(interpret)
    dtype = x.dtype
    T, TP, Fp = dims.tile, dims.proj_tile, dims.hidden_padded
    w = weights
    num_warps = dims.num_warps

    def call(kernel, *, name, warps=None, **kwargs):  # warps per kernel: `kernel_warps`
        warps = warps or kernel_warps(dims, name.removeprefix("gla_block_"))
        return pl.pallas_call(kernel, interpret=interpret, name=name,
                              compiler_params=plgpu.CompilerParams(num_warps=warps), **kwargs)

    vec = whole((d,))
    cols = lambda rows: pl.BlockSpec((rows, T), lambda j: (0, j))

    proj = call(
        functools.partial(_in_proj_kernel, eps=dims.eps),
        grid=(dims.proj_dim // TP,),
        in_specs=[whole((R, d)), vec, vec, pl.BlockSpec((TP, d), lambda j: (j, 0))],
        out_specs=pl.BlockSpec((R, TP), lambda j: (0, j)),
        out_shape=jax.ShapeDtypeStruct((R, dims.proj_dim), dtype),
        name="gla_block_in_proj",
    )(x, w["ln1_scale"], w["ln1_bias"], w["w_qkvg"])

    # Both recurrence designs take the residual and the gate's weights (LN1 and the low-rank
    # gate are recomputed per program), the projections and the state (updated in place).
    gate_inputs = (x, w["ln1_scale"], w["ln1_bias"], w["w_gate_down_t"], w["w_gate_up"], w["b_gate_up"])
    state32 = state.astype(_F32)
    if dims.split_recurrence:  # (row, head, value tile) programs; o out, its gate in W_o's kernel
        TV = dims.value_tile
        recurrence = functools.partial(_recurrence_split_kernel, dims=dims, dtype=dtype)
        grid, extra, recurrence_warps = (B, H, Dv // TV), (), kernel_warps(dims, "recurrence")
        state_spec = pl.BlockSpec((None, None, Dk, TV), lambda b, h, v: (b, h, 0, v))
    else:  # (row, head) programs, the output gate included
        recurrence = functools.partial(_recurrence_kernel, dims=dims, dtype=dtype)
        grid, extra = (B, H), (w["norm_weight"],)
        # A whole head's state is one [Dk, Dv] float32 tile (128 KB in the 64M model): enough
        # warps that it fits in registers (16 warps: 64 values per thread; 4 spilled, 94 us).
        recurrence_warps = dict(dims.kernel_warps).get("recurrence", max(num_warps, min(16, Dk * Dv // 2048)))
        state_spec = pl.BlockSpec((None, None, Dk, Dv), lambda b, h: (b, h, 0, 0))
    inputs = (*gate_inputs, *extra, proj, state32)
    mixed, state = call(  # o (split) or the gated mixer output
        recurrence,
        grid=grid,
        in_specs=[whole(a.shape) for a in inputs[:-1]] + [state_spec],
        out_specs=[whole((R, dims.value_dim)), state_spec],
        out_shape=[jax.ShapeDtypeStruct((R, dims.value_dim), dtype),
                   jax.ShapeDtypeStruct(state.shape, _F32)],
        input_output_aliases={len(inputs) - 1: 1},
        name="gla_block_recurrence",
        warps=recurrence_warps,
    )(*inputs)
    w_o_spec = pl.BlockSpec((T, dims.value_dim), lambda j: (j, 0))
    if dims.split_recurrence:
        x = call(
            functools.partial(_out_proj_gate_kernel, dims=dims, batch=B),
            grid=(d // T,),
            in_specs=[whole((R, dims.value_dim)), whole((R, dims.proj_dim)),
                      whole((dims.value_dim,)), w_o_spec, cols(R)],
            out_specs=cols(R),
            out_shape=jax.ShapeDtypeStruct((R, d), dtype),
            name="gla_block_out_proj",
        )(mixed, proj, w["norm_weight"], w["w_o"], x)
    else:
        x = call(
            functools.partial(_out_proj_kernel, batch=B),
            grid=(d // T,),
            in_specs=[whole((R, dims.value_dim)), w_o_spec, cols(R)],
            out_specs=cols(R),
            out_shape=jax.ShapeDtypeStruct((R, d), dtype),
            name="gla_block_out_proj",
        )(mixed, w["w_o"], x)

    n_hidden = Fp // T
    if dims.paired_mlp_in:
        hidden = call(
            functools.partial(_mlp_in_paired_kernel, eps=dims.eps, tile=T),
            grid=(n_hidden,),
            in_specs=[whole((R, d)), vec, vec, pl.BlockSpec((2 * T, d), lambda j: (j, 0)),
                      pl.BlockSpec((2 * T,), lambda j: (j,))],
            out_specs=cols(R),
            out_shape=jax.ShapeDtypeStruct((R, Fp), dtype),
            name="gla_block_mlp_in",
        )(x, w["ln2_scale"], w["ln2_bias"], w["w_in"], w["b_in"])
    else:
        hidden = call(
            functools.partial(_mlp_in_kernel, eps=dims.eps),
            grid=(n_hidden,),
            in_specs=[whole((R, d)), vec, vec, pl.BlockSpec((T, d), lambda j: (j, 0)),
                      pl.BlockSpec((T, d), lambda j: (j + n_hidden, 0)),
                      pl.BlockSpec((T,), lambda j: (j,)), pl.BlockSpec((T,), lambda j: (j + n_hidden,))],
            out_specs=cols(R),
            out_shape=jax.ShapeDtypeStruct((R, Fp), dtype),
            name="gla_block_mlp_in",
        )(x, w["ln2_scale"], w["ln2_bias"], w["w_in"], w["w_in"], w["b_in"], w["b_in"])

    x = call(
        _mlp_out_kernel,
        grid=(d // T,),
        in_specs=[whole((R, Fp)), pl.BlockSpec((T, Fp), lambda j: (j, 0)),
                  pl.BlockSpec((T,), lambda j: (j,)), cols(R)],
        out_specs=cols(R),
        out_shape=jax.ShapeDtypeStruct((R, d), dtype),
        name="gla_block_mlp_out",
    )(hidden, w["w_out"], w["b_out"], x)
    return x, state
