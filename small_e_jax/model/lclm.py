"""Audio-side decoder blocks behind one interface, chosen by ``model.block`` (docs/model.md §2, §4).

Every block is a pre-norm residual *mixing block* (docs/model.md §2)::

    x = x + Mix(LN1(x));  x = x + SwiGLU(LN2(x));  x = Dropout(x)

with ``Mix`` one of

* ``gla`` (default) — :class:`GatedLinearAttention`, FLA's ``GatedLinearAttention`` as the
  authors used it: q/k (width d·expand_k), v/g (width d·expand_v), H heads, a low-rank forget
  gate ``logsigmoid(x W_1 W_2 + b_2) / gate_logit_normalizer`` per key channel, output
  ``W_o [RMSNorm_V(o) ⊙ w ⊙ silu(g)]``; no short convolution. Xavier-uniform (gain 2^-2.5)
  weights, zero biases.
* ``simple_gla`` — the same layer with one scalar gate per head,
  ``logsigmoid(x W_gk + b) / gate_logit_normalizer`` (W_gk: d×H). Choice: it keeps the config's
  ``expand_k`` / ``expand_v`` (Lina's simple GLA used 1 / 1; set them in the config for that).
* ``transformer`` — :class:`CausalSelfAttention`, the baseline: fused qkv Linear with bias, no
  output projection, rotary on the first half of each head's channels, softmax scale
  1/√(d/H), through ``jax.nn.dot_product_attention`` (cuDNN flash attention on GPU). The
  paper's 86M baseline is not public (docs/model.md §4, §5); this is the authors' Lina transformer block.

Interface of every block (and mixer):

* ``__call__(x [B, T, d], initial_state=None) -> (y [B, T, d], final_state)`` — teacher-forced;
  GLA returns its final recurrent state ``[B, H, K, V]`` (fp32), the transformer ``None``.
* ``init_state(batch, max_len) -> state`` — zero decode state (GLA: ``[B, H, K, V]`` fp32;
  transformer: a ``{"k", "v"}`` cache ``[B, max_len, H, d/H]``).
* ``step(x [B, d], state, position) -> (y [B, d], state)`` — one token; equals ``__call__`` at
  that position.

GLA runs through ``kernels.gla.gla`` (training) and ``kernels.gla.gla_step`` (decoding); gates
and states are fp32.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from kernels.gla import gla, gla_step
from kernels.gla import block_step
from small_e_jax.config import ModelConfig
from small_e_jax.model.layers import LN_EPS, LayerNorm, SwiGLU, apply_rotary, dense, param, xavier_uniform

GLA_INIT_GAIN = 2.0**-2.5  # FLA's GLA init


class GatedLinearAttention(nnx.Module):
    """Multi-head gated linear attention (docs/model.md §2). x: [B, T, d] -> [B, T, d]."""

    def __init__(
        self,
        d: int,
        heads: int,
        *,
        expand_k: float,
        expand_v: float,
        gate_low_rank: int,
        gate_logit_normalizer: float,
        scalar_gate: bool = False,
        backend: str = "auto",
        chunk_size: int = 64,
        dtype: jnp.dtype = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.heads = heads
        self.key_dim, self.value_dim = int(d * expand_k), int(d * expand_v)
        self.head_k, self.head_v = self.key_dim // heads, self.value_dim // heads
        self.scalar_gate = scalar_gate
        self.gate_logit_normalizer = float(gate_logit_normalizer)
        self.backend, self.chunk_size = backend, chunk_size
        self.dtype = dtype
        init = dict(kernel_init=xavier_uniform(GLA_INIT_GAIN), bias_init=nnx.initializers.zeros_init(),
                    rngs=rngs, param_dtype=param_dtype)
        self.q_proj = dense(d, self.key_dim, axes=("embed", "heads"), use_bias=False, dtype=dtype, **init)
        self.k_proj = dense(d, self.key_dim, axes=("embed", "heads"), use_bias=False, dtype=dtype, **init)
        self.v_proj = dense(d, self.value_dim, axes=("embed", "heads"), use_bias=False, dtype=dtype, **init)
        self.g_proj = dense(d, self.value_dim, axes=("embed", "heads"), use_bias=False, dtype=dtype, **init)
        self.o_proj = dense(self.value_dim, d, axes=("heads", "embed"), use_bias=False, dtype=dtype, **init)
        # The forget gate is computed in fp32: its log is accumulated over thousands of steps.
        if scalar_gate:
            self.gate = dense(d, heads, axes=("embed", "heads"), dtype=jnp.float32, **init)
        else:
            self.gate_down = dense(d, gate_low_rank, axes=("embed", None), use_bias=False,
                                   dtype=jnp.float32, **init)
            self.gate_up = dense(gate_low_rank, self.key_dim, axes=(None, "heads"), dtype=jnp.float32, **init)
        # RMSNorm weight over a head's V channels, shared by the heads.
        self.norm_weight = param(jnp.ones((self.head_v,), param_dtype), ("kv",))

    def _inputs(self, x: jax.Array):
        """x [..., d] -> q, k [..., H, K]; v, g [..., H, V]; log_g [..., H, K] or [..., H] (fp32)."""
        lead = x.shape[:-1]
        x = x.astype(self.dtype)
        q = self.q_proj(x).reshape(*lead, self.heads, self.head_k)
        k = self.k_proj(x).reshape(*lead, self.heads, self.head_k)
        v = self.v_proj(x).reshape(*lead, self.heads, self.head_v)
        g = self.g_proj(x).reshape(*lead, self.heads, self.head_v)
        xf = x.astype(jnp.float32)
        if self.scalar_gate:
            logits = self.gate(xf)
        else:
            logits = self.gate_up(self.gate_down(xf)).reshape(*lead, self.heads, self.head_k)
        log_g = jax.nn.log_sigmoid(logits) / self.gate_logit_normalizer
        return q, k, v, g, log_g

    def _output(self, o: jax.Array, g: jax.Array) -> jax.Array:
        """o, g [..., H, V] -> W_o [RMSNorm(o) ⊙ w ⊙ silu(g)]  [..., d]."""
        of = o.astype(jnp.float32)
        of = of * jax.lax.rsqrt(jnp.mean(of * of, axis=-1, keepdims=True) + LN_EPS)
        y = of * self.norm_weight[...].astype(jnp.float32) * jax.nn.silu(g.astype(jnp.float32))
        return self.o_proj(y.astype(self.dtype).reshape(*o.shape[:-2], self.value_dim))

    def __call__(self, x: jax.Array, initial_state: Optional[jax.Array] = None
                 ) -> tuple[jax.Array, jax.Array]:
        """x [B, T, d], initial_state [B or 1, H, K, V] or None -> (y [B, T, d], state [B, H, K, V])."""
        q, k, v, g, log_g = self._inputs(x)
        if initial_state is not None:
            initial_state = jnp.broadcast_to(initial_state, (x.shape[0], *initial_state.shape[1:]))
        o, state = gla(q, k, v, log_g, scale=self.head_k**-0.5, initial_state=initial_state,
                       backend=self.backend, chunk_size=self.chunk_size)
        return self._output(o, g), state

    def init_state(self, batch: int, max_len: Optional[int] = None) -> jax.Array:
        del max_len  # constant-size state
        return jnp.zeros((batch, self.heads, self.head_k, self.head_v), jnp.float32)

    def step(self, x: jax.Array, state: jax.Array, position: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [B, d], state [B, H, K, V] -> (y [B, d], state)."""
        del position
        q, k, v, g, log_g = self._inputs(x)
        o, state = gla_step(q, k, v, log_g, state, scale=self.head_k**-0.5)
        return self._output(o, g), state


CUDNN_LENGTH_MULTIPLE = 64  # sequences are padded to this for cuDNN attention (its tile size)


def attention_implementation(dtype: Any, head_dim: int) -> Optional[str]:
    """``"cudnn"`` (flash attention) where it applies, else None (XLA).

    ``jax.nn.dot_product_attention(implementation=None)`` means plain XLA today, which
    materialises the [B, H, T, T] scores (measured on an H200 at 8 x 4096 frames: 99 GB peak and
    85.7K frames/s against the GLA model's 221K), so the cuDNN kernel is asked for explicitly on GPU
    for 16-bit inputs and head dims it supports (multiples of 8 up to 128).
    """
    if (jax.default_backend() == "gpu" and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16)
            and head_dim % 8 == 0 and head_dim <= 128):
        return "cudnn"
    return None


class CausalSelfAttention(nnx.Module):
    """Causal multi-head self-attention, the transformer baseline's mixer. x: [B, T, d]."""

    def __init__(self, d: int, heads: int, *, dtype: jnp.dtype, param_dtype: jnp.dtype, rngs: nnx.Rngs):
        self.heads, self.head_dim = heads, d // heads
        self.dtype = dtype
        self.qkv = dense(d, 3 * d, axes=("embed", "heads"), rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def _qkv(self, x: jax.Array, positions: jax.Array):
        """x [B, T, d] -> q, k, v [B, T, H, d/H] with rotary on half of q's and k's channels."""
        B, T, _ = x.shape
        qkv = self.qkv(x.astype(self.dtype)).reshape(B, T, 3, self.heads, self.head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        rot = self.head_dim // 2
        return apply_rotary(q, positions, rot), apply_rotary(k, positions, rot), v

    def __call__(self, x: jax.Array, initial_state: Any = None) -> tuple[jax.Array, None]:
        if initial_state is not None:
            raise ValueError("transformer blocks have no initial state (initial-state tuning needs "
                             "a GLA block)")
        B, T, d = x.shape
        q, k, v = self._qkv(x, jnp.arange(T))
        implementation = attention_implementation(q.dtype, self.head_dim)
        pad = (-T) % CUDNN_LENGTH_MULTIPLE if implementation == "cudnn" else 0
        if pad:  # cuDNN's training kernels refuse some lengths (odd ones); causal => tail padding is inert
            q, k, v = (jnp.pad(a, ((0, 0), (0, pad), (0, 0), (0, 0))) for a in (q, k, v))
        o = jax.nn.dot_product_attention(q, k, v, scale=self.head_dim**-0.5, is_causal=True,
                                         implementation=implementation)
        return o[:, :T].reshape(B, T, d), None

    def init_state(self, batch: int, max_len: Optional[int] = None) -> dict[str, jax.Array]:
        if max_len is None:
            raise ValueError("the transformer block's decode state is a key/value cache: pass "
                             "max_len (the most decode steps) to init_decode_state")
        shape = (batch, max_len, self.heads, self.head_dim)
        return {"k": jnp.zeros(shape, self.dtype), "v": jnp.zeros(shape, self.dtype)}

    def step(self, x: jax.Array, state: dict[str, jax.Array], position: jax.Array
             ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """x [B, d] at ``position`` (scalar); state {"k", "v"} [B, max_len, H, d/H]."""
        B, d = x.shape
        q, k, v = self._qkv(x[:, None], jnp.reshape(position, (1,)))
        # Positions past max_len would be clamped by dynamic_update_slice: the caller sizes the cache.
        k_cache = jax.lax.dynamic_update_slice_in_dim(state["k"], k.astype(state["k"].dtype), position, axis=1)
        v_cache = jax.lax.dynamic_update_slice_in_dim(state["v"], v.astype(state["v"].dtype), position, axis=1)
        visible = (jnp.arange(k_cache.shape[1]) <= position)[None, None, None, :]  # [1, 1, 1, S]
        o = jax.nn.dot_product_attention(q, k_cache, v_cache, mask=visible, scale=self.head_dim**-0.5)
        return o.reshape(B, d), {"k": k_cache, "v": v_cache}


class LCLMBlock(nnx.Module):
    """Pre-norm residual mixing block around a mixer (GLA, simple GLA or self-attention)."""

    def __init__(self, d: int, mixer: nnx.Module, *, dropout: float, remat: bool,
                 dtype: jnp.dtype, param_dtype: jnp.dtype, rngs: nnx.Rngs, fused_options: str = ""):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.fused_options = fused_options  # A/B variant of the fused decode kernels
        self.norm1 = LayerNorm(d, **kw)
        self.mixer = mixer
        self.norm2 = LayerNorm(d, **kw)
        self.mlp = SwiGLU(d, **kw)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.remat = remat

    def _forward(self, x: jax.Array, initial_state: Any) -> tuple[jax.Array, Any]:
        y, state = self.mixer(self.norm1(x), initial_state)
        x = x + y
        x = x + self.mlp(self.norm2(x))
        return self.dropout(x), state

    def __call__(self, x: jax.Array, initial_state: Any = None) -> tuple[jax.Array, Any]:
        """x [B, T, d] -> (y [B, T, d], final mixer state or None)."""
        if self.remat:
            return nnx.remat(LCLMBlock._forward)(self, x, initial_state)
        return self._forward(x, initial_state)

    def init_state(self, batch: int, max_len: Optional[int] = None) -> Any:
        return self.mixer.init_state(batch, max_len)

    def step(self, x: jax.Array, state: Any, position: jax.Array,
             weights: Optional[dict[str, jax.Array]] = None) -> tuple[jax.Array, Any]:
        """x [B, d] -> (y [B, d], state).

        ``weights`` (from :meth:`fused_weights`): run the fused Pallas kernels
        (``kernels.gla.block_step``) instead; x is then [R, d] with R = ``padded_rows(B,
        fused_dims().small_rows)`` rows (the state's B first are real) and so is y. Eval mode
        only (no dropout there).
        """
        if weights is not None:
            if self.dropout.rate > 0 and not self.dropout.deterministic:
                raise ValueError("the fused decode kernels have no dropout: call model.eval() first")
            return block_step.gla_block_step(x, state, weights, self.fused_dims())
        y, state = self.mixer.step(self.norm1(x), state, position)
        x = x + y
        x = x + self.mlp(self.norm2(x))
        return self.dropout(x), state

    def fused_dims(self) -> Optional[block_step.BlockDims]:
        """The fused decode kernels' static shape for this block, or None when they do not
        apply (transformer or simple-GLA mixer, or widths that are not powers of two >= 16)."""
        mixer = self.mixer
        if not isinstance(mixer, GatedLinearAttention) or mixer.scalar_gate:
            return None
        dims = block_step.make_dims(
            d=self.norm1.norm.num_features, heads=mixer.heads, head_k=mixer.head_k,
            head_v=mixer.head_v, rank=mixer.gate_down.out_features, hidden=self.mlp.hidden,
            gate_logit_normalizer=mixer.gate_logit_normalizer, eps=LN_EPS, options=self.fused_options)
        return None if block_step.unsupported_reason(dims) else dims

    def fused_weights(self) -> dict[str, jax.Array]:
        """This block's weights packed for the fused decode kernels (traceable; call once per
        decode loop, outside it). Requires :meth:`fused_dims` to be not None."""
        dims, m = self.fused_dims(), self.mixer
        if dims is None:
            raise ValueError("fused decode kernels do not apply to this block (see fused_dims)")
        kernel = lambda linear: linear.kernel[...]
        return block_step.pack_block_weights(
            dims, m.dtype,
            ln1_scale=self.norm1.norm.scale[...], ln1_bias=self.norm1.norm.bias[...],
            w_q=kernel(m.q_proj), w_k=kernel(m.k_proj), w_v=kernel(m.v_proj), w_g=kernel(m.g_proj),
            w_gate_down=kernel(m.gate_down), w_gate_up=kernel(m.gate_up), b_gate_up=m.gate_up.bias[...],
            norm_weight=m.norm_weight[...], w_o=kernel(m.o_proj),
            ln2_scale=self.norm2.norm.scale[...], ln2_bias=self.norm2.norm.bias[...],
            w_in=kernel(self.mlp.w_in), b_in=self.mlp.w_in.bias[...],
            w_out=kernel(self.mlp.w_out), b_out=self.mlp.w_out.bias[...])


def make_mixer(kind: str, d: int, heads: int, config: ModelConfig, rngs: nnx.Rngs) -> nnx.Module:
    """The token mixer of ``kind`` ("gla", "simple_gla", "transformer") at width d."""
    dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)
    if kind in ("gla", "simple_gla"):
        return GatedLinearAttention(
            d, heads, expand_k=config.expand_k, expand_v=config.expand_v,
            gate_low_rank=config.gate_low_rank, gate_logit_normalizer=config.gate_logit_normalizer,
            scalar_gate=kind == "simple_gla", backend=config.gla_backend, chunk_size=config.gla_chunk_size,
            dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    if kind == "transformer":
        return CausalSelfAttention(d, heads, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    raise ValueError(f"unknown block kind {kind!r}; valid: 'gla', 'simple_gla', 'transformer'")


def make_block(kind: str, d: int, heads: int, config: ModelConfig, rngs: nnx.Rngs) -> LCLMBlock:
    """One mixing block of ``kind`` at width d with ``heads`` heads."""
    return LCLMBlock(d, make_mixer(kind, d, heads, config, rngs), dropout=config.block_dropout,
                     remat=config.remat, dtype=jnp.dtype(config.dtype),
                     param_dtype=jnp.dtype(config.param_dtype), rngs=rngs,
                     fused_options=config.decode_kernel_options)
