"""The DAC's convolution as a matmul over shifted views (``conv1d(impl="matmul")``, the default)
against ``lax.conv_general_dilated`` (``impl="xla"``): values and gradients, fp32 and bf16."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from small_e_jax.codec.layers import conv1d

HIGHEST = jax.lax.Precision.HIGHEST
# (L, C_in, C_out, K, stride, dilation, padding): the shapes of the DAC's convolutions —
# residual units (K 7, dilation 1/3/9), strided encoder blocks (K = 2 stride), 1x1, C_in = 1
# input and C_out = 1 output convs, an odd length with a stride that does not divide it.
CASES = [(100, 3, 5, 7, 1, 1, 3), (100, 4, 6, 7, 1, 9, 27), (101, 4, 8, 8, 4, 1, 2), (50, 16, 1, 7, 1, 1, 3),
         (30, 2, 3, 1, 1, 1, 0), (64, 1, 16, 7, 1, 1, 3), (40, 3, 3, 10, 5, 1, 3)]


FP32, BF16 = (jnp.float32, 2e-5), (jnp.bfloat16, 3e-2)  # tolerances relative to the largest value


@pytest.mark.parametrize("L,c_in,c_out,K,stride,dilation,padding,dtype,tol",
                         [(*c, *FP32) for c in CASES] + [(*c, *BF16) for c in CASES[1:3]])
def test_matmul_conv_matches_lax_conv(L, c_in, c_out, K, stride, dilation, padding, dtype, tol):
    rng = np.random.default_rng(L + K)
    x = jnp.asarray(rng.standard_normal((2, L, c_in)), dtype)
    w = jnp.asarray(rng.standard_normal((K, c_in, c_out)) / np.sqrt(K * c_in), dtype)
    kw = dict(stride=stride, dilation=dilation, padding=padding, precision=HIGHEST)

    def loss(impl):
        return lambda x, w: jnp.sum(jnp.sin(conv1d(x, w, impl=impl, **kw).astype(jnp.float32)))

    want, got = conv1d(x, w, impl="xla", **kw), conv1d(x, w, **kw)
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = float(jnp.max(jnp.abs(want.astype(jnp.float32))))
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), atol=tol * scale, rtol=0)
    for g_got, g_want in zip(jax.grad(loss("matmul"), (0, 1))(x, w), jax.grad(loss("xla"), (0, 1))(x, w)):
        g_want = np.asarray(g_want, np.float32)
        np.testing.assert_allclose(np.asarray(g_got, np.float32), g_want,
                                   atol=tol * max(float(np.abs(g_want).max()), 1.0), rtol=0)


def test_conv1d_bad_input():
    x, w = jnp.zeros((1, 5, 2)), jnp.zeros((7, 2, 3))
    with pytest.raises(ValueError, match="shorter than the kernel's span"):
        conv1d(x, w)
    with pytest.raises(ValueError, match="impl must be one of"):
        conv1d(x, w, padding=3, impl="cudnn")
