"""Helpers shared by the bodies of the fused decode-block kernels (`block_step.py`'s five kernels
and `block_persistent.py`'s one): float32 LayerNorm statistics, the compute-dtype matmul and
rounding, the activations, the paired SwiGLU and a whole-array BlockSpec."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from kernels.block_dims import ROW_MULTIPLE

_F32 = jnp.float32


def round_dtype(x, dtype):
    """Round to the compute dtype and back to float32 (where the XLA path stores a result)."""
    return x.astype(dtype).astype(_F32)


def ln_stats(x, eps):
    """x [R, d] float32 -> (mean, rstd) [R, 1]."""
    mean = jnp.mean(x, axis=1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=1, keepdims=True)
    return mean, jax.lax.rsqrt(var + eps)


def mm(a, w_t, dtype):
    """a [R, K] @ w_t[N, K]^T with operands in the compute dtype, float32 accumulation."""
    if a.shape[0] < ROW_MULTIPLE or w_t.shape[0] < ROW_MULTIPLE:  # below tl.dot's 16: multiply-add
        return jnp.sum(round_dtype(a, dtype)[:, None, :] * round_dtype(w_t, dtype)[None, :, :], axis=2)
    return jax.lax.dot_general(a.astype(dtype), w_t.astype(dtype), (((1,), (1,)), ((), ())),
                               preferred_element_type=_F32, precision=precision(dtype))


def precision(dtype):
    # float32 operands: IEEE float32 (Triton's default would be tf32), as the XLA reference.
    return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == _F32 else None


def silu(x):
    return x / (1.0 + jnp.exp(-x))


def log_sigmoid(x):
    return jnp.minimum(x, 0.0) - jnp.log(1.0 + jnp.exp(-jnp.abs(x)))


def swiglu_paired(z, tile, dtype):
    """silu(a) * b from z [R, 2 * tile] = [a | b] (W_in's paired rows, biased, float32),
    a and b rounded to the compute dtype as XLA's; the split by a [R, 2, tile] reshape."""
    R = z.shape[0]
    z = z.reshape(R, 2, tile)
    half = jax.lax.broadcasted_iota(jnp.int32, (R, 2, tile), 1)
    a = round_dtype(jnp.sum(jnp.where(half == 0, z, 0.0), axis=1), dtype)
    val = round_dtype(jnp.sum(jnp.where(half == 1, z, 0.0), axis=1), dtype)
    return (silu(a) * val).astype(dtype)


def whole(shape):
    return pl.BlockSpec(shape, lambda *_: (0,) * len(shape))
