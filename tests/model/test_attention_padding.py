"""The cuDNN path of the transformer baseline pads T to a multiple of 64; the padding must be inert.

cuDNN itself needs a GPU, so here the attention call is replaced by the XLA one (which accepts
any length) while the block takes the cuDNN branch: the output must equal the unpadded one."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from small_e_jax.model import lclm


def test_cudnn_branch_padding_is_inert(monkeypatch):
    attention = lclm.CausalSelfAttention(32, 4, dtype=jnp.float32, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 37, 32))  # 37: neither even nor a multiple of 64
    expected, _ = attention(x)

    seen = []
    real = jax.nn.dot_product_attention

    def fake_cudnn(q, k, v, *, implementation=None, **kw):
        assert implementation == "cudnn"
        seen.append(q.shape[1])
        return real(q, k, v, **kw)

    monkeypatch.setattr(lclm, "attention_implementation", lambda dtype, head_dim: "cudnn")
    monkeypatch.setattr(jax.nn, "dot_product_attention", fake_cudnn)
    got, _ = attention(x)
    assert seen == [64]
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-5)
    assert got.shape == x.shape


def test_attention_implementation_is_xla_on_cpu():
    assert lclm.attention_implementation(jnp.bfloat16, 64) is None  # this test machine has no GPU
