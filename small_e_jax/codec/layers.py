"""Layers and helpers shared by the codecs (DAC in `dac.py`, EnCodec in `encodec.py`): the
matmul precisions, length masks, PyTorch's default conv init (on device and on the host), Snake,
and the channels-last 1-D convolution and transposed convolution (PyTorch semantics)."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Array = jax.Array

_PRECISIONS = {
    "highest": jax.lax.Precision.HIGHEST,
    "high": jax.lax.Precision.HIGH,
    "default": jax.lax.Precision.DEFAULT,
}


def length_mask(lengths: Array, length: int, dtype: Any) -> Array:
    """``[B] -> [B, length, 1]``: 1 where the position is inside the item's valid length."""
    return (jnp.arange(length)[None, :] < lengths[:, None]).astype(dtype)[..., None]


def _mask(x: Array, lengths: Optional[Array]) -> Array:
    return x if lengths is None else x * length_mask(lengths, x.shape[1], x.dtype)


def _uniform_init(fan_in: int):
    # PyTorch's default conv init (kaiming_uniform with a=sqrt(5)): U(-1/sqrt(fan_in), +1/sqrt(fan_in)).
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: Array, shape: Sequence[int], dtype: Any = jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _host_uniform(var: nnx.Param, rng: np.random.Generator, fan_in: int) -> None:
    bound = 1.0 / math.sqrt(fan_in)
    var.set_value(jnp.asarray(rng.uniform(-bound, bound, var.shape).astype(np.float32)))


class Snake(nnx.Module):
    """Snake activation ``x + sin(alpha x)^2 / (alpha + 1e-9)`` with a per-channel ``alpha``.

    ``[B, L, C] -> [B, L, C]``. ``snake(0) = 0``, so masking commutes with it.
    """

    def __init__(self, channels: int):
        self.alpha = nnx.Param(jnp.ones((channels,), jnp.float32))

    def host_init(self, rng: np.random.Generator) -> None:
        """Re-initialise on the host (see :func:`random_init`)."""
        self.alpha.set_value(jnp.ones(self.alpha.shape, jnp.float32))

    def __call__(self, x: Array) -> Array:
        alpha = self.alpha[...].astype(x.dtype)
        return x + jnp.reciprocal(alpha + 1e-9) * jnp.square(jnp.sin(alpha * x))


class ConvParams(nnx.Module):
    """The weights every codec convolution holds: ``kernel [K, C_in, C_out]`` and ``bias [C_out]``,
    with PyTorch's default init for a given fan-in, on device (``__init__``) or on the host
    (:meth:`host_init`)."""

    def init_params(self, kernel_size: int, in_channels: int, out_channels: int, fan_in: int,
                    rngs: nnx.Rngs) -> None:
        self.fan_in = fan_in
        init = _uniform_init(fan_in)
        self.kernel = nnx.Param(init(rngs.params(), (kernel_size, in_channels, out_channels)))
        self.bias = nnx.Param(init(rngs.params(), (out_channels,)))

    def host_init(self, rng: np.random.Generator) -> None:
        """Re-initialise on the host (see :func:`~small_e_jax.codec.dac.random_init`)."""
        _host_uniform(self.kernel, rng, self.fan_in)
        _host_uniform(self.bias, rng, self.fan_in)


class Conv1d(ConvParams):
    """1-D convolution, channels-last: ``[B, L, C_in] -> [B, L_out, C_out]``.

    ``kernel`` is ``[K, C_in, C_out]`` (PyTorch: ``[C_out, C_in, K]``), symmetric zero padding
    ``padding`` on both sides, ``L_out = (L + 2 padding - dilation (K - 1) - 1) // stride + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 dilation: int = 1, padding: int = 0, precision: str = "highest", rngs: nnx.Rngs):
        self.kernel_size, self.stride, self.dilation, self.padding = kernel_size, stride, dilation, padding
        self.precision = precision
        self.init_params(kernel_size, in_channels, out_channels, in_channels * kernel_size, rngs)

    def output_length(self, lengths: Array) -> Array:
        span = self.dilation * (self.kernel_size - 1) + 1
        return (lengths + 2 * self.padding - span) // self.stride + 1

    def __call__(self, x: Array, lengths: Optional[Array] = None) -> Array:
        """``lengths`` ([B], valid input lengths) zeroes the input past each item's end first."""
        if self.kernel_size > 1 or self.stride > 1:
            x = _mask(x, lengths)
        y = conv1d(x, self.kernel[...].astype(x.dtype), stride=self.stride, dilation=self.dilation,
                   padding=self.padding, precision=_PRECISIONS[self.precision])
        return y + self.bias[...].astype(x.dtype)


CONV_IMPLS = ("matmul", "xla")


def conv1d(x: Array, kernel: Array, *, stride: int = 1, dilation: int = 1, padding: int = 0,
           precision: Any = None, impl: str = "matmul") -> Array:
    """``x [B, L, C_in]`` conv ``kernel [K, C_in, C_out]`` -> ``[B, L_out, C_out]`` (symmetric zero
    padding, PyTorch ``Conv1d`` semantics).

    ``impl="matmul"`` (default): the K shifted (strided, dilated) views of the padded input
    side by side, ``[B, L_out, K * C_in]``, times the kernel as one ``[K * C_in, C_out]`` matmul.
    Why: on an H200, cuDNN ran this codec's narrow, dilated full-rate convolutions (16-32
    channels at 24 kHz) with an unoptimised "analytic" kernel that took 156 of the 176 ms of a
    training step (``python -m benchmarks.codec_profile_train``); as matmuls they are GEMMs of
    a well-supported shape. ``impl="xla"``: ``lax.conv_general_dilated``.
    """
    if impl == "xla":
        return jax.lax.conv_general_dilated(
            x, kernel, window_strides=(stride,), padding=[(padding, padding)], rhs_dilation=(dilation,),
            dimension_numbers=("NWC", "WIO", "NWC"), precision=precision)
    if impl != "matmul":
        raise ValueError(f"conv1d: impl must be one of {CONV_IMPLS}, got {impl!r}")
    k_size, c_in, c_out = kernel.shape
    if k_size == 1 and stride == 1 and padding == 0:
        return jnp.einsum("blc,co->blo", x, kernel[0], precision=precision)
    xp = jnp.pad(x, ((0, 0), (padding, padding), (0, 0))) if padding else x
    out_len = (xp.shape[1] - dilation * (k_size - 1) - 1) // stride + 1
    if out_len < 1:
        raise ValueError(f"conv1d: input of {x.shape[1]} samples is shorter than the kernel's span")
    span = (out_len - 1) * stride + 1
    taps = [jax.lax.slice_in_dim(xp, j * dilation, j * dilation + span, stride, axis=1) for j in range(k_size)]
    cols = jnp.concatenate(taps, axis=-1)  # [B, L_out, K * C_in], tap-major like kernel.reshape
    return jnp.einsum("blc,co->blo", cols, kernel.reshape(k_size * c_in, c_out), precision=precision)


class ConvTranspose1d(ConvParams):
    """Transposed 1-D convolution (PyTorch semantics), channels-last.

    ``[B, L, C_in] -> [B, (L - 1) stride + K - 2 padding, C_out]``. ``kernel`` is
    ``[K, C_in, C_out]`` (PyTorch ``ConvTranspose1d``: ``[C_in, C_out, K]``). Computed in
    polyphase form — one matmul at the *input* rate followed by an overlap-add — instead of
    convolving a zero-stuffed input, which would spend ``stride`` times the FLOPs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, precision: str = "highest", rngs: nnx.Rngs):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.precision = precision
        self.init_params(kernel_size, in_channels, out_channels, out_channels * kernel_size, rngs)

    def output_length(self, lengths: Array) -> Array:
        return (lengths - 1) * self.stride + self.kernel_size - 2 * self.padding

    def __call__(self, x: Array, lengths: Optional[Array] = None) -> Array:
        """``lengths`` ([B], valid input lengths) zeroes the input past each item's end first."""
        x = _mask(x, lengths)
        b, n, _ = x.shape
        k, s, p = self.kernel_size, self.stride, self.padding
        groups = -(-k // s)  # taps per output phase
        kernel = self.kernel[...].astype(x.dtype)
        if groups * s != k:
            kernel = jnp.pad(kernel, ((0, groups * s - k), (0, 0), (0, 0)))
        c_out = kernel.shape[-1]
        # y[b, n, g, r, :] is what input frame n adds to output sample (n + g) * s + r.
        y = jnp.einsum("bnc,kco->bnko", x, kernel, precision=_PRECISIONS[self.precision])
        y = y.reshape(b, n, groups, s, c_out)
        full = sum(jnp.pad(y[:, :, g], ((0, 0), (g, groups - 1 - g), (0, 0), (0, 0)))
                   for g in range(groups))  # [B, n + groups - 1, s, C_out]
        full = full.reshape(b, (n + groups - 1) * s, c_out)
        out_len = (n - 1) * s + k - 2 * p
        return full[:, p:p + out_len] + self.bias[...].astype(x.dtype)
