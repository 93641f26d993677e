"""Chunk-parallel GLA in plain XLA (the default backend; fallback for every device).

The sequence is cut into chunks of C tokens. Within a chunk, with b the inclusive cumsum of
log_g (float32, non-increasing because log_g <= 0), token i sees

    o_i = scale * [ (q_i * exp(b_i)) S_prev                       (inter-chunk)
                    + sum_{j <= i in chunk} A_ij v_j ]            (intra-chunk)
    A_ij = sum_d q_id k_jd exp(b_id - b_jd)

and the state passed to the next chunk is

    S_next = exp(b_last) * S_prev + sum_j (k_j * exp(b_last - b_j))^T v_j.

Every exponent that is evaluated is <= 0 (positions where it would not be are masked before
the exp), so nothing overflows however strong the gates are. The naive factorisation
A = (q exp(b)) (k exp(-b))^T is avoided because exp(-b_j) can overflow float32. Instead (per-
key-dim gates) each chunk is split into sub-chunks of c tokens:

  * query sub-chunk a against keys of earlier sub-chunks: with the reference point r_a = b at
    the first token of sub-chunk a, exp(b_i - b_j) = exp(b_i - r_a) * exp(r_a - b_j), and both
    factors are <= 1 (i is at or after r_a's token, j is before it), so it is a matmul;
  * the c x c diagonal blocks use the exact pairwise form, exponent masked above the diagonal.

For one scalar gate per head the decay matrix exp(b_i - b_j) does not depend on d, so the
intra-chunk part is (q k^T) * decay with no sub-chunking.

All of these are exact identities, so the result is right for any log_g; the overflow
safety relies on log_g <= 0 (a forget gate).

Precision: gates, cumsums, the recurrence and all accumulations are float32. With bf16 inputs
the matmul operands (q exp(b), k exp(b_last - b), scores, and the per-chunk state snapshots
that are read by q) are bf16; with float32 inputs the matmuls run at HIGHEST precision.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

_F32 = jnp.float32
# Largest sub-chunk for the per-key-dim gate's diagonal blocks (must divide the chunk size;
# a smaller power of two is used when it does not).
SUB_CHUNK = 16
# Unrolled steps per iteration of the chunk-recurrence loop on GPU: consecutive steps fuse
# into one kernel, cutting per-iteration launch and loop overhead (measured on H100: forward +
# backward 7.8 vs 6.6 Mtok/s at B=8, T=4096, H=4, Dk=128, Dv=256). Elsewhere it only adds
# compile time, so 1.
_GPU_SCAN_UNROLL = 8


def _scan_unroll() -> int:
    return _GPU_SCAN_UNROLL if jax.default_backend() == "gpu" else 1


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _to_chunks(x: jax.Array, chunk: int) -> jax.Array:
    """[B, T, H, ...] -> [N, B, H, C, ...], zero-padding T up to N * C.

    Chunk-major so that the per-chunk states come out of the einsums already in the order the
    chunk recurrence scans them (no transposes of the large [N, B, H, Dk, Dv] tensors).

    Zero padding is harmless: log_g = 0 keeps the state, k = v = 0 add nothing, and the padded
    outputs are sliced off.
    """
    B, T, H = x.shape[:3]
    n = _round_up(T, chunk) // chunk
    pad = [(0, 0)] * x.ndim
    pad[1] = (0, n * chunk - T)
    x = jnp.pad(x, pad).reshape(B, n, chunk, H, *x.shape[3:])
    return jnp.moveaxis(x, (1, 0, 3), (0, 1, 2))


def _from_chunks(x: jax.Array, T: int) -> jax.Array:
    """[N, B, H, C, D] -> [B, T, H, D] (drops the padding)."""
    N, B, H, C, D = x.shape
    return jnp.moveaxis(x, (0, 1, 2), (1, 0, 3)).reshape(B, N * C, H, D)[:, :T]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _chunk_recurrence(
    u: jax.Array, decay: jax.Array, s0: jax.Array, snapshot_dtype
) -> tuple[jax.Array, jax.Array]:
    """The chunk-to-chunk state recurrence S_n = decay_n * S_{n-1} + U_n (float32 carry).

    Args:
      u: [N, B, H, Dk, Dv] float32, each chunk's own state contribution.
      decay: [N, B, H, Dk] or [N, B, H, 1] float32, exp(b_last) of each chunk.
      s0: [B, H, Dk, Dv] float32, the state before the first chunk.
      snapshot_dtype: dtype of the returned per-chunk states, which only feed a matmul.

    Returns:
      (s_prev [N, B, H, Dk, Dv] snapshot_dtype: the state entering each chunk,
       s_final [B, H, Dk, Dv] float32).

    A sequential `lax.scan` over the N = T / C chunks: O(N) work and one pass over the
    [N, ..., Dk, Dv] states (an associative scan makes several). The hand-written backward
    keeps the per-step work elementwise and moves the decay gradient, a reduction, out of
    the loop.
    """
    return _recurrence_fwd(u, decay, s0, snapshot_dtype)[0]


def _recurrence_fwd(u, decay, s0, snapshot_dtype):
    def step(s, xs):
        u_n, decay_n = xs
        return decay_n[..., None] * s + u_n, s.astype(snapshot_dtype)

    s_final, s_prev = jax.lax.scan(step, s0, (u, decay), unroll=_scan_unroll())
    return (s_prev, s_final), (decay, s_prev)


def _recurrence_bwd(snapshot_dtype, res, cotangents):
    del snapshot_dtype
    decay, s_prev = res
    ds_prev, ds_final = cotangents

    # lam_n = dL/dS_n (state after chunk n); S_n feeds s_prev[n + 1] and S_{n + 1}:
    #   lam_{N-1} = ds_final,  lam_{n-1} = ds_prev[n] + decay_n * lam_n.
    def step(lam, xs):
        ds_prev_n, decay_n = xs
        return ds_prev_n.astype(_F32) + decay_n[..., None] * lam, lam

    ds0, lam = jax.lax.scan(
        step, ds_final, (ds_prev, decay), reverse=True, unroll=_scan_unroll()
    )
    # S_n = decay_n * S_{n-1} + U_n: dU_n = lam_n, d decay_n = sum over Dv (and over Dk
    # for a per-head gate of shape [..., 1]) of lam_n * S_{n-1}.
    d_decay = jnp.sum(lam * s_prev.astype(_F32), axis=-1)
    if decay.shape[-1] == 1:
        d_decay = jnp.sum(d_decay, axis=-1, keepdims=True)
    return lam, d_decay, ds0


_chunk_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def _mm(spec: str, a: jax.Array, b: jax.Array, dtype) -> jax.Array:
    """einsum with both operands cast to `dtype` (bf16 or fp32) and float32 accumulation."""
    precision = jax.lax.Precision.HIGHEST if dtype == _F32 else None
    return jnp.einsum(
        spec, a.astype(dtype), b.astype(dtype), preferred_element_type=_F32, precision=precision
    )


def _inter_chunk(q, k, v, b, b_last, s0, mm_dtype):
    """Contribution of earlier chunks, and the states.

    Args:
      q, k: [N, B, H, C, Dk]; v: [N, B, H, C, Dv].
      b: [N, B, H, C, Dk or 1] float32 within-chunk inclusive cumsum of log_g.
      b_last: [N, B, H, Dk or 1] float32, b at each chunk's last token.
      s0: [B, H, Dk, Dv] float32.

    Returns:
      (o_inter [N, B, H, C, Dv] float32 (unscaled), s_final [B, H, Dk, Dv] float32).
    """
    # Each chunk's own state contribution, all chunks at once; exp(b_last - b) <= 1.
    k_tail = k * jnp.exp(b_last[..., None, :] - b)
    u = _mm("nbhck,nbhcv->nbhkv", k_tail, v, mm_dtype)
    # The per-chunk snapshots are stored in the matmul dtype: they are only a matmul operand
    # and the largest tensor here (bf16 halves its traffic: forward + backward 8.8 vs 7.9
    # Mtok/s on H100 at the shape above). The recurrence itself runs in float32.
    s_prev, s_final = _chunk_recurrence(u, jnp.exp(b_last), s0, mm_dtype)
    # Read the entering state with the decay accumulated so far in the chunk; exp(b) <= 1.
    o_inter = _mm("nbhck,nbhkv->nbhcv", q * jnp.exp(b), s_prev, mm_dtype)
    return o_inter, s_final


def _intra_scalar(q, k, v, b, mm_dtype):
    """Within-chunk part for one gate per head: (q k^T * exp(b_i - b_j) masked) v.

    Args:
      q, k: [N, B, H, C, Dk]; v: [N, B, H, C, Dv]; b: [N, B, H, C] float32.

    Returns:
      [N, B, H, C, Dv] float32 (unscaled).
    """
    C = q.shape[3]
    causal = np.tril(np.ones((C, C), bool))
    # Masked exponent: above the diagonal b_i - b_j > 0 could overflow; exp(-inf) = 0.
    decay = jnp.exp(jnp.where(causal, b[..., :, None] - b[..., None, :], -jnp.inf))
    scores = _mm("...ik,...jk->...ij", q, k, mm_dtype) * decay
    return _mm("...ij,...jv->...iv", scores, v, mm_dtype)


def _pair_decay(b: jax.Array) -> jax.Array:
    """[..., c, Dk] -> [..., c(i), c(j), Dk]: exp(b_i - b_j) for j <= i, 0 above (no overflow)."""
    c = b.shape[-2]
    causal = np.tril(np.ones((c, c), bool))[:, :, None]
    return jnp.exp(jnp.where(causal, b[..., :, None, :] - b[..., None, :, :], -jnp.inf))


@jax.custom_vjp
def _diag_scores(q: jax.Array, k: jax.Array, b: jax.Array) -> jax.Array:
    """Exact scores inside one sub-chunk: A_ij = sum_d q_id k_jd exp(b_id - b_jd), j <= i.

    Args:
      q, k, b: [..., c, Dk] float32.

    Returns:
      [..., c, c] float32, zero above the diagonal.

    Custom backward: autodiff would keep the [..., c, c, Dk] decay tensor (T * c * Dk floats
    per head) for the backward pass; this recomputes it inside fused reductions instead.
    """
    return jnp.sum(q[..., :, None, :] * k[..., None, :, :] * _pair_decay(b), axis=-1)


def _diag_scores_fwd(q, k, b):
    return _diag_scores(q, k, b), (q, k, b)


def _diag_scores_bwd(res, d_scores):
    q, k, b = res
    # The barrier stops XLA from sharing this recomputation with the forward pass, which
    # would make it store the [..., c, c, Dk] tensor after all.
    decay = _pair_decay(jax.lax.optimization_barrier(b))
    w = d_scores[..., None] * decay  # [..., c(i), c(j), Dk]
    dq = jnp.sum(w * k[..., None, :, :], axis=-2)
    dk = jnp.sum(w * q[..., :, None, :], axis=-3)
    # b_i enters as +b_id (row i) and -b_jd (column j): db = q * dq - k * dk.
    return dq, dk, q * dq - k * dk


_diag_scores.defvjp(_diag_scores_fwd, _diag_scores_bwd)


def _intra_vector(q, k, v, b, sub, mm_dtype):
    """Within-chunk part for per-key-dim gates, with secondary chunking (see module doc).

    Args:
      q, k: [N, B, H, C, Dk]; v: [N, B, H, C, Dv]; b: [N, B, H, C, Dk] float32.
      sub: sub-chunk size c (divides C).

    Returns:
      [N, B, H, C, Dv] float32 (unscaled).
    """
    *lead, C, Dk = q.shape
    m = C // sub
    q_s = q.reshape(*lead, m, sub, Dk)
    k_s = k.reshape(*lead, m, sub, Dk)
    b_s = b.reshape(*lead, m, sub, Dk)

    # Off-diagonal blocks: query sub-chunk a against all C keys, relative to r_a = b at the
    # first token of sub-chunk a. Keys of earlier sub-chunks have r_a - b_j <= 0; the
    # exponent of the others (masked out below) is set to 0 so it cannot overflow.
    r = b_s[..., :, :1, :]  # [.., m, 1, Dk]
    q_rel = q_s * jnp.exp(b_s - r)  # [.., m, c, Dk], factor <= 1
    key_block = np.arange(C) // sub
    earlier = key_block[None, :] < np.arange(m)[:, None]  # [m, C]: key sub-chunk < a
    k_exp = jnp.where(earlier[:, :, None], r - b[..., None, :, :], 0.0)
    k_rel = k[..., None, :, :] * jnp.exp(k_exp)  # [.., m, C, Dk]
    scores = _mm("...aik,...ajk->...aij", q_rel, k_rel, mm_dtype)  # [.., m, c, C]
    scores = jnp.where(earlier[:, None, :], scores, 0.0)

    # Diagonal c x c blocks, exact; placed at columns a*c .. a*c + c - 1 of row block a.
    # Leading axes flattened into one: XLA:CPU (jaxlib 0.10.2) segfaults at run time on this
    # reduction's gradient at rank 7 (e.g. jit of sum(d[..., None] * (b[..., :, None, :] -
    # b[..., None, :, :]) * k[..., None, :, :], axis=-2) for b, k: [2, 2, 2, 2, 16, 8]).
    flat = lambda x: x.reshape(-1, sub, Dk)  # noqa: E731
    scores_diag = _diag_scores(flat(q_s.astype(_F32)), flat(k_s.astype(_F32)), flat(b_s))
    scores_diag = scores_diag.reshape(*lead, m, sub, sub)  # [.., m, c, c]
    eye = jnp.eye(m, dtype=_F32)
    scores = scores + jnp.einsum("...aij,as->...aisj", scores_diag, eye).reshape(scores.shape)

    scores = scores.reshape(*lead, C, C)
    return _mm("...ij,...jv->...iv", scores, v, mm_dtype)


def gla_chunked(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    log_g: jax.Array,
    *,
    scale: float,
    initial_state: jax.Array | None = None,
    chunk_size: int = 64,
) -> tuple[jax.Array, jax.Array]:
    """Chunk-parallel GLA (inputs are assumed validated by `kernels.gla.gla`).

    Args:
      q, k: [B, T, H, Dk]; v: [B, T, H, Dv] (same dtype; bf16 matmuls when bf16).
      log_g: [B, T, H, Dk] (per key dim) or [B, T, H] (one gate per head), <= 0.
      scale: output multiplier.
      initial_state: [B, H, Dk, Dv] or None (zeros).
      chunk_size: tokens per chunk C; shrunk for short sequences.

    Returns:
      (o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32).
    """
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    scalar_gate = log_g.ndim == 3
    mm_dtype = q.dtype
    sub = math.gcd(chunk_size, SUB_CHUNK)
    # A sequence shorter than a chunk only needs to be padded to a whole sub-chunk.
    chunk = min(chunk_size, max(sub, _round_up(T, sub)))

    s0 = jnp.zeros((B, H, Dk, Dv), _F32) if initial_state is None else initial_state.astype(_F32)
    q_c, k_c, v_c = (_to_chunks(x, chunk) for x in (q, k, v))
    g_c = _to_chunks(log_g.astype(_F32), chunk)  # [N, B, H, C, Dk] or [N, B, H, C]
    b = jnp.cumsum(g_c, axis=3)

    if scalar_gate:
        o_inter, s_final = _inter_chunk(
            q_c, k_c, v_c, b[..., None], b[..., -1:], s0, mm_dtype
        )
        o_intra = _intra_scalar(q_c, k_c, v_c, b, mm_dtype)
    else:
        o_inter, s_final = _inter_chunk(q_c, k_c, v_c, b, b[..., -1, :], s0, mm_dtype)
        o_intra = _intra_vector(q_c, k_c, v_c, b, sub, mm_dtype)

    o = scale * (o_inter + o_intra)
    return _from_chunks(o, T).astype(q.dtype), s_final
