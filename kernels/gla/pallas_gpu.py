"""Chunked GLA as Pallas GPU kernels (Triton lowering), forward and backward (`jax.custom_vjp`).

Contract (same as every backend in `kernels.gla.BACKENDS`):
    q, k [B, T, H, Dk]; v [B, T, H, Dv]; log_g [B, T, H, Dk] float (<= 0); initial_state
    [B, H, Dk, Dv] or None -> (o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32),
    differentiable in q, k, v, log_g and initial_state. A per-head gate [B, T, H] is broadcast
    over Dk outside the custom VJP (autodiff sums its gradient back). Any T (padded to whole
    chunks with log_g = 0, k = v = 0, which leave the state untouched); Dk and Dv are padded to
    powers of two >= 16 (Triton tiles are powers of two; head dims 64-256 need no padding).

Why Triton and not Mosaic GPU: the Triton lowering runs the same kernel bodies in interpret
mode on CPU (CI parity tests), lowers for `cuda` on a machine without a GPU (a CI lowering
test at the Small-E shape), and is a stable API on jax 0.10 and 0.11 alike. Mosaic GPU would
give direct control of wgmma / TMA on Hopper but has neither an interpret mode nor a CPU
lowering check here, and its API still moves between jax releases. Triton itself emits wgmma
for bf16 `tl.dot`s of these tile sizes on sm_90.

Decomposition (the FLA chunk_gla idea, rewritten for Pallas; chunk C = 64, sub-chunk c = 16):
with b the within-chunk inclusive cumsum of log_g (float32, its own small kernel
`gla_chunk_cumsum`), token i of a chunk sees

    o_i = scale * [ (q_i * exp(b_i)) S + sum_{j <= i in chunk} A_ij v_j ],
    A_ij = sum_d q_id k_jd exp(b_id - b_jd),
    S'   = exp(b_last) * S + (k * exp(b_last - b))^T v.

Within a chunk, exp(b_i - b_j) = exp(b_i - r) exp(r - b_j) with r = b at the chunk's first row:
where no key dim decays by more than e^FACTORED_MAX_EXP (16) over the chunk, A is one C x C
matmul of (q exp(b - r)) and (k exp(r - b)) (factors <= e^16, representable in bf16), and the
within-chunk dq, dk are two such matmuls (factored_chunk, the default). Elsewhere (strong
gates) the exact sub-chunk scheme, in which every exponent evaluated is <= 0, so nothing
overflows for any gate strength: A is built per query sub-chunk a, keys of earlier sub-chunks
through one matmul with the reference point r_a = b at a's first token (exp(b_i - r_a) <= 1,
exp(r_a - b_j) <= 1), the c x c diagonal block exactly, one key column at a time.

Kernels (grid in brackets). Only the two state walks are sequential over chunks, and they do
one small matmul per chunk; everything else is parallel over chunks (FLA's split: at the
Small-E layer the old design computed the outputs inside a 128-program walk, on a 132-SM GPU).
  forward  `_chunk_cumsum` [B, H, N, Dk/64] b, the within-chunk cumsum of log_g.
           `_intra_fwd`  [B, H, N] one program per chunk: A by one matmul where the gates
                         allow it, else the exact sub-chunk scheme (`_intra_fwd_chunk_kernel`).
                         (factored_chunk = False: [B, H, N, C/16], one program per query
                         sub-chunk, its rows of A off the diagonal; then
           `_intra_fwd_diag` [B, H, T/16] the exact 16 x 16 diagonal blocks, in place.)
           `_states_fwd` [B, H, Dv/BV, Dk/BK] walks the chunks with an fp32 state tile
                         S^T [BV, BK]; stores the state entering every chunk, h [B, H, N, Dv, Dk]
                         (transposed, matmul dtype: a saved residual, like A).
           `_out_fwd`    [B, H, N, Dv/BVo] o = scale * ((q exp(b)) h_n + A v).
           (fused_out, where nothing is differentiated: `_out_fused_fwd` [B, H, N, Dv/BVo]
                         replaces `_intra_fwd` and `_out_fwd`, A computed in registers per
                         program and never stored; the backward needs A, so its forward
                         keeps them apart.)
  backward `_bwd_da`     [B, H, N] dA = scale * do v^T per chunk, one whole-chunk matmul,
                         stored causal with its transpose (float32 [B, Tp, H, C] each).
           `_intra_bwd`  [B, H, N, Dk/BK] one program per (chunk, key block): the within-chunk
                         parts of dq, dk from dA, by two matmuls where the gates allow it, else
                         the exact sub-chunk scheme (`_intra_bwd_chunk_kernel`).
                         (factored_chunk = False: [B, H, N, C/16, Dk/BK], one program per
                         (sub-chunk, key block) off the diagonal; then
           `_intra_bwd_diag` [B, H, T/16, Dk/BK] the diagonal blocks, in place.)
           `_dstates_bwd` [B, H, Dv/BV, Dk/BK] walks backward with dS, the gradient of the
                         state leaving each chunk; stores it, dh [B, H, N, Dv, Dk], and dS_0.
           `_bwd_dqk`    [B, H, N, Dk/BK] dq += scale * (do h_n^T) exp(b),
                         dk += (v dh_n^T) exp(b_last - b); also q dq - k dk for dlog_g.
           `_bwd_dv`     [B, H, N, Dv/BVo] dv = scale * A^T do + (k exp(b_last - b)) dh_n.
  dlog_g needs no kernel of its own: with G the global cumsum of log_g, o and S_T depend on
  G_t only via q_t exp(G_t), k_t exp(-G_t) and exp(G_T), so
      dlog_g = reverse_cumsum_t(q * dq - k * dk) + sum_v(S_T * dS_T)   (fp32; the product
  and its reverse cumsum within each chunk inside `_bwd_dqk`, the later chunks' sums in XLA).

Precision: gates, cumsums, states and every accumulation are float32. With bf16 inputs the
matmul operands are bf16 (as in chunked.py); with float32 inputs the matmuls run in IEEE
float32 (`precision=HIGHEST`; Triton's default would be tf32).

`interpret`: None (default) runs the kernels in Pallas interpret mode when JAX's default
backend is the CPU, or when the environment variable SMALL_E_PALLAS_INTERPRET=1; compiled
Triton otherwise.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

_F32 = jnp.float32
CHUNK = 64  # default tokens per chunk (any power of two >= SUB works: see gla_pallas_gpu)
SUB = 16  # sub-chunk of the exact diagonal blocks (tl.dot needs >= 16 rows)
# Tile sizes: defaults; `gla_pallas_gpu(block_v=, block_k=, block_v_out=, num_stages=)`
# overrides them and the benchmark sweeps them (benchmarks/kernels/gla_bench.py --pallas-tiles).
# The sequential kernels hold one fp32 state tile [BLOCK_V, BLOCK_K] and do one small matmul
# per chunk; small tiles give more programs to walk the chunks side by side (B * H * Dv/BV *
# Dk/BK: 256 at the Small-E layer, as FLA's chunk_fwd_h at its BK = BV = 64).
BLOCK_V = 64
BLOCK_K = 64
# Value columns per output / dv program (the parallel-over-chunks kernels).
BLOCK_V_OUT = 128
# Triton pipelining depth: the next chunk's tiles load while this one computes. Two stages
# double the shared memory of a loop's loads; the sm_90 cubins used ~1.5-1.8x the bytes one
# iteration loads at 2 stages, against a 227 KB limit per block, so a kernel whose iteration
# loads more than PIPELINE_MAX_BYTES gets one stage (no pipelining) instead of failing to launch.
NUM_STAGES = 2
PIPELINE_MAX_BYTES = 140 * 1024
# Largest matmul operands of one dv program (shared memory, see _backward).
DV_SHARED_MAX_BYTES = 192 * 1024
# factored_chunk (default True; variant ":no_factored_chunk" turns it off): e^{b_i - b_j} =
# e^{b_i - r} e^{r - b_j}, r = b at the chunk's first row, wherever no key dim decays by more
# than e^FACTORED_MAX_EXP over the chunk (the factor e^{r - b} stays finite and representable
# in bf16; the product is <= 1 where i >= j): the forward's A by one C x C matmul per chunk
# (`gla_intra_fwd`), the backward's within-chunk dq, dk by two C x C x BK matmuls per (chunk,
# key block) (`gla_intra_bwd`, after `gla_bwd_da`); elsewhere the exact sub-chunk scheme,
# serially in the same program.
# factored_chunk = False (the previous default, kept as the A/B baseline) runs that exact scheme
# spread over four kernels: one program per 16-row sub-chunk for the part off the diagonal
# (`gla_intra_fwd`; `gla_intra_bwd` per (sub-chunk, key block), reading dA), then the exact
# SUB x SUB diagonal blocks, one key column per step of a 16-step loop, in light kernels of
# their own (`gla_intra_fwd_diag`, `gla_intra_bwd_diag`: [SUB, Dk] tiles, ~70 registers, many
# programs per SM). Those loops evaluate 16 x 16 x Dk exponentials per sub-chunk (they took
# 0.55 of 1.88 ms per fwd+bwd call), the whole-chunk form 2 x C x Dk per chunk.
# On an H200 at the Small-E layer (B=8, T=4096, H=4, Dk=128, Dv=256, bf16, model gates
# logsigmoid / 16; benchmarks/RESULTS.md, sixth GPU session), Mtok/s fwd / fwd+bwd: 68.5 / 25.4 with
# factored_chunk, 45.0 / 17.1 without (same run); device time per call 0.448 / 1.236 ms
# against 0.658 / 1.860 (an earlier run of that GPU session, where the candidates below were timed).
# Deleted after being measured slower (git history has them): "factored" (only the 16 x 16
# diagonal blocks by matmuls where the gates allow it: 49.6 / 19.7 Mtok/s, against 68.3 / 25.3
# for factored_chunk and 48.1 / 17.3 for the exact scheme in the same run); "unroll" (the
# diagonal loops unrolled at trace time: 46.5 / 17.4); the diagonal block inside the sub-chunk
# program, by direct column stores ("stores", FLA's chunk_gla_*_intra scheme) or by a
# reduction and select per column ("loop_select", the first design): the forward's
# within-chunk work took 0.47 and 0.72 ms against 0.16 + 0.18 ms in kernels of their own
# (fifth GPU session); and the "fused" backward (one program per sub-chunk computing its dA, dq, dk
# and dv from the whole chunk, 8 warps at ~180 registers, one program per SM: 1.3 of 2.9 ms
# per fwd+bwd call), replaced by FLA's division into the dA, dq/dk and dv kernels kept here.
FACTORED_MAX_EXP = 16.0
FACTORED_CHUNK = True
# fused_out (default False, variant ":fused_out"; untimed, not yet run on a GPU): in the primal
# path only (no gradient taken: jit'd forward, inference prefill), `gla_intra_fwd` and
# `gla_out_fwd` become one kernel, `gla_out_fused_fwd` [B, H, N, Dv/BVo], that computes its
# chunk's A in registers (factored, or the exact scheme where the gates forbid it) and uses it
# at once: A's HBM write and read-back (16 MB each way at the Small-E layer) and a launch go,
# A is recomputed per value block (2x at Dv = 256). Needs factored_chunk (ignored without).
# The differentiated path keeps the unfused forward: the backward needs A.
FUSED_OUT = False
# Boolean knobs of `gla_pallas_gpu` (variant ":NAME" / ":no_NAME").
FLAGS = ("factored_chunk", "fused_out")
# Variant names of the deleted schemes: variant_kwargs says they were removed, and why.
REMOVED_MODES = {
    "stores": "a diagonal-block scheme, measured slower",
    "loop_select": "a diagonal-block scheme, measured slower",
    "fused": "a backward scheme, measured slower",
    "unroll": "unrolled diagonal loops, measured slower",
    "factored": "diagonal blocks by matmuls, measured slower than factored_chunk",
    "separate": "no longer a choice: the only diagonal-block scheme, used by no_factored_chunk",
    "split": "no longer a choice: the only backward",
}
# Warps per program of the per-sub-chunk `gla_intra_fwd` (factored_chunk = False): (at
# Dk <= 128, at Dk = 256), the fewest without register spills in the sm_90 cubins (Triton 3.6,
# compiled on CPU by `python -m benchmarks.kernels.triton_resources`; docs/kernels.md), chosen
# when that kernel still held the diagonal loop (2 warps spilled 616 B at Dk = 128, 4 warps
# 16 B at Dk = 256). The whole-chunk kernels take 8: their fallback holds whole-chunk tiles.
_INTRA_FWD_WARPS = (4, 8)


def _intra_fwd_warps(dk: int) -> int:
    small, large = _INTRA_FWD_WARPS
    return small if dk <= 128 else large


# Warps of `gla_out_fused_fwd` (fused_out): 8, the fewest without spills at the Small-E shape
# (sm_90 cubins, triton_resources on the forward alone: 241 registers; 4 warps spilled 248 B).
_OUT_FUSED_WARPS = 8


INTERPRET_ENV = "SMALL_E_PALLAS_INTERPRET"


def variant_kwargs(spec: str) -> dict:
    """`gla_pallas_gpu` keywords of a tuning variant "BVxBK[xBVo[xS]][:FLAG...]" (the
    benchmark's --pallas-tiles and triton_resources' --tiles): block_v x block_k x block_v_out
    x num_stages, then ":"-separated flags of FLAGS, each set to True, or "no_" + a flag set
    to False, or "cN" for the chunk size N (a power of two in [16, 128]; overrides the
    caller's chunk_size); any part may be empty ("", "64x64", "64x64x128x1",
    ":no_factored_chunk", "32x32:no_factored_chunk", ":c128"). The names of the deleted A/B
    schemes (REMOVED_MODES) raise a ValueError that says so."""
    sizes, *modes = spec.split(":")
    kwargs: dict = dict(zip(("block_v", "block_k", "block_v_out", "num_stages"),
                            (int(t) for t in sizes.split("x") if t)))
    accepted = ", ".join(f"{f}, no_{f}" for f in FLAGS) + ", cN (chunk size)"
    for mode in filter(None, modes):
        if mode[:1] == "c" and mode[1:].isdigit():
            chunk = int(mode[1:])
            if chunk not in (16, 32, 64, 128):
                raise ValueError(f"tuning variant {spec!r}: chunk {chunk} is not a power of two in [16, 128]")
            kwargs["chunk_size"] = chunk
        elif mode in FLAGS:
            kwargs[mode] = True
        elif mode.startswith("no_") and mode[3:] in FLAGS:
            kwargs[mode[3:]] = False
        elif mode.removeprefix("no_") in REMOVED_MODES:
            reason = REMOVED_MODES[mode.removeprefix("no_")]
            raise ValueError(f"tuning variant {spec!r}: scheme {mode!r} was removed ({reason}; "
                             f"see FACTORED_CHUNK in kernels/gla/pallas_gpu.py); accepted: "
                             f"{accepted}")
        else:
            raise ValueError(f"tuning variant {spec!r}: unknown scheme {mode!r} "
                             f"(accepted: {accepted})")
    return kwargs


def _use_interpret(interpret: bool | None) -> bool:
    if interpret is not None:
        return interpret
    return os.environ.get(INTERPRET_ENV, "0") == "1" or jax.default_backend() == "cpu"


def _params(num_warps: int, stages: int | None, load_bytes: int = 0) -> plgpu.CompilerParams:
    """stages None = NUM_STAGES, or 1 when one loop iteration loads > PIPELINE_MAX_BYTES."""
    if stages is None:
        stages = NUM_STAGES if load_bytes <= PIPELINE_MAX_BYTES else 1
    return plgpu.CompilerParams(num_warps=num_warps, num_stages=stages)


def _dot(a, b, mm_dtype, *, trans_a: bool = False, trans_b: bool = False):
    """a @ b (optionally transposed operands), operands cast to mm_dtype, fp32 accumulation."""
    dims = (((0 if trans_a else 1,), (1 if trans_b else 0,)), ((), ()))
    precision = jax.lax.Precision.HIGHEST if mm_dtype == _F32 else None
    return jax.lax.dot_general(
        a.astype(mm_dtype), b.astype(mm_dtype), dims, preferred_element_type=_F32,
        precision=precision,
    )


def _advance_state(s, k, v, b, b_last, mm_dtype):
    """The state carried past one chunk (transposed, [BV, Dk]):
    S' = exp(b_last) * S + (k * exp(b_last - b))^T v, with k, b [C, Dk], v [C, BV], b_last [1, Dk]."""
    k_tail = k.astype(_F32) * jnp.exp(b_last - b)
    return s * jnp.exp(b_last) + _dot(v, k_tail, mm_dtype, trans_a=True)


def _diag_block_grads(k_ref, b_ref, q_s, b_s, da_ss, lo, carry):
    """Exact gradients of one diagonal SUB x SUB block, one key column j at a time: adds to
    carry = (dq_s, dk_s) [SUB, Dk] the terms of dA_ss [SUB, SUB] (causal, scaled) for the
    sub-chunk starting at row lo (q_s, b_s [SUB, Dk] its queries and gate cumsums). Used by
    `_intra_bwd_kernel` (pallas_tpu's within-chunk backward)."""
    sub_rows = _iota((SUB, 1), 0)
    sub_cols = _iota((1, SUB), 1)

    def diag(j, carry):
        dq_s, dk_s = carry
        k_j = k_ref[pl.ds(lo + j, 1), :].astype(_F32)
        b_j = b_ref[pl.ds(lo + j, 1), :]
        col = jnp.sum(jnp.where(sub_cols == j, da_ss, 0.0), axis=1)[:, None]  # dA[:, j]
        w = col * jnp.exp(jnp.minimum(b_s - b_j, 0.0))  # zero for rows i < j
        dk_j = jnp.sum(w * q_s, axis=0)[None, :]
        return dq_s + w * k_j, jnp.where(sub_rows == j, dk_s + dk_j, dk_s)

    return jax.lax.fori_loop(0, SUB, diag, carry)


def gate_gradient(q, k, dq, dk, s_final, ds_final, time_axis: int):
    """dlog_g from the other gradients (no kernel needed): the reverse cumsum over time of
    q * dq - k * dk (fp32), plus the final-state term sum_v(S_T * dS_T) broadcast over time.
    q, k, dq, dk: [..., T, ..., Dk] with time on ``time_axis``; s_final, ds_final [B, H, Dk, Dv]."""
    local = q.astype(_F32) * dq - k.astype(_F32) * dk
    dg = jnp.flip(jnp.cumsum(jnp.flip(local, time_axis), axis=time_axis), time_axis)
    return dg + jnp.expand_dims(jnp.sum(s_final * ds_final, axis=-1), time_axis)


def _gate_gradient_from_chunks(dg_chunk, s_final, ds_final, chunk: int):
    """`gate_gradient` given dg_chunk [B, Tp, H, Dk] float32: the reverse cumsum of
    q * dq - k * dk within each chunk (computed in `_bwd_dqk_kernel`). Adds the sums of all
    later chunks (a cumsum over the N chunk totals, 1/C of the data) and the final-state term."""
    B, Tp, H, Dk = dg_chunk.shape
    dg = dg_chunk.reshape(B, Tp // chunk, chunk, H, Dk)
    totals = dg[:, :, 0]  # [B, N, H, Dk]: each chunk's whole sum (its first row)
    later = jnp.flip(jnp.cumsum(jnp.flip(totals, 1), axis=1), 1) - totals
    dg = (dg + later[:, :, None]).reshape(dg_chunk.shape)
    return dg + jnp.sum(s_final * ds_final, axis=-1)[:, None]


def _iota(shape, dim):
    return jax.lax.broadcasted_iota(jnp.int32, shape, dim)


def _exp_masked(x, keep):
    """exp(x) where keep, 0 elsewhere (x may be > 0 there: it is never exponentiated)."""
    return jnp.exp(jnp.where(keep, x, -jnp.inf))


# ----------------------------------------------------------------------------------------------
# forward


def _select_diag_columns(k_ref, b_ref, q_s, b_s, lo, cols, blk):
    """The exact diagonal block of query rows lo .. lo + SUB - 1, one key column j at a time,
    selected into columns lo + j of blk [SUB, C] (rows above the diagonal get garbage: the
    caller masks them). q_s, b_s [SUB, Dk]; k_ref, b_ref [C, Dk]; cols [1, C] column ids."""

    def select(j, blk):
        k_j = k_ref[pl.ds(lo + j, 1), :].astype(_F32)  # [1, Dk]
        b_j = b_ref[pl.ds(lo + j, 1), :]
        # Rows i < j would have a positive exponent: clamp (they are masked by the caller).
        col = jnp.sum(q_s * k_j * jnp.exp(jnp.minimum(b_s - b_j, 0.0)), axis=1)
        return jnp.where(cols == lo + j, col[:, None], blk)

    return jax.lax.fori_loop(0, SUB, select, blk)


def _exact_score_rows(q_ref, k_ref, b_ref, s, mm_dtype):
    """Rows s*SUB .. s*SUB + SUB - 1 of one chunk's causal A, [SUB, C] float32 (zero above the
    diagonal), by the exact sub-chunk scheme: keys of earlier sub-chunks through one matmul
    relative to r = b at row s*SUB, the diagonal block one key column at a time (every
    exponent <= 0). s: a Python int, or traced (a loop index). Refs: q, k, b [C, Dk]."""
    C = q_ref.shape[0]
    rows = _iota((C, 1), 0)
    cols = _iota((1, C), 1)
    # Whole-chunk tiles are (re)loaded where they are used, not held across the sub-chunks:
    # short live ranges keep register pressure down (the re-reads hit L1).
    lo = s * SUB if isinstance(s, int) else pl.multiple_of(s * SUB, SUB)
    q_s = q_ref[pl.ds(lo, SUB), :].astype(_F32)
    b_s = b_ref[pl.ds(lo, SUB), :]
    if isinstance(s, int) and s == 0:
        blk = jnp.zeros((SUB, C), _F32)
    else:  # keys of earlier sub-chunks, relative to r = b at row lo
        r = b_ref[pl.ds(lo, 1), :]
        k_rel = k_ref[...].astype(_F32) * _exp_masked(r - b_ref[...], rows < lo)
        blk = _dot(q_s * jnp.exp(b_s - r), k_rel, mm_dtype, trans_b=True)  # [SUB, C]

    blk = _select_diag_columns(k_ref, b_ref, q_s, b_s, lo, cols, blk)
    causal = cols <= lo + _iota((SUB, 1), 0)
    return jnp.where(causal, blk, 0.0)


def _intra_fwd_kernel(q_ref, k_ref, b_ref, a_ref, *, mm_dtype):
    """One chunk's A [C, C] (zero above the diagonal) by the exact sub-chunk scheme, the
    sub-chunks one after the other: the fallback of `_intra_fwd_chunk_kernel` for strongly
    decaying gates, and pallas_tpu's within-chunk forward. Refs: q, k, b [C, Dk]; a [C, C]."""
    for s in range(q_ref.shape[0] // SUB):  # static: query sub-chunk s
        rows = _exact_score_rows(q_ref, k_ref, b_ref, s, mm_dtype)
        a_ref[pl.ds(s * SUB, SUB), :] = rows.astype(a_ref.dtype)


def _intra_fwd_sub_kernel(q_ref, k_ref, b_ref, a_ref, *, mm_dtype):
    """Rows s*SUB .. s*SUB + SUB - 1 of one chunk's A off the diagonal, s = program_id(3)
    (factored_chunk = False: one program per sub-chunk; `_intra_fwd_diag_kernel` then writes
    the diagonal block). Refs: q, k, b [C, Dk] (whole chunk); a [SUB, C] (zero on and above the
    diagonal block)."""
    C, Dk = q_ref.shape
    lo = pl.multiple_of(pl.program_id(3) * SUB, SUB)
    sl = pl.ds(lo, SUB)
    rows = _iota((C, 1), 0)
    # Keys of earlier sub-chunks relative to r = b at row lo (none when lo = 0: all masked).
    # Columns >= lo of blk are zero (k_rel is masked there): the diagonal block and above.
    # Contracted over 64-wide slices of Dk: whole [C, Dk] fp32 tiles spilled at Dk = 256, and
    # 64-wide slices keep this kernel (only this matmul) small enough for more programs per SM.
    width = min(Dk, 64)
    if Dk == width:
        q_s = q_ref[sl, :].astype(_F32)
        b_s = b_ref[sl, :]
        r = b_ref[pl.ds(lo, 1), :]
        k_rel = k_ref[...].astype(_F32) * _exp_masked(r - b_ref[...], rows < lo)
        blk = _dot(q_s * jnp.exp(b_s - r), k_rel, mm_dtype, trans_b=True)  # [SUB, C]
    else:
        def off_diag(d, blk):
            dd = pl.ds(pl.multiple_of(d * width, width), width)
            r = b_ref[pl.ds(lo, 1), dd]
            k_rel = k_ref[:, dd].astype(_F32) * _exp_masked(r - b_ref[:, dd], rows < lo)
            q_r = q_ref[sl, dd].astype(_F32) * jnp.exp(b_ref[sl, dd] - r)
            return blk + _dot(q_r, k_rel, mm_dtype, trans_b=True)

        blk = jax.lax.fori_loop(0, Dk // width, off_diag, jnp.zeros((SUB, C), _F32))
    a_ref[...] = blk.astype(a_ref.dtype)


def _intra_fwd_diag_kernel(q_ref, k_ref, b_ref, a_in_ref, a_ref):
    """The exact SUB x SUB diagonal block of one sub-chunk's rows of A (factored_chunk =
    False), written into the A that `_intra_fwd_sub_kernel` filled off the diagonal (aliased:
    a_in_ref is a_ref's buffer, unread). Refs: q, k, b [SUB, Dk] (this sub-chunk only, so the
    program is small and many fit on an SM); a [SUB, SUB] (this block of A).
    One key column j per step, stored straight to column j of a, the causal mask folded into
    the value. Key row j is loaded as a [SUB, Dk] tile (the row repeated, from L1): a [1, Dk]
    row load gets a layout with the warps along Dk, which made the reduction cross-warp (sm_90
    PTX: 5 barriers per iteration, 2 with the repeated row: the column's conversion to the
    store layout)."""
    del a_in_ref
    q_s = q_ref[...].astype(_F32)
    b_s = b_ref[...]
    sub_rows = _iota((SUB, 1), 0)

    def column(j, carry):
        row_j = jnp.full((SUB,), j, jnp.int32)
        k_j = k_ref[row_j, :].astype(_F32)  # [SUB, Dk], row j repeated
        b_j = b_ref[row_j, :]
        # Rows i < j would have a positive exponent: clamped, and zeroed by the causal mask.
        col = jnp.sum(q_s * k_j * jnp.exp(jnp.minimum(b_s - b_j, 0.0)), axis=1, keepdims=True)
        a_ref[:, pl.ds(j, 1)] = jnp.where(sub_rows >= j, col, 0.0).astype(a_ref.dtype)
        return carry

    jax.lax.fori_loop(0, SUB, column, 0)


def _factored_scores(q_ref, k_ref, b_ref, mm_dtype):
    """causal(A) [R, R] float32 for the R rows the refs hold (a whole chunk), by the factored
    form A_ij = sum_d (q_id e^{b_id - r_d}) (k_jd e^{r_d - b_jd}), r = b at the first row: valid
    where `_factored_ok` (factors <= 1 and <= e^FACTORED_MAX_EXP; their product e^{b_i - b_j}
    <= 1 where i >= j). Refs: q, k, b [R, Dk]. Contracted over 64-wide slices of Dk (whole
    [R, Dk] fp32 operands cost too many registers: 226 already at R = 16)."""
    R, Dk = q_ref.shape
    width = min(Dk, 64)
    blk = jnp.zeros((R, R), _F32)
    for d in range(Dk // width):
        dd = pl.ds(d * width, width)
        r_d, b_d = b_ref[pl.ds(0, 1), dd], b_ref[:, dd]
        blk += _dot(q_ref[:, dd].astype(_F32) * jnp.exp(b_d - r_d),
                    k_ref[:, dd].astype(_F32) * jnp.exp(r_d - b_d), mm_dtype, trans_b=True)
    return jnp.where(_iota((1, R), 1) <= _iota((R, 1), 0), blk, 0.0)


def _store_factored_scores(q_ref, k_ref, b_ref, a_ref, mm_dtype):
    """a [R, R] = `_factored_scores` (in a's dtype)."""
    a_ref[...] = _factored_scores(q_ref, k_ref, b_ref, mm_dtype).astype(a_ref.dtype)


def _factored_ok(r, b):
    """Whether a chunk may use the factored form e^{b_i - r} e^{r - b_j} (r = b at its first
    row, b [R, D] non-increasing): the largest factor e^{r - b} stays below e^FACTORED_MAX_EXP,
    i.e. no key dim decays by more than that within the chunk."""
    return jnp.max(r - b) <= FACTORED_MAX_EXP


def _intra_fwd_chunk_kernel(q_ref, k_ref, b_ref, a_ref, *, mm_dtype):
    """One chunk's A [C, C] in one program (factored_chunk = True): where no key dim decays by
    more than e^FACTORED_MAX_EXP over the whole chunk, A = (q e^{b - r}) (k e^{r - b})^T masked
    causal, r = b at the chunk's first row (one C x C matmul, no sub-chunks, no loop);
    elsewhere the exact sub-chunk scheme, serially (`_intra_fwd_kernel`). Refs: q, k, b
    [C, Dk]; a [C, C]."""
    ok = _factored_ok(b_ref[pl.ds(0, 1), :], b_ref[...])
    pl.when(ok)(functools.partial(_store_factored_scores, q_ref, k_ref, b_ref, a_ref, mm_dtype))
    pl.when(jnp.logical_not(ok))(
        functools.partial(_intra_fwd_kernel, q_ref, k_ref, b_ref, a_ref, mm_dtype=mm_dtype))


def _states_fwd_kernel(k_ref, v_ref, b_ref, s0_ref, h_ref, st_ref, *, chunk, mm_dtype):
    """The only sequential part of the forward: one (batch, head, value block, key block)
    walks the chunks and records the state entering each one.
    Refs: k, b [Tp, BK]; v [Tp, BV]; s0, st [BV, BK] float32 (transposed state block);
    h [N, BV, BK] (entering states, matmul dtype)."""
    Tp, C = k_ref.shape[0], chunk

    def body(n, s):
        t = pl.ds(pl.multiple_of(n * C, C), C)
        h_ref[n] = s.astype(h_ref.dtype)
        return _advance_state(s, k_ref[t, :], v_ref[t, :], b_ref[t, :],
                              b_ref[pl.ds(n * C + C - 1, 1), :], mm_dtype)

    st_ref[...] = jax.lax.fori_loop(0, Tp // C, body, s0_ref[...].astype(_F32))


def _out_fwd_kernel(q_ref, v_ref, b_ref, a_ref, h_ref, o_ref, *, scale, mm_dtype):
    """One (chunk, value block) of the output, all chunks in parallel:
    o = scale * ((q * exp(b)) S_entering + A v).
    Refs: q, b [C, Dk]; v, o [C, BV]; a [C, C]; h [BV, Dk] (entering state, transposed)."""
    q_e = q_ref[...].astype(_F32) * jnp.exp(b_ref[...])
    o = _dot(q_e, h_ref[...], mm_dtype, trans_b=True) + _dot(a_ref[...], v_ref[...], mm_dtype)
    o_ref[...] = (scale * o).astype(o_ref.dtype)


def _out_fused_fwd_kernel(q_ref, k_ref, v_ref, b_ref, h_ref, o_ref, *, scale, mm_dtype):
    """`_intra_fwd_chunk_kernel` and `_out_fwd_kernel` in one program (fused_out, primal
    only): one (chunk, value block) of o = scale * ((q e^b) h_n + A v) with its chunk's A
    computed in registers, never stored. Where `_factored_ok`, A by one C x C matmul
    (`_factored_scores`) and o by whole-chunk matmuls; elsewhere the exact scheme one
    sub-chunk at a time, each [SUB, C] block of A turned straight into its SUB rows of o.
    Refs: q, k, b [C, Dk]; v, o [C, BV]; h [BV, Dk] (entering state, transposed)."""
    C, Dk = q_ref.shape
    ok = _factored_ok(b_ref[pl.ds(0, 1), :], b_ref[...])

    @pl.when(ok)
    def _():  # `_out_fwd_kernel` with A from registers
        a = _factored_scores(q_ref, k_ref, b_ref, mm_dtype)
        q_e = q_ref[...].astype(_F32) * jnp.exp(b_ref[...])
        o = _dot(q_e, h_ref[...], mm_dtype, trans_b=True) + _dot(a, v_ref[...], mm_dtype)
        o_ref[...] = (scale * o).astype(o_ref.dtype)

    # The fallback by a loop, not unrolled, and its 16-row (mma.sync) matmul with the state
    # over 64-wide slices of Dk: unrolled or whole-Dk, it spilled at 8 warps (sm_90 cubins).
    width = min(Dk, 64)

    @pl.when(jnp.logical_not(ok))
    def _():
        def sub_chunk(s, carry):
            sl = pl.ds(pl.multiple_of(s * SUB, SUB), SUB)
            a_s = _exact_score_rows(q_ref, k_ref, b_ref, s, mm_dtype)  # [SUB, C]

            def state_part(d, o):
                dd = pl.ds(pl.multiple_of(d * width, width), width)
                q_e = q_ref[sl, dd].astype(_F32) * jnp.exp(b_ref[sl, dd])
                return o + _dot(q_e, h_ref[:, dd], mm_dtype, trans_b=True)

            o = jax.lax.fori_loop(0, Dk // width, state_part, _dot(a_s, v_ref[...], mm_dtype))
            o_ref[sl, :] = (scale * o).astype(o_ref.dtype)
            return carry

        jax.lax.fori_loop(0, C // SUB, sub_chunk, 0)


def _walk_specs(Tp: int, N: int, bv: int, bk: int):
    """BlockSpecs of a state walk on the grid (B, H, Dv/bv, Dk/bk): the per-program sequences
    [Tp, bk] (key dims) and [Tp, bv] (value dims), its state tile [bv, bk] of a
    [B, H, Dv, Dk] array, and its per-chunk states [N, bv, bk] of a [B, H, N, Dv, Dk] array."""
    return (pl.BlockSpec((None, Tp, None, bk), lambda b_, h, i, j: (b_, 0, h, j)),
            pl.BlockSpec((None, Tp, None, bv), lambda b_, h, i, j: (b_, 0, h, i)),
            pl.BlockSpec((None, None, bv, bk), lambda b_, h, i, j: (b_, h, i, j)),
            pl.BlockSpec((None, None, N, bv, bk), lambda b_, h, i, j: (b_, h, 0, i, j)))


def _chunk_state_spec(bv: int, Dk: int) -> pl.BlockSpec:
    """Chunk n's state rows [bv, Dk] (value block i) of a [B, H, N, Dv, Dk] array, on the grid
    (B, H, N, Dv/bv)."""
    return pl.BlockSpec((None, None, None, bv, Dk), lambda b_, h, n, i: (b_, h, n, i, 0))


def _intra_fwd_sub_chunks(q, k, b, *, chunk, interpret, stages):
    """A [B, Tp, H, C] (matmul dtype) by one program per 16-row sub-chunk off the diagonal,
    then the diagonal blocks by one small program each (factored_chunk = False)."""
    B, Tp, H, Dk = q.shape
    C, N = chunk, Tp // chunk
    n_sub = C // SUB
    whole = pl.BlockSpec((None, C, None, Dk), lambda b_, h, n, s: (b_, n, h, 0))
    a = pl.pallas_call(
        functools.partial(_intra_fwd_sub_kernel, mm_dtype=q.dtype),
        grid=(B, H, N, n_sub),
        in_specs=[whole, whole, whole],
        out_specs=pl.BlockSpec((None, SUB, None, C), lambda b_, h, n, s: (b_, n * n_sub + s, h, 0)),
        out_shape=jax.ShapeDtypeStruct((B, Tp, H, C), q.dtype),  # only ever a matmul operand
        compiler_params=_params(_intra_fwd_warps(Dk), stages),
        interpret=interpret,
        name="gla_intra_fwd",
    )(q, k, b)
    rows_k = pl.BlockSpec((None, SUB, None, Dk), lambda b_, h, m: (b_, m, h, 0))
    block = pl.BlockSpec((None, SUB, None, SUB), lambda b_, h, m: (b_, m, h, m % n_sub))
    return pl.pallas_call(
        _intra_fwd_diag_kernel,
        grid=(B, H, Tp // SUB),
        in_specs=[rows_k, rows_k, rows_k, block],
        out_specs=block,
        out_shape=jax.ShapeDtypeStruct(a.shape, a.dtype),
        input_output_aliases={3: 0},
        compiler_params=_params(4, stages),
        interpret=interpret,
        name="gla_intra_fwd_diag",
    )(q, k, b, a)


def _intra_fwd_chunks(q, k, b, *, chunk, interpret, stages):
    """A [B, Tp, H, C] (matmul dtype) by one program per chunk (factored_chunk = True: one
    C x C matmul where the gates allow it, see `_intra_fwd_chunk_kernel`)."""
    B, Tp, H, Dk = q.shape
    C = chunk
    whole = pl.BlockSpec((None, C, None, Dk), lambda b_, h, n: (b_, n, h, 0))
    return pl.pallas_call(
        functools.partial(_intra_fwd_chunk_kernel, mm_dtype=q.dtype),
        grid=(B, H, Tp // C),
        in_specs=[whole, whole, whole],
        out_specs=pl.BlockSpec((None, C, None, C), lambda b_, h, n: (b_, n, h, 0)),
        out_shape=jax.ShapeDtypeStruct((B, Tp, H, C), q.dtype),
        compiler_params=_params(8, stages),  # the fallback holds whole-chunk tiles
        interpret=interpret,
        name="gla_intra_fwd",
    )(q, k, b)


def _forward(q, k, v, b, s0t, *, chunk, scale, interpret, tiles, fused=False):
    """Padded inputs: q, k, b [B, Tp, H, Dk]; v [B, Tp, H, Dv]; s0t [B, H, Dv, Dk] float32.
    Returns o [B, Tp, H, Dv], A [B, Tp, H, C], the entering states h [B, H, N, Dv, Dk]
    (transposed, both in the matmul dtype) and the final state transposed [B, H, Dv, Dk].
    fused (primal only, needs factored_chunk): A is None, never stored; o by
    `gla_out_fused_fwd`, which computes each chunk's A itself."""
    B, Tp, H, Dk = q.shape
    Dv = v.shape[-1]
    C, N = chunk, Tp // chunk
    mm_dtype = q.dtype
    stages = tiles.num_stages
    isz = jnp.dtype(q.dtype).itemsize
    if fused:
        a = None
    elif tiles.factored_chunk:
        a = _intra_fwd_chunks(q, k, b, chunk=C, interpret=interpret, stages=stages)
    else:
        a = _intra_fwd_sub_chunks(q, k, b, chunk=C, interpret=interpret, stages=stages)

    bv, bk = min(tiles.block_v, Dv), min(tiles.block_k, Dk)
    seq_k, seq_v, state, per_chunk = _walk_specs(Tp, N, bv, bk)
    h_all, st = pl.pallas_call(
        functools.partial(_states_fwd_kernel, chunk=C, mm_dtype=mm_dtype),
        grid=(B, H, Dv // bv, Dk // bk),
        in_specs=[seq_k, seq_v, seq_k, state],
        out_specs=[per_chunk, state],
        out_shape=[jax.ShapeDtypeStruct((B, H, N, Dv, Dk), mm_dtype),
                   jax.ShapeDtypeStruct((B, H, Dv, Dk), _F32)],
        compiler_params=_params(4, stages, C * (bk * (isz + 4) + bv * isz)),
        interpret=interpret,
        name="gla_states_fwd",
    )(k, v, b, s0t)

    bo = min(tiles.block_v_out, Dv)
    chunk_dk = pl.BlockSpec((None, C, None, Dk), lambda b_, h, n, i: (b_, n, h, 0))
    chunk_vo = pl.BlockSpec((None, C, None, bo), lambda b_, h, n, i: (b_, n, h, i))
    if fused:  # A recomputed per value block (Dv/bo times): a C x C x Dk matmul, like A v's
        o = pl.pallas_call(
            functools.partial(_out_fused_fwd_kernel, scale=scale, mm_dtype=mm_dtype),
            grid=(B, H, N, Dv // bo),
            in_specs=[chunk_dk, chunk_dk, chunk_vo, chunk_dk, _chunk_state_spec(bo, Dk)],
            out_specs=chunk_vo,
            out_shape=jax.ShapeDtypeStruct(v.shape, q.dtype),
            compiler_params=_params(_OUT_FUSED_WARPS, stages),
            interpret=interpret,
            name="gla_out_fused_fwd",
        )(q, k, v, b, h_all)
        return o, a, h_all, st
    o = pl.pallas_call(
        functools.partial(_out_fwd_kernel, scale=scale, mm_dtype=mm_dtype),
        grid=(B, H, N, Dv // bo),
        in_specs=[chunk_dk, pl.BlockSpec((None, C, None, bo), lambda b_, h, n, i: (b_, n, h, i)),
                  chunk_dk, pl.BlockSpec((None, C, None, C), lambda b_, h, n, i: (b_, n, h, 0)),
                  _chunk_state_spec(bo, Dk)],
        out_specs=pl.BlockSpec((None, C, None, bo), lambda b_, h, n, i: (b_, n, h, i)),
        out_shape=jax.ShapeDtypeStruct(v.shape, q.dtype),
        compiler_params=_params(4, stages),
        interpret=interpret,
        name="gla_out_fwd",
    )(q, v, b, a, h_all)
    return o, a, h_all, st


# ----------------------------------------------------------------------------------------------
# backward


def _intra_bwd_kernel(q_ref, k_ref, v_ref, b_ref, a_ref, do_ref, dq_ref, dk_ref, dv_ref, *,
                      scale, mm_dtype):
    """One chunk's within-chunk gradients in one program, by the exact sub-chunk scheme (the
    within-chunk backward of pallas_tpu; the GPU kernels divide this work: `_bwd_da_kernel`,
    `_intra_bwd_chunk_kernel`, `_bwd_dv_kernel`). Refs: q, k, b, dq, dk [C, Dk]; v, do, dv
    [C, Dv]; a [C, C]. dq, dk, dv are float32 and exclude the inter-chunk terms."""
    C, Dk = q_ref.shape
    # Whole-chunk tiles are (re)loaded where used (short live ranges, see _intra_fwd_kernel).
    dv_ref[...] = scale * _dot(a_ref[...], do_ref[...], mm_dtype, trans_a=True)
    rows = _iota((C, 1), 0)
    sub_rows = _iota((SUB, 1), 0)
    sub_cols = _iota((1, SUB), 1)
    for s in range(C // SUB):
        lo, hi = s * SUB, s * SUB + SUB
        q_s = q_ref[pl.ds(lo, SUB), :].astype(_F32)
        b_s = b_ref[pl.ds(lo, SUB), :]
        do_s = do_ref[pl.ds(lo, SUB), :]
        v_s = v_ref[pl.ds(lo, SUB), :]
        if s == 0:
            dq_s = jnp.zeros((SUB, Dk), _F32)
        else:  # dq_i from keys of earlier sub-chunks, reference r = b at row lo
            r = b_ref[pl.ds(lo, 1), :]
            k_rel = k_ref[...].astype(_F32) * _exp_masked(r - b_ref[...], rows < lo)
            da_s = _dot(do_s, v_ref[...], mm_dtype, trans_b=True)  # [SUB, C]; k_rel: j < lo
            dq_s = scale * _dot(da_s, k_rel, mm_dtype) * jnp.exp(b_s - r)
        if hi == C:
            dk_s = jnp.zeros((SUB, Dk), _F32)
        else:  # dk_j from queries of later sub-chunks, reference r = b at row hi - 1
            r = b_ref[pl.ds(hi - 1, 1), :]
            q_rel = q_ref[...].astype(_F32) * _exp_masked(b_ref[...] - r, rows >= hi)
            da_cols = _dot(do_ref[...], v_s, mm_dtype, trans_b=True)  # [C, SUB]; q_rel: i >= hi
            dk_s = scale * _dot(da_cols, q_rel, mm_dtype, trans_a=True) * jnp.exp(r - b_s)
        # Diagonal block, exact: dA restricted to this sub-chunk, causal.
        da_ss = scale * _dot(do_s, v_s, mm_dtype, trans_b=True)
        da_ss = jnp.where(sub_cols <= sub_rows, da_ss, 0.0)

        dq_s, dk_s = _diag_block_grads(k_ref, b_ref, q_s, b_s, da_ss, lo, (dq_s, dk_s))
        dq_ref[pl.ds(lo, SUB), :] = dq_s
        dk_ref[pl.ds(lo, SUB), :] = dk_s


def _bwd_da_kernel(v_ref, do_ref, da_ref, dat_ref, *, scale, mm_dtype):
    """One chunk's dA = scale * do v^T as a single matmul (no sub-chunks):
    da [C, C] causal (zero above the diagonal) and its transpose dat [C, C] (zero below it),
    both float32, so the dq/dk kernel reads rows of either. Refs: v, do [C, Dv]."""
    C = v_ref.shape[0]
    rows = _iota((C, 1), 0)
    cols = _iota((1, C), 1)
    da = _dot(do_ref[...], v_ref[...], mm_dtype, trans_b=True)
    da_ref[...] = jnp.where(cols <= rows, scale * da, 0.0)
    # The transpose by a second matmul (v do^T) rather than a register transpose.
    dat = _dot(v_ref[...], do_ref[...], mm_dtype, trans_b=True)
    dat_ref[...] = jnp.where(cols >= rows, scale * dat, 0.0)


def _intra_bwd_dqk_kernel(q_ref, k_ref, b_ref, da_ref, dat_ref, dq_ref, dk_ref, *, mm_dtype):
    """Within-chunk dq, dk of ONE sub-chunk s = program_id(3) and one key block, off the
    diagonal block (factored_chunk = False; `_intra_bwd_diag_kernel` adds the diagonal block
    afterwards): dA came from `_bwd_da_kernel`, so this program holds only [C, BK] tiles.
    Refs: q, k, b [C, BK] (whole chunk); da, dat [SUB, C] (this sub-chunk's rows of dA and of
    dA^T, scaled, float32); dq, dk [SUB, BK] float32. See `_sub_chunk_dq_dk`."""
    lo = pl.multiple_of(pl.program_id(3) * SUB, SUB)
    dq_ref[...], dk_ref[...] = _sub_chunk_dq_dk(q_ref, k_ref, b_ref, da_ref, dat_ref, lo,
                                                slice(None), mm_dtype=mm_dtype,
                                                diag_loop=False)


def _sub_chunk_dq_dk(q_ref, k_ref, b_ref, da_ref, dat_ref, lo, da_rows, *, mm_dtype, diag_loop):
    """Within-chunk (dq, dk) [SUB, BK] of the sub-chunk at rows lo .. lo + SUB - 1 of the
    chunk's q, k, b [C, BK]; rows `da_rows` of da_ref, dat_ref are its rows of dA and dA^T
    (scaled, causal, float32, [*, C]).
        dq_i = sum_{j <= i} dA_ij exp(b_i - b_j) k_j,   dk_j = sum_{i >= j} dA_ij exp(b_i - b_j) q_i.
    Earlier (later) sub-chunks through one matmul relative to r = b at the sub-chunk's first
    (last) row; with diag_loop the diagonal block one column per step, read from dA in memory
    (no reduction, no barrier: dA is only read). Every exponent is <= 0 where not masked."""
    C = q_ref.shape[0]
    hi = lo + SUB
    sl = pl.ds(lo, SUB)
    rows = _iota((C, 1), 0)
    b_s = b_ref[sl, :]
    r = b_ref[pl.ds(lo, 1), :]
    k_rel = k_ref[...].astype(_F32) * _exp_masked(r - b_ref[...], rows < lo)
    dq_s = _dot(da_ref[da_rows, :], k_rel, mm_dtype) * jnp.exp(b_s - r)
    r = b_ref[pl.ds(hi - 1, 1), :]
    q_rel = q_ref[...].astype(_F32) * _exp_masked(b_ref[...] - r, rows >= hi)
    dk_s = _dot(dat_ref[da_rows, :], q_rel, mm_dtype) * jnp.exp(r - b_s)
    if diag_loop:
        dq_s, dk_s = _diag_block_grads_from_da(q_ref, k_ref, b_ref, da_ref, dat_ref, b_s,
                                               row0=lo, da_col0=lo, dat_col0=lo,
                                               carry=(dq_s, dk_s), da_rows=da_rows)
    return dq_s, dk_s


def _intra_bwd_chunk_kernel(q_ref, k_ref, b_ref, da_ref, dat_ref, dq_ref, dk_ref, *, mm_dtype):
    """Within-chunk dq, dk of one chunk and key block in one program (factored_chunk = True):
    where no key dim of the block decays by more than e^FACTORED_MAX_EXP over the chunk,
        dq = e^{b - r} (dA (k e^{r - b})),   dk = e^{r - b} (dA^T (q e^{b - r})),
    r = b at the chunk's first row (two C x C x BK matmuls); elsewhere the exact sub-chunk
    scheme, serially (`_sub_chunk_dq_dk`). Refs: q, k, b, dq, dk [C, BK]; da, dat [C, C]."""
    C = q_ref.shape[0]
    b = b_ref[...]
    r = b_ref[pl.ds(0, 1), :]
    ok = _factored_ok(r, b)

    @pl.when(ok)
    def _():
        dq_ref[...], dk_ref[...] = _factored_dq_dk(q_ref, k_ref, r, b, da_ref, dat_ref, mm_dtype)

    @pl.when(jnp.logical_not(ok))
    def _():
        for s in range(C // SUB):
            sl = pl.ds(s * SUB, SUB)
            dq_ref[sl, :], dk_ref[sl, :] = _sub_chunk_dq_dk(
                q_ref, k_ref, b_ref, da_ref, dat_ref, s * SUB, sl, mm_dtype=mm_dtype,
                diag_loop=True)


def _diag_block_grads_from_da(q_ref, k_ref, b_ref, da_ref, dat_ref, b_s, *, row0, da_col0,
                              dat_col0, carry, da_rows=slice(None)):
    """Adds to carry = (dq_s, dk_s) [SUB, BK] the exact diagonal-block terms, one key column j
    per step, read from memory (dA and dA^T come from `_bwd_da_kernel`), so the loop is
    elementwise (no reduction, no barrier; FLA's chunk_gla_bwd_kernel_intra scheme):
        dq_i += dA[i, j] exp(b_i - b_j) k_j   (i >= j),
        dk_i += dA[j, i] exp(b_j - b_i) q_j   (i <= j).
    Key j is row row0 + j of q_ref, k_ref, b_ref; column da_col0 + j of da_ref and
    dat_col0 + j of dat_ref, whose rows `da_rows` are dA's and dA^T's rows of this sub-chunk
    (causal, scaled). b_s [SUB, BK] the sub-chunk's gate cumsums. Exponents clamped at 0
    where dA is masked (no overflow, no inf * 0)."""

    def diag(j, carry):
        dq_s, dk_s = carry
        row = pl.ds(row0 + j, 1)
        b_j = b_ref[row, :]  # [1, BK]
        da_col = da_ref[da_rows, pl.ds(da_col0 + j, 1)]  # [SUB, 1]: dA[i, j], 0 for i < j
        dat_col = dat_ref[da_rows, pl.ds(dat_col0 + j, 1)]  # [SUB, 1]: dA[j, i], 0 for i > j
        dq_s = dq_s + da_col * jnp.exp(jnp.minimum(b_s - b_j, 0.0)) * k_ref[row, :].astype(_F32)
        dk_s = dk_s + dat_col * jnp.exp(jnp.minimum(b_j - b_s, 0.0)) * q_ref[row, :].astype(_F32)
        return dq_s, dk_s

    return jax.lax.fori_loop(0, SUB, diag, carry)


def _intra_bwd_diag_kernel(q_ref, k_ref, b_ref, da_ref, dat_ref, dqi_ref, dki_ref, dq_ref,
                           dk_ref):
    """The exact diagonal-block terms of one sub-chunk's within-chunk dq, dk (factored_chunk =
    False), added to what `_intra_bwd_dqk_kernel` wrote (dqi, dki aliased to dq, dk).
    Refs: q, k, b, dqi, dki, dq, dk [SUB, BK] (this sub-chunk only: a small program, many per
    SM); da, dat [SUB, SUB] (dA's and dA^T's diagonal block)."""
    b_s = b_ref[...]
    carry = (dqi_ref[...], dki_ref[...])
    dq_ref[...], dk_ref[...] = _diag_block_grads_from_da(
        q_ref, k_ref, b_ref, da_ref, dat_ref, b_s, row0=0, da_col0=0, dat_col0=0, carry=carry)


def _factored_dq_dk(q_ref, k_ref, r, b, da_ref, dat_ref, mm_dtype):
    """The within-chunk (dq, dk) [R, BK] by the factored form, valid where `_factored_ok`:
        dq_i = e^{b_i - r} sum_j dA_ij (k_j e^{r - b_j}),
        dk_j = e^{r - b_j} sum_i dA_ij (q_i e^{b_i - r})  (= dat (q e^{b - r}), dat = dA^T).
    Refs: q, k [R, BK]; da, dat [R, R] (causal, scaled); r [1, BK] = b at the first row;
    b [R, BK]."""
    grow, shrink = jnp.exp(r - b), jnp.exp(b - r)
    dq = _dot(da_ref[...], k_ref[...].astype(_F32) * grow, mm_dtype) * shrink
    dk = _dot(dat_ref[...], q_ref[...].astype(_F32) * shrink, mm_dtype) * grow
    return dq, dk


def _dstates_bwd_kernel(q_ref, b_ref, do_ref, dst_ref, dh_ref, ds0_ref, *, chunk, scale,
                       mm_dtype):
    """The only sequential part of the backward: one (batch, head, value block, key block)
    walks the chunks backward with dS, the gradient of the state leaving each chunk, and
    records it: dS_{n-1} = exp(b_last_n) dS_n + scale * (q_n exp(b_n))^T do_n.
    Refs: q, b [Tp, BK]; do [Tp, BV]; dst, ds0 [BV, BK] float32 (transposed);
    dh [N, BV, BK] (dS leaving each chunk, matmul dtype)."""
    Tp, C = q_ref.shape[0], chunk
    N = Tp // C

    def body(i, ds):
        n = N - 1 - i
        t = pl.ds(pl.multiple_of(n * C, C), C)
        dh_ref[n] = ds.astype(dh_ref.dtype)
        q_e = q_ref[t, :].astype(_F32) * jnp.exp(b_ref[t, :])
        b_last = b_ref[pl.ds(n * C + C - 1, 1), :]
        return ds * jnp.exp(b_last) + scale * _dot(do_ref[t, :], q_e, mm_dtype, trans_a=True)

    ds0_ref[...] = jax.lax.fori_loop(0, N, body, dst_ref[...].astype(_F32))


def _bwd_dqk_kernel(q_ref, k_ref, v_ref, b_ref, do_ref, h_ref, dh_ref, dqi_ref, dki_ref, dq_ref,
                    dk_ref, dgl_ref, *, scale, mm_dtype):
    """One (chunk, key block) of dq and dk, all chunks in parallel: the inter-chunk terms
    dq = scale * (do S_entering^T) * exp(b),  dk = (v dS_leaving^T) * exp(b_last - b),
    added to the within-chunk parts, and the gate gradient's local term q dq - k dk reverse-
    cumsummed within the chunk (float32; `_gate_gradient_from_chunks` adds the later chunks).
    Refs: q, k, b, dqi, dki, dq, dk, dgl
    [C, BK]; v, do [C, Dv]; h, dh [Dv, BK] (transposed states). dq, dk are written in the
    input dtype (no float32 round trip through memory)."""
    C = k_ref.shape[0]
    b = b_ref[...]
    dq = scale * _dot(do_ref[...], h_ref[...], mm_dtype) * jnp.exp(b) + dqi_ref[...]
    tail = jnp.exp(b_ref[pl.ds(C - 1, 1), :] - b)
    dk = _dot(v_ref[...], dh_ref[...], mm_dtype) * tail + dki_ref[...]
    dq_ref[...] = dq.astype(dq_ref.dtype)
    dk_ref[...] = dk.astype(dk_ref.dtype)
    local = q_ref[...].astype(_F32) * dq - k_ref[...].astype(_F32) * dk
    # Its reverse cumsum within the chunk (Triton has only the forward scan): total - prefix
    # + self, float32 (the error is of the order of any summation order's).
    dgl_ref[...] = jnp.sum(local, axis=0, keepdims=True) - jnp.cumsum(local, axis=0) + local


def _bwd_dv_kernel(k_ref, b_ref, a_ref, do_ref, dh_ref, dv_ref, *, scale, mm_dtype):
    """One (chunk, value block) of dv, all chunks in parallel, within-chunk and inter-chunk
    terms together: dv = scale * A^T do + (k exp(b_last - b)) dS_leaving, both as whole-chunk
    matmuls (no float32 dv intermediate).
    Refs: k, b [C, Dk]; a [C, C] (the forward's A, unscaled); do, dv [C, BV]; dh [BV, Dk]."""
    C = k_ref.shape[0]
    b = b_ref[...]
    k_tail = k_ref[...].astype(_F32) * jnp.exp(b_ref[pl.ds(C - 1, 1), :] - b)
    dv = (_dot(k_tail, dh_ref[...], mm_dtype, trans_b=True)
          + scale * _dot(a_ref[...], do_ref[...], mm_dtype, trans_a=True))
    dv_ref[...] = dv.astype(dv_ref.dtype)


def _intra_bwd(q, k, v, b, do, *, chunk, scale, interpret, stages, bk, factored_chunk):
    """Within-chunk dq, dk (float32 [B, Tp, H, Dk]), FLA's division of the work: dA and dA^T
    per chunk as whole-chunk matmuls (`gla_bwd_da`), then one program per (chunk, key block of
    bk columns) (`_intra_bwd_chunk_kernel`); with factored_chunk = False one light program per
    (16-row sub-chunk, key block) off the diagonal, and the exact diagonal blocks in a third
    kernel of [SUB, bk] programs. dv's within-chunk term is left to the dv kernel."""
    B, Tp, H, Dk = q.shape
    Dv = v.shape[-1]
    C = chunk
    N, n_sub = Tp // C, C // SUB
    f32 = lambda shape: jax.ShapeDtypeStruct(shape, _F32)  # noqa: E731
    chunk_v = pl.BlockSpec((None, C, None, Dv), lambda b_, h, n: (b_, n, h, 0))
    chunk_a = pl.BlockSpec((None, C, None, C), lambda b_, h, n: (b_, n, h, 0))
    da, dat = pl.pallas_call(
        functools.partial(_bwd_da_kernel, scale=scale, mm_dtype=q.dtype),
        grid=(B, H, N),
        in_specs=[chunk_v, chunk_v],
        out_specs=[chunk_a, chunk_a],
        out_shape=[f32((B, Tp, H, C))] * 2,
        compiler_params=_params(4, stages),
        interpret=interpret,
        name="gla_bwd_da",
    )(v, do)

    if factored_chunk:
        chunk_k = pl.BlockSpec((None, C, None, bk), lambda b_, h, n, j: (b_, n, h, j))
        chunk_a = pl.BlockSpec((None, C, None, C), lambda b_, h, n, j: (b_, n, h, 0))
        return pl.pallas_call(
            functools.partial(_intra_bwd_chunk_kernel, mm_dtype=q.dtype),
            grid=(B, H, N, Dk // bk),
            in_specs=[chunk_k, chunk_k, chunk_k, chunk_a, chunk_a],
            out_specs=[chunk_k, chunk_k],
            out_shape=[f32(q.shape)] * 2,
            compiler_params=_params(8, stages),  # the fallback holds whole-chunk tiles
            interpret=interpret,
            name="gla_intra_bwd",
        )(q, k, b, da, dat)

    whole_k = pl.BlockSpec((None, C, None, bk), lambda b_, h, n, s, j: (b_, n, h, j))
    rows_a = pl.BlockSpec((None, SUB, None, C), lambda b_, h, n, s, j: (b_, n * n_sub + s, h, 0))
    rows_k = pl.BlockSpec((None, SUB, None, bk),
                          lambda b_, h, n, s, j: (b_, n * n_sub + s, h, j))
    dqi, dki = pl.pallas_call(
        functools.partial(_intra_bwd_dqk_kernel, mm_dtype=q.dtype),
        grid=(B, H, N, n_sub, Dk // bk),
        in_specs=[whole_k, whole_k, whole_k, rows_a, rows_a],
        out_specs=[rows_k, rows_k],
        out_shape=[f32(q.shape)] * 2,
        compiler_params=_params(4, stages),
        interpret=interpret,
        name="gla_intra_bwd",
    )(q, k, b, da, dat)
    sub_k = pl.BlockSpec((None, SUB, None, bk), lambda b_, h, m, j: (b_, m, h, j))
    block = pl.BlockSpec((None, SUB, None, SUB), lambda b_, h, m, j: (b_, m, h, m % n_sub))
    return pl.pallas_call(
        _intra_bwd_diag_kernel,
        grid=(B, H, Tp // SUB, Dk // bk),
        in_specs=[sub_k, sub_k, sub_k, block, block, sub_k, sub_k],
        out_specs=[sub_k, sub_k],
        out_shape=[f32(q.shape)] * 2,
        input_output_aliases={5: 0, 6: 1},
        compiler_params=_params(4, stages),
        interpret=interpret,
        name="gla_intra_bwd_diag",
    )(q, k, b, da, dat, dqi, dki)


def _backward(q, k, v, b, a, h_all, do, dst, *, scale, interpret, tiles):
    """Padded arrays as in `_forward`; h_all [B, H, N, Dv, Dk] the entering states it saved;
    do [B, Tp, H, Dv]; dst [B, H, Dv, Dk] float32 (the final-state cotangent, transposed).
    Returns dq, dk [B, Tp, H, Dk] and dv [B, Tp, H, Dv] in the input dtype, the gate
    gradient's local term q dq - k dk [B, Tp, H, Dk] float32 and dS_0 transposed
    [B, H, Dv, Dk] float32."""
    B, Tp, H, Dk = q.shape
    Dv = v.shape[-1]
    C = a.shape[-1]
    N = Tp // C
    mm_dtype = q.dtype
    stages = tiles.num_stages
    isz = jnp.dtype(q.dtype).itemsize
    do = do.astype(q.dtype)  # bf16 matmul operand, like v

    f32 = lambda shape: jax.ShapeDtypeStruct(shape, _F32)  # noqa: E731
    bv, bk = min(tiles.block_v, Dv), min(tiles.block_k, Dk)
    dqi, dki = _intra_bwd(q, k, v, b, do, chunk=C, scale=scale, interpret=interpret,
                          stages=stages, bk=bk, factored_chunk=tiles.factored_chunk)

    seq_k, seq_v, state, per_chunk = _walk_specs(Tp, N, bv, bk)
    dh_all, ds0t = pl.pallas_call(
        functools.partial(_dstates_bwd_kernel, chunk=C, scale=scale, mm_dtype=mm_dtype),
        grid=(B, H, Dv // bv, Dk // bk),
        in_specs=[seq_k, seq_k, seq_v, state],
        out_specs=[per_chunk, state],
        out_shape=[jax.ShapeDtypeStruct((B, H, N, Dv, Dk), mm_dtype), f32((B, H, Dv, Dk))],
        compiler_params=_params(4, stages, C * (bk * (isz + 4) + bv * isz)),
        interpret=interpret,
        name="gla_dstates_bwd",
    )(q, b, do, dst)

    # dq, dk: one program per (chunk, key block), contracting over all of Dv.
    chunk_k = pl.BlockSpec((None, C, None, bk), lambda b_, h, n, j: (b_, n, h, j))
    chunk_v = pl.BlockSpec((None, C, None, Dv), lambda b_, h, n, j: (b_, n, h, 0))
    state_k = pl.BlockSpec((None, None, None, Dv, bk), lambda b_, h, n, j: (b_, h, n, 0, j))
    dq, dk, dg_local = pl.pallas_call(
        functools.partial(_bwd_dqk_kernel, scale=scale, mm_dtype=mm_dtype),
        grid=(B, H, N, Dk // bk),
        in_specs=[chunk_k, chunk_k, chunk_v, chunk_k, chunk_v, state_k, state_k, chunk_k,
                  chunk_k],
        out_specs=[chunk_k, chunk_k, chunk_k],
        out_shape=[jax.ShapeDtypeStruct(q.shape, q.dtype)] * 2 + [f32(q.shape)],
        compiler_params=_params(4, stages),
        interpret=interpret,
        name="gla_bwd_dqk",
    )(q, k, v, b, do, h_all, dh_all, dqi, dki)

    # dv: one program per (chunk, value block), contracting over all of Dk, the within-chunk
    # term (A^T do) included. Its matmul operands (k_tail, dh, A, do) sit in shared memory:
    # float32 at Dk = 256 needed 240 KB at bo = 128 (the limit is 227 KB per block).
    bo = min(tiles.block_v_out, Dv)
    while bo > 16 and (C * Dk + bo * Dk + C * C + C * bo) * isz > DV_SHARED_MAX_BYTES:
        bo //= 2
    chunk_dk = pl.BlockSpec((None, C, None, Dk), lambda b_, h, n, i: (b_, n, h, 0))
    chunk_vo = pl.BlockSpec((None, C, None, bo), lambda b_, h, n, i: (b_, n, h, i))
    dv = pl.pallas_call(
        functools.partial(_bwd_dv_kernel, scale=scale, mm_dtype=mm_dtype),
        grid=(B, H, N, Dv // bo),
        in_specs=[chunk_dk, chunk_dk,
                  pl.BlockSpec((None, C, None, C), lambda b_, h, n, i: (b_, n, h, 0)),
                  chunk_vo, _chunk_state_spec(bo, Dk)],
        out_specs=chunk_vo,
        out_shape=jax.ShapeDtypeStruct(v.shape, v.dtype),
        compiler_params=_params(4, stages),
        interpret=interpret,
        name="gla_bwd_dv",
    )(k, b, a, do, dh_all)
    return dq, dk, dv, dg_local, ds0t


# ----------------------------------------------------------------------------------------------
# custom VJP over padded, per-key-gate inputs


def _chunk_cumsum_kernel(g_ref, b_ref):
    """One chunk's inclusive cumsum over time. Refs: g, b [C, Dk] float32."""
    b_ref[...] = jnp.cumsum(g_ref[...], axis=0)


def _chunk_cumsum(g: jax.Array, chunk: int) -> jax.Array:
    """[B, Tp, H, Dk] float32 -> inclusive cumsum within each chunk, by XLA (the TPU kernels'
    way; `_chunk_cumsum_gpu` is the GPU one)."""
    B, Tp, H, Dk = g.shape
    return jnp.cumsum(g.reshape(B, Tp // chunk, chunk, H, Dk), axis=2).reshape(g.shape)


def _chunk_cumsum_gpu(g: jax.Array, chunk: int, interpret: bool) -> jax.Array:
    """[B, Tp, H, Dk] float32 -> inclusive cumsum within each chunk, one program per chunk
    and 64 key dims (XLA's cumsum over the chunk axis ran at a tenth of the memory bandwidth: 0.08 ms at the
    Small-E shape on an H200)."""
    B, Tp, H, Dk = g.shape
    bk = min(Dk, 64)  # [C, 64] float32 tiles: 32 registers a thread at 4 warps
    spec = pl.BlockSpec((None, chunk, None, bk), lambda b_, h, n, j: (b_, n, h, j))
    return pl.pallas_call(
        _chunk_cumsum_kernel,
        grid=(B, H, Tp // chunk, Dk // bk),
        in_specs=[spec],
        out_specs=spec,
        out_shape=jax.ShapeDtypeStruct(g.shape, _F32),
        compiler_params=_params(4, 1),
        interpret=interpret,
        name="gla_chunk_cumsum",
    )(g)


class Tiles(NamedTuple):
    """Tile sizes of one call (see the BLOCK_* constants); num_stages None = automatic;
    factored_chunk: the forward's A and the backward's within-chunk dq, dk by whole-chunk
    matmuls where the gates allow it (see FACTORED_CHUNK)."""

    block_v: int
    block_k: int
    block_v_out: int
    num_stages: int | None
    factored_chunk: bool = FACTORED_CHUNK
    fused_out: bool = FUSED_OUT


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def _gla_core(q, k, v, g, s0, chunk, scale, interpret, tiles):
    # jax.custom_vjp runs this primal body only where nothing is differentiated (jit'd
    # forward, inference prefill); under grad/vjp it runs `_core_fwd`, which keeps A and h as
    # the backward's residuals. So only here may A stay in registers (fused_out).
    fused = tiles.fused_out and tiles.factored_chunk
    return _core_fwd(q, k, v, g, s0, chunk, scale, interpret, tiles, fused=fused)[0]


def _core_fwd(q, k, v, g, s0, chunk, scale, interpret, tiles, fused=False):
    b = _chunk_cumsum_gpu(g, chunk, interpret)
    s0t = jnp.swapaxes(s0, -1, -2)
    o, a, h_all, st = _forward(q, k, v, b, s0t, chunk=chunk, scale=scale, interpret=interpret,
                               tiles=tiles, fused=fused)
    s_final = jnp.swapaxes(st, -1, -2)
    return (o, s_final), (q, k, v, b, a, h_all, s_final)


def _core_bwd(chunk, scale, interpret, tiles, res, cotangents):
    del chunk  # A's width
    q, k, v, b, a, h_all, s_final = res
    do, ds_final = cotangents
    dq, dk, dv, dg_local, ds0t = _backward(q, k, v, b, a, h_all, do,
                                           jnp.swapaxes(ds_final, -1, -2), scale=scale,
                                           interpret=interpret, tiles=tiles)
    # over the padded sequence (padded steps have q = k = 0: their local terms are zero)
    dg = _gate_gradient_from_chunks(dg_local, s_final, ds_final, a.shape[-1])
    return (dq, dk, dv, dg,
            jnp.swapaxes(ds0t, -1, -2))


_gla_core.defvjp(_core_fwd, _core_bwd)


def _chunk_for(chunk_size: int, T: int) -> int:
    """Power-of-two chunk in [SUB, 128]: chunk_size rounded down, no larger than T needs."""
    chunk = 1 << (max(chunk_size, SUB).bit_length() - 1)
    return max(SUB, min(chunk, 128, _pow2_at_least_16(T)))


def _pow2_at_least_16(n: int) -> int:
    return max(16, 1 << (n - 1).bit_length())


def _pad_axis(x: jax.Array, axis: int, size: int) -> jax.Array:
    if x.shape[axis] == size:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, pad)


def gla_pallas_gpu(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    log_g: jax.Array,
    *,
    scale: float,
    initial_state: jax.Array | None = None,
    chunk_size: int = 64,
    interpret: bool | None = None,
    block_v: int | None = None,
    block_k: int | None = None,
    block_v_out: int | None = None,
    num_stages: int | None = None,
    factored_chunk: bool | None = None,
    fused_out: bool | None = None,
) -> tuple[jax.Array, jax.Array]:
    """GLA with the Pallas GPU kernels (inputs assumed validated by `kernels.gla.gla`).

    Args:
      q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; one dtype (bf16 or float32).
      log_g: [B, T, H, Dk] or [B, T, H] (one gate per head), <= 0.
      scale: output multiplier.
      initial_state: [B, H, Dk, Dv] or None (zeros).
      chunk_size: tokens per chunk; rounded down to a power of two in [16, 128] (Triton tiles
        are powers of two) and shrunk for short sequences. 64 is what the tiles are sized for;
        the result does not depend on it beyond rounding.
      interpret: Pallas interpret mode; None = on CPU or when SMALL_E_PALLAS_INTERPRET=1.
      block_v, block_k: the state tile [BV, BK] of the two sequential kernels (states forward,
        dS backward; default BLOCK_V x BLOCK_K); block_k is also the key columns per dq/dk
        program.
      block_v_out: value columns per output and dv program (default BLOCK_V_OUT).
        All tile sizes are powers of two >= 16, capped at the (padded) head dims.
      num_stages: Triton software-pipelining depth of every kernel (1 = no pipelining); None
        = NUM_STAGES where a loop iteration's tiles fit PIPELINE_MAX_BYTES, else 1.
      factored_chunk: the forward's within-chunk scores A (and the backward's within-chunk
        dq, dk) by whole-chunk matmuls where no key dim decays by more than
        e^FACTORED_MAX_EXP over the chunk, the exact sub-chunk scheme elsewhere (None =
        FACTORED_CHUNK, True). False = the exact sub-chunk scheme everywhere, its diagonal
        blocks in kernels of their own (the previous default, kept for A/B timing). Equal up
        to matmul rounding.
      fused_out: where nothing is differentiated, A and o in one kernel per (chunk, value
        block), A never stored (`gla_out_fused_fwd`; None = FUSED_OUT, False). Only with
        factored_chunk; gradients always take the unfused forward (they need A). Untimed.

    Returns:
      (o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32).
    """
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    if log_g.ndim == 3:  # per-head gate: broadcast (autodiff sums the gradient over Dk)
        log_g = jnp.broadcast_to(log_g[..., None], q.shape)
    s0 = jnp.zeros((B, H, Dk, Dv), _F32) if initial_state is None else initial_state.astype(_F32)
    if T == 0:
        return jnp.zeros(v.shape, q.dtype), s0
    chunk = _chunk_for(chunk_size, T)
    Tp = -(-T // chunk) * chunk
    dk_p, dv_p = _pow2_at_least_16(Dk), _pow2_at_least_16(Dv)
    # Zero padding is exact: log_g = 0 keeps the state, k = v = 0 add nothing, padded key dims
    # stay zero in the state, padded value columns are sliced off.
    q_p, k_p, g_p = (_pad_axis(_pad_axis(x, 1, Tp), 3, dk_p) for x in (q, k, log_g.astype(_F32)))
    v_p = _pad_axis(_pad_axis(v, 1, Tp), 3, dv_p)
    s0_p = _pad_axis(_pad_axis(s0, 2, dk_p), 3, dv_p)
    tiles = Tiles(block_v or BLOCK_V, block_k or BLOCK_K, block_v_out or BLOCK_V_OUT, num_stages,
                  FACTORED_CHUNK if factored_chunk is None else bool(factored_chunk),
                  FUSED_OUT if fused_out is None else bool(fused_out))
    if num_stages is not None and num_stages < 1:
        raise ValueError(f"gla_pallas_gpu: num_stages must be >= 1, got {num_stages}")
    for name, size in zip(("block_v", "block_k", "block_v_out"), tiles[:3]):
        if size < 16 or size & (size - 1):
            raise ValueError(f"gla_pallas_gpu: {name} must be a power of two >= 16, got {size}")
    o, s_final = _gla_core(q_p, k_p, v_p, g_p, s0_p, chunk, float(scale),
                           _use_interpret(interpret), tiles)
    return o[:, :T, :, :Dv], s_final[:, :, :Dk, :Dv]
