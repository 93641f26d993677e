"""Cross-attention from the audio stream to the text memory: PACA and the plain ablation.

Chosen by ``model.cross_attention``; inserted once, between the audio encoder and decoder
blocks, as ``h = h + CrossAttention(h, text)`` (docs/model.md §2). Neither has an output projection.

**PACA** (position-aware cross-attention, the authors' ``BlindCrossAttention``, docs/model.md §3). With
audio hidden h [N, d], text memory m [J, d_c] and a fixed sinusoidal code P [J, d_b]::

    Q = LN_q(h W_q + b_q);  Kt = LN_k(m W_k + b_k);  Vt = LN_v(m W_v + b_v)      (all width d)
    rotary (``model.paca_rotary``, Small-E era): first d/2 channels of Q at audio index n
                                                  and of Kt at text index j
    A1 = softmax(Q Ktᵀ / √d)       "where am I in the text", one head
    E  = A1 P                        [N, d_b] soft position
    E' = PosNet(E)                   one causal GLA mixing block of width d_b (recurrent)
    A2 = softmax(E' Pᵀ / √d_b)     the keys are the positions only: monotonic bias
    out = A2 Vt                      [N, d]

Dropout (``model.attention_dropout``) acts on A1 and A2 in training; the returned maps are
taken before dropout. Text padding is masked out of both softmaxes (docs/model.md §8); with
``model.compat_unmasked_text`` the padded text keys are attended, as in the authors' code.
Padded audio positions are not masked (they are causal tail positions, and the loss drops them).

**Plain** (``CrossAttention``, the ablation): the same LayerNormed q/k/v projections (with bias),
``model.cross_attention_heads`` heads, rotary on the first half of each head's channels (queries
at their audio index, keys at their text index, as in PACA's first attention), dropout on the
probabilities, no PosNet, no output projection.

Interface of both:

* ``memory(text [B, J, d_c], text_mask [B, J]) -> dict`` — the per-utterance precomputation
  (keys with rotary, values, P, mask); reused by every decode step.
* ``__call__(h [B, N, d], memory) -> (out [B, N, d], attention [B, 2 or H, N, J])`` —
  PACA's maps are ``[A1, A2]`` stacked as two "heads".
* ``init_state(batch)``, ``step(h [B, d], memory, state, position) -> (out [B, d], state,
  attention [B, 2 or H, J])`` — one audio step (PACA carries the PosNet's GLA state).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from kernels.gla.block_step import pad_rows, padded_rows
from small_e_jax.config import ModelConfig
from small_e_jax.model.layers import LayerNorm, apply_rotary, dense, masked_softmax, sinusoids
from small_e_jax.model.lclm import make_block

Memory = dict[str, Any]


class _Projections(nnx.Module):
    """LN(h W_q + b_q), LN(m W_k + b_k), LN(m W_v + b_v); every output of width d."""

    def __init__(self, d: int, d_context: int, *, dtype: jnp.dtype, param_dtype: jnp.dtype, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.q_proj = dense(d, d, axes=("embed", "kv"), **kw)
        self.k_proj = dense(d_context, d, axes=("embed", "kv"), **kw)
        self.v_proj = dense(d_context, d, axes=("embed", "kv"), **kw)
        self.q_norm = LayerNorm(d, axis_name="kv", **kw)
        self.k_norm = LayerNorm(d, axis_name="kv", **kw)
        self.v_norm = LayerNorm(d, axis_name="kv", **kw)

    def query(self, h: jax.Array) -> jax.Array:
        return self.q_norm(self.q_proj(h))

    def key_value(self, m: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.k_norm(self.k_proj(m)), self.v_norm(self.v_proj(m))


def _key_mask(text_mask: jax.Array, unmasked: bool) -> Optional[jax.Array]:
    """[B, J] bool -> [B, 1, J] (broadcast over queries) or None in compat mode."""
    return None if unmasked else text_mask.astype(bool)[:, None, :]


class PACA(nnx.Module):
    """Position-aware cross-attention (docs/model.md §3). h [B, N, d], text [B, J, d_c] -> [B, N, d]."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        d, d_b = config.d_model, config.d_blind
        self.d, self.d_blind = d, d_b
        self.dtype = jnp.dtype(config.dtype)
        self.rotary = config.paca_rotary
        self.unmasked = config.compat_unmasked_text
        self.proj = _Projections(d, config.d_context, dtype=self.dtype,
                                 param_dtype=jnp.dtype(config.param_dtype), rngs=rngs)
        heads = config.pos_net_heads if config.pos_net_heads is not None else config.heads
        self.pos_net = make_block("gla", d_b, heads, config, rngs)  # PosNet: always a GLA block
        self.dropout = nnx.Dropout(config.attention_dropout, rngs=rngs)

    def memory(self, text: jax.Array, text_mask: jax.Array) -> Memory:
        """text [B, J, d_c] -> {"k" [B, J, d] (rotary applied), "v" [B, J, d], "pos" [J, d_b], "mask"}."""
        k, v = self.proj.key_value(text)
        if self.rotary:
            k = apply_rotary(k[:, :, None], jnp.arange(k.shape[1]), self.d // 2)[:, :, 0]
        return {"k": k, "v": v, "pos": sinusoids(text.shape[1], self.d_blind).astype(self.dtype),
                "mask": _key_mask(text_mask, self.unmasked)}

    def _first(self, h: jax.Array, memory: Memory, positions: jax.Array) -> tuple[jax.Array, jax.Array]:
        """h [B, N, d] at audio ``positions`` [N] -> (A1 [B, N, J] fp32, E [B, N, d_b])."""
        q = self.proj.query(h)
        if self.rotary:
            q = apply_rotary(q[:, :, None], positions, self.d // 2)[:, :, 0]
        logits = jnp.einsum("bnd,bjd->bnj", q, memory["k"], preferred_element_type=jnp.float32)
        logits = logits / math.sqrt(self.d)
        a1 = masked_softmax(logits, memory["mask"])
        e = jnp.einsum("bnj,jp->bnp", self.dropout(a1).astype(self.dtype), memory["pos"])
        return a1, e

    def _second(self, e: jax.Array, memory: Memory) -> tuple[jax.Array, jax.Array]:
        """E' [B, N, d_b] -> (A2 [B, N, J] fp32, out [B, N, d])."""
        logits = jnp.einsum("bnp,jp->bnj", e, memory["pos"], preferred_element_type=jnp.float32)
        logits = logits / math.sqrt(self.d_blind)
        a2 = masked_softmax(logits, memory["mask"])
        out = jnp.einsum("bnj,bjd->bnd", self.dropout(a2).astype(self.dtype), memory["v"])
        return a2, out

    def __call__(self, h: jax.Array, memory: Memory) -> tuple[jax.Array, jax.Array]:
        """h [B, N, d] -> (out [B, N, d], attention [B, 2, N, J] = [A1, A2])."""
        a1, e = self._first(h, memory, jnp.arange(h.shape[1]))
        e, _ = self.pos_net(e)
        a2, out = self._second(e, memory)
        return out, jnp.stack([a1, a2], axis=1)

    def init_state(self, batch: int) -> jax.Array:
        """The PosNet's GLA state [B, H, K, V] fp32 (zeros)."""
        return self.pos_net.init_state(batch)

    def step(self, h: jax.Array, memory: Memory, state: jax.Array, position: jax.Array,
             pos_net_weights: Optional[dict[str, jax.Array]] = None
             ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """h [B, d] at audio ``position`` -> (out [B, d], state, attention [B, 2, J]).
        ``pos_net_weights``: the PosNet's fused decode weights (``LCLMBlock.fused_weights``)."""
        a1, e = self._first(h[:, None], memory, jnp.reshape(position, (1,)))
        if pos_net_weights is None:
            e, state = self.pos_net.step(e[:, 0], state, position)
        else:
            B = e.shape[0]
            rows = padded_rows(B, self.pos_net.fused_dims().small_rows)
            e, state = self.pos_net.step(pad_rows(e[:, 0], rows), state, position,
                                         weights=pos_net_weights)
            e = e[:B]
        a2, out = self._second(e[:, None], memory)
        return out[:, 0], state, jnp.stack([a1[:, 0], a2[:, 0]], axis=1)


class CrossAttention(nnx.Module):
    """Plain multi-head cross-attention (the ablation). h [B, N, d], text [B, J, d_c] -> [B, N, d]."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.d, self.heads = config.d_model, config.cross_attention_heads
        self.head_dim = self.d // self.heads
        self.dtype = jnp.dtype(config.dtype)
        self.unmasked = config.compat_unmasked_text
        self.proj = _Projections(self.d, config.d_context, dtype=self.dtype,
                                 param_dtype=jnp.dtype(config.param_dtype), rngs=rngs)
        self.dropout = nnx.Dropout(config.attention_dropout, rngs=rngs)

    def _split(self, x: jax.Array) -> jax.Array:
        return x.reshape(*x.shape[:2], self.heads, self.head_dim)

    def memory(self, text: jax.Array, text_mask: jax.Array) -> Memory:
        """text [B, J, d_c] -> {"k" [B, J, H, d/H] (rotary applied), "v" [B, J, H, d/H], "mask"}."""
        k, v = self.proj.key_value(text)
        k = apply_rotary(self._split(k), jnp.arange(k.shape[1]), self.head_dim // 2)
        mask = _key_mask(text_mask, self.unmasked)
        return {"k": k, "v": self._split(v), "mask": None if mask is None else mask[:, None]}

    def _attend(self, h: jax.Array, memory: Memory, positions: jax.Array) -> tuple[jax.Array, jax.Array]:
        """h [B, N, d] -> (out [B, N, d], attention [B, H, N, J] fp32)."""
        q = apply_rotary(self._split(self.proj.query(h)), positions, self.head_dim // 2)
        logits = jnp.einsum("bnhc,bjhc->bhnj", q, memory["k"], preferred_element_type=jnp.float32)
        logits = logits / math.sqrt(self.head_dim)
        probs = masked_softmax(logits, memory["mask"])
        out = jnp.einsum("bhnj,bjhc->bnhc", self.dropout(probs).astype(self.dtype), memory["v"])
        return out.reshape(*h.shape[:2], self.d), probs

    def __call__(self, h: jax.Array, memory: Memory) -> tuple[jax.Array, jax.Array]:
        return self._attend(h, memory, jnp.arange(h.shape[1]))

    def init_state(self, batch: int) -> None:
        del batch
        return None

    def step(self, h: jax.Array, memory: Memory, state: None, position: jax.Array,
             pos_net_weights: None = None) -> tuple[jax.Array, None, jax.Array]:
        """h [B, d] -> (out [B, d], None, attention [B, H, J]). (No PosNet: no fused weights.)"""
        out, probs = self._attend(h[:, None], memory, jnp.reshape(position, (1,)))
        return out[:, 0], state, probs[:, :, 0]


def make_cross_attention(config: ModelConfig, rngs: nnx.Rngs) -> nnx.Module:
    if config.cross_attention == "paca":
        return PACA(config, rngs=rngs)
    if config.cross_attention == "plain":
        return CrossAttention(config, rngs=rngs)
    raise ValueError(f"unknown model.cross_attention {config.cross_attention!r}; valid: 'paca', 'plain'")
