"""Classifier-free guidance: the null text, and text dropout for training.

Training (``trainer.cfg_text_dropout = p``): each row of a batch has its text replaced, with
probability p, by the *null text* ``[BOS, EOS]`` (the tokenizer's encoding of an empty string)
with the rest of the row masked out. The audio target is unchanged, so the model also learns
p(audio | nothing to say about the text) — the unconditional model. Choice: a real (empty)
text rather than a zero-length one, because the text encoder and the cross-attention need at
least one valid key per row (a fully masked softmax is undefined), and [BOS, EOS] is exactly
what an empty transcript would look like.

Inference (:mod:`small_e_jax.decoding`): the unconditional stream decodes with the null text;
logits = uncond + s * (cond - uncond).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from small_e_jax.text.tokenizer import BOS_ID, EOS_ID


def null_text(batch: int, length: int) -> tuple[jax.Array, jax.Array]:
    """``[BOS, EOS]`` padded to ``length``: tokens [B, length] int32 and mask [B, length] bool."""
    if length < 2:
        raise ValueError(f"the null text needs a text length of at least 2, got {length}")
    row = jnp.zeros((length,), jnp.int32).at[0].set(BOS_ID).at[1].set(EOS_ID)
    return jnp.broadcast_to(row, (batch, length)), jnp.broadcast_to(jnp.arange(length) < 2, (batch, length))


def drop_text(text: jax.Array, text_mask: jax.Array, key: jax.Array, p: float
              ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Replace each row of text [B, J] (and its mask) by the null text with probability p.
    Returns (text, text_mask, dropped [B] bool)."""
    B, J = text.shape
    dropped = jax.random.bernoulli(key, p, (B,))
    null, null_mask = null_text(B, J)
    text = jnp.where(dropped[:, None], null, text).astype(text.dtype)
    text_mask = jnp.where(dropped[:, None], null_mask, text_mask.astype(bool)).astype(text_mask.dtype)
    return text, text_mask, dropped
