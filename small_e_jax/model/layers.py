"""Small pieces shared by the model's modules: initialisers, Linear/LayerNorm with logical axis
names, SwiGLU, rotary embeddings, sinusoidal position codes, masked softmax.

Numerics: parameters are stored in ``param_dtype`` (fp32); matmuls run in the compute dtype
(``model.dtype``); normalisations, softmaxes and rotary angles are computed in fp32 and cast back.

Logical axis names (mapped to the mesh by ``MeshConfig.logical_axis_rules``): ``embed`` (model
width), ``heads`` (attention/GLA heads, flattened with their channels), ``mlp`` (SwiGLU hidden),
``vocab`` (token tables), ``kv`` (per-head channels, never sharded), ``None`` (replicated).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

Axes = tuple[Optional[str], ...]
Initializer = Callable[..., jax.Array]

LN_EPS = 1e-5  # LayerNorm and RMSNorm epsilon (docs/model.md §2)
ROTARY_THETA = 10_000.0
NEG_INF = -1e30  # masked attention logit (fp32)


# --------------------------------------------------------------------------- initialisers


def uniform_init(bound: float) -> Initializer:
    """U(-bound, bound)."""

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def xavier_uniform(gain: float) -> Initializer:
    """Xavier/Glorot uniform with a gain: U(±gain·√(6 / (fan_in + fan_out)))."""
    return nnx.initializers.variance_scaling(gain**2, "fan_avg", "uniform")


def normal_init(stddev: float) -> Initializer:
    return nnx.initializers.normal(stddev)


# --------------------------------------------------------------------------- layers


def partitioned(init: Initializer, axes: Axes) -> Initializer:
    """``init`` whose variable carries logical axis names (``out_sharding`` metadata).

    Eager sharding is off so that the model can be built without a mesh (tests, CPU); the
    sharding module places parameters from this metadata (``nnx.get_partition_spec`` under the
    config's logical axis rules).
    """
    return nnx.with_partitioning(init, axes, eager_sharding=False)


def param(value: jax.Array, axes: Axes) -> nnx.Param:
    """An ``nnx.Param`` with logical axis names (see :func:`partitioned`)."""
    return nnx.Param(value, out_sharding=axes, eager_sharding=False)


def dense(
    in_features: int,
    out_features: int,
    *,
    axes: tuple[Optional[str], Optional[str]],
    rngs: nnx.Rngs,
    dtype: jnp.dtype,
    param_dtype: jnp.dtype,
    use_bias: bool = True,
    kernel_init: Optional[Initializer] = None,
    bias_init: Optional[Initializer] = None,
) -> nnx.Linear:
    """``nnx.Linear`` with logical axis names on kernel ``[in, out]`` and bias ``[out]``.

    Default init is PyTorch's ``nn.Linear`` (the authors' default): kernel and bias
    U(±1/√in_features).
    """
    bound = 1.0 / math.sqrt(in_features)
    kernel_init = kernel_init or uniform_init(bound)
    bias_init = bias_init or uniform_init(bound)
    return nnx.Linear(
        in_features,
        out_features,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_init=partitioned(kernel_init, axes),
        bias_init=partitioned(bias_init, (axes[1],)),
        rngs=rngs,
    )


class LayerNorm(nnx.Module):
    """LayerNorm with affine parameters (eps 1e-5), computed in fp32, output in ``dtype``."""

    def __init__(self, features: int, *, dtype: jnp.dtype, param_dtype: jnp.dtype, rngs: nnx.Rngs,
                 axis_name: Optional[str] = "embed"):
        self.dtype = dtype
        self.norm = nnx.LayerNorm(
            features,
            epsilon=LN_EPS,
            dtype=jnp.float32,
            param_dtype=param_dtype,
            scale_init=partitioned(nnx.initializers.ones_init(), (axis_name,)),
            bias_init=partitioned(nnx.initializers.zeros_init(), (axis_name,)),
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.norm(x.astype(jnp.float32)).astype(self.dtype)


class SwiGLU(nnx.Module):
    """SwiGLU MLP (docs/model.md §2): f = ⌊4d/3⌋, ``[a, b] = x W_in + b_in``, ``(silu(a) ⊙ b) W_out + b_out``.

    x: [..., d] -> [..., d]. Biases on, PyTorch default init.
    """

    def __init__(self, d: int, *, dtype: jnp.dtype, param_dtype: jnp.dtype, rngs: nnx.Rngs):
        self.hidden = 4 * d // 3
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.w_in = dense(d, 2 * self.hidden, axes=("embed", "mlp"), **kw)
        self.w_out = dense(self.hidden, d, axes=("mlp", "embed"), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        gate, value = jnp.split(self.w_in(x), 2, axis=-1)  # first half is the gate
        return self.w_out(jax.nn.silu(gate) * value)


# --------------------------------------------------------------------------- positions


def apply_rotary(x: jax.Array, positions: jax.Array, rot_dim: int,
                 theta: float = ROTARY_THETA) -> jax.Array:
    """Rotary embedding on the first ``rot_dim`` channels, in interleaved (even, odd) pairs.

    Matches ``rotary_embedding_torch.RotaryEmbedding(dim=rot_dim)`` (docs/model.md §2): pair i of the
    rotated channels turns by ``position · theta^(-2i/rot_dim)``; the other channels pass through.

    Args:
      x: [B, T, H, D] (any float dtype).
      positions: [T] or [B, T] integer or float positions.
      rot_dim: even number of rotated channels, <= D.
    Returns:
      [B, T, H, D] in x.dtype.
    """
    if rot_dim == 0:
        return x
    inv_freq = theta ** (-jnp.arange(0, rot_dim, 2, dtype=jnp.float32) / rot_dim)  # [rot/2]
    angles = jnp.asarray(positions, jnp.float32)[..., None] * inv_freq  # [(B,) T, rot/2]
    if angles.ndim == 2:
        angles = angles[None]
    cos, sin = jnp.cos(angles)[:, :, None, :], jnp.sin(angles)[:, :, None, :]  # [B|1, T, 1, rot/2]
    rot = x[..., :rot_dim].astype(jnp.float32)
    even, odd = rot[..., 0::2], rot[..., 1::2]
    rotated = jnp.stack([even * cos - odd * sin, odd * cos + even * sin], axis=-1)
    rotated = rotated.reshape(*rot.shape).astype(x.dtype)
    return jnp.concatenate([rotated, x[..., rot_dim:]], axis=-1)


def sinusoids(length: int, dim: int) -> jax.Array:
    """Fixed position code P (docs/model.md §3): [length, dim] fp32, ``[sin(j ω_i), cos(j ω_i)]``
    concatenated (not interleaved), ω_i = 10000^(−2i/dim), i < dim/2."""
    omega = ROTARY_THETA ** (-2.0 * jnp.arange(dim // 2, dtype=jnp.float32) / dim)
    angles = jnp.arange(length, dtype=jnp.float32)[:, None] * omega
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


# --------------------------------------------------------------------------- attention helpers


def masked_softmax(logits: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
    """Softmax over the last axis in fp32; ``mask`` (broadcastable, True = keep) or None."""
    logits = logits.astype(jnp.float32)
    if mask is not None:
        logits = jnp.where(mask, logits, NEG_INF)
    return jax.nn.softmax(logits, axis=-1)
