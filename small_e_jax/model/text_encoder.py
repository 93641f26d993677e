"""Text encoder (docs/model.md §2): token embedding + non-causal pre-norm transformer blocks.

Per block: ``x = x + SelfAttention(LN1(x)); x = x + SwiGLU(LN2(x)); x = Dropout(x)``, where the
self-attention is the authors' one: a single fused ``qkv`` Linear (d_c -> 3 d_c, bias), **no output
projection**, softmax scale 1/√(d_c/H), rotary (θ = 10000, interleaved pairs) on the first half
of each head's channels, through ``jax.nn.dot_product_attention``.

Embedding: ``Embed(text_vocab_size, d_c)`` ~ N(0, 1); the PAD (id 0) row contributes zero, as
PyTorch's ``padding_idx`` does (its row is zero and never trained). Padded keys are masked out
(docs/model.md §8) unless ``model.compat_unmasked_text``. No final norm (the authors have none).
Dropout (``model.text_dropout``) acts on the stream after each block only, not on attention
probabilities (docs/model.md §2, §6).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
from flax import nnx

from small_e_jax.config import ModelConfig
from small_e_jax.model.layers import LayerNorm, SwiGLU, apply_rotary, dense, normal_init, partitioned

TEXT_PAD = 0


class TextSelfAttention(nnx.Module):
    """Non-causal multi-head self-attention. x [B, J, c], key mask [B, J] or None -> [B, J, c]."""

    def __init__(self, d: int, heads: int, *, dtype: jnp.dtype, param_dtype: jnp.dtype, rngs: nnx.Rngs):
        self.heads, self.head_dim = heads, d // heads
        self.qkv = dense(d, 3 * d, axes=("embed", "heads"), rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def __call__(self, x: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
        B, J, d = x.shape
        qkv = self.qkv(x).reshape(B, J, 3, self.heads, self.head_dim)
        positions = jnp.arange(J)
        rot = self.head_dim // 2
        q = apply_rotary(qkv[:, :, 0], positions, rot)
        k = apply_rotary(qkv[:, :, 1], positions, rot)
        key_mask = None if mask is None else mask[:, None, None, :]  # [B, 1, 1, J]
        o = jax.nn.dot_product_attention(q, k, qkv[:, :, 2], mask=key_mask, scale=self.head_dim**-0.5)
        return o.reshape(B, J, d)


class TextBlock(nnx.Module):
    """Pre-norm residual block: self-attention + SwiGLU, dropout on the stream."""

    def __init__(self, d: int, heads: int, *, dropout: float, remat: bool, dtype: jnp.dtype,
                 param_dtype: jnp.dtype, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.norm1 = LayerNorm(d, **kw)
        self.attn = TextSelfAttention(d, heads, **kw)
        self.norm2 = LayerNorm(d, **kw)
        self.mlp = SwiGLU(d, **kw)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.remat = remat

    def _forward(self, x: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
        x = x + self.attn(self.norm1(x), mask)
        x = x + self.mlp(self.norm2(x))
        return self.dropout(x)

    def __call__(self, x: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
        if self.remat:
            return nnx.remat(TextBlock._forward)(self, x, mask)
        return self._forward(x, mask)


class TextEncoder(nnx.Module):
    """tokens [B, J] int, mask [B, J] bool (True = real token) -> memory [B, J, d_c]."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        d, dtype = config.d_context, jnp.dtype(config.dtype)
        param_dtype = jnp.dtype(config.param_dtype)
        self.dtype = dtype
        self.unmasked = config.compat_unmasked_text
        self.embed = nnx.Embed(
            config.text_vocab_size, d, dtype=dtype, param_dtype=param_dtype,
            embedding_init=partitioned(normal_init(1.0), ("vocab", "embed")), rngs=rngs)
        self.blocks = nnx.List([
            TextBlock(d, config.text_heads, dropout=config.text_dropout, remat=config.remat,
                      dtype=dtype, param_dtype=param_dtype, rngs=rngs)
            for _ in range(config.text_layers)])

    def __call__(self, tokens: jax.Array, mask: jax.Array) -> jax.Array:
        x = self.embed(tokens) * (tokens != TEXT_PAD)[..., None].astype(self.dtype)
        key_mask = None if self.unmasked else mask.astype(bool)
        for block in self.blocks:
            x = block(x, key_mask)
        return x
