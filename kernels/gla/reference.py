"""Token-by-token GLA recurrence: the ground truth every other backend is tested against.

    S_t = diag(exp(log_g_t)) S_{t-1} + k_t^T v_t        S: [Dk, Dv] per (batch, head)
    o_t = scale * q_t S_t                                 (o_t includes token t)

Everything is computed in float32; only the output is cast back to q.dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_F32 = jnp.float32


def recurrence_step(
    state: jax.Array,
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    log_g: jax.Array,
    scale: float,
) -> tuple[jax.Array, jax.Array]:
    """One token of the recurrence, in float32.

    Args:
      state: [B, H, Dk, Dv] float32.
      q, k: [B, H, Dk]; v: [B, H, Dv].
      log_g: [B, H, Dk] (per key dim) or [B, H] (one gate per head).
      scale: multiplier of the output.

    Returns:
      (o [B, H, Dv] float32, new_state [B, H, Dk, Dv] float32).
    """
    q, k, v, log_g = (x.astype(_F32) for x in (q, k, v, log_g))
    if log_g.ndim == q.ndim - 1:  # scalar gate: broadcast over Dk
        log_g = log_g[..., None]
    new_state = jnp.exp(log_g)[..., None] * state + k[..., :, None] * v[..., None, :]
    o = scale * jnp.einsum("bhk,bhkv->bhv", q, new_state, precision=jax.lax.Precision.HIGHEST)
    return o, new_state


def gla_reference(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    log_g: jax.Array,
    *,
    scale: float,
    initial_state: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """GLA by a `lax.scan` over time (slow, exact up to float32 rounding).

    Args:
      q, k: [B, T, H, Dk]; v: [B, T, H, Dv].
      log_g: [B, T, H, Dk] or [B, T, H] (log forget gate, <= 0).
      scale: output multiplier.
      initial_state: [B, H, Dk, Dv] or None (zeros).

    Returns:
      (o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32).
    """
    B, _, H, Dk = q.shape
    Dv = v.shape[-1]
    if initial_state is None:
        initial_state = jnp.zeros((B, H, Dk, Dv), _F32)

    def step(state, xs):
        o, state = recurrence_step(state, *xs, scale)
        return state, o

    time_major = tuple(jnp.moveaxis(x, 1, 0) for x in (q, k, v, log_g))
    final_state, o = jax.lax.scan(step, initial_state.astype(_F32), time_major)
    return jnp.moveaxis(o, 0, 1).astype(q.dtype), final_state
