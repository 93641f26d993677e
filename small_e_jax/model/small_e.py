"""The full Small-E model (docs/model.md §2): text encoder, audio embeddings, LCLM encoder blocks, one
cross-attention (PACA or plain), LCLM decoder blocks, per-codebook heads, loss, decoding.

Forward (teacher forcing), pre-norm everywhere, no final norm before the heads (docs/model.md §8)::

    m = TextEncoder(text)                          [B, J, d_c]
    x = Σ_k AudioEmb_k(audio[..., k])              [B, L, d]   Q tables [V, d] ~ N(0, 1), summed
    x = encoder blocks (x)                         model.encoder_layers LCLM blocks (causal)
    x = x + CrossAttention(x, m)                   PACA / plain, single insertion point
    x = decoder blocks (x)                         model.decoder_layers LCLM blocks
    logits[..., k, :] = x W_k                      W [Q, d, V], no bias, U(±√(3/d))

``audio`` holds delayed audio tokens (:mod:`small_e_jax.delay`; per codebook PAD=0, BOA=1, EOA=2,
code+3; V = codebook_size + 3). ``__call__`` is a causal LM over the columns it is given:
``logits[:, t]`` predicts column t + 1 from columns <= t. :meth:`SmallE.loss` takes the whole
delayed matrix, feeds columns 0…L-2 and scores columns 1…L-1 (docs/model.md §1).

Masks: ``text_mask`` masks padded text in the encoder and the cross-attention (unless
``model.compat_unmasked_text``, docs/model.md §8). ``audio_mask`` is only needed by the loss: the audio
stack is causal and padding is at the tail, so padded columns never reach valid ones.

Decoding: :meth:`SmallE.init_decode_state` precomputes the text memory and zero recurrent states;
:meth:`SmallE.decode_step` consumes one column ``[B, Q]`` and returns the logits of the next.
The state is fixed-size for GLA blocks (``[B, H, K, V]`` per block, plus PACA's PosNet state);
the transformer baseline keeps a ``[B, max_len, H, d/H]`` key/value cache per block.

Choices where the paper is open or unverified (docs/model.md §8) (closest to the authors' code unless said otherwise):

* Loss: mean over valid (position, codebook) pairs, codebooks weighted equally; PAD targets,
  targets outside ``audio_mask`` and, by default (``model.loss_include_boa``, docs/model.md §6), the BOA targets of the delay are excluded; EOA targets count (they teach stopping).
* Init as the authors': audio tables N(0, 1) (PAD rows random too, docs/model.md §8), heads U(±√(3/d)),
  no final norm. The logits of a fresh model therefore have a std of ~2 and its loss is ~9,
  not log(1027) ≈ 6.9.
* Transformer baseline (not public, docs/model.md §4/§5): the authors' Lina self-attention block in the
  same encoder / cross-attention / decoder layout; its PACA keeps a GLA PosNet.
* Initial states (initial-state tuning, docs/model.md §7) can be passed per audio block (GLA blocks);
  PACA's PosNet state always starts at zero (as in Lina).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from kernels.gla.block_step import pad_rows, padded_rows
from small_e_jax.config import Config, ModelConfig
from small_e_jax.delay import BOA, PAD
from small_e_jax.model.cross_attention import Memory, make_cross_attention
from small_e_jax.model.layers import normal_init, param, uniform_init
from small_e_jax.model.lclm import make_block
from small_e_jax.model.text_encoder import TextEncoder


# model.decode_kernels=auto: the fused Pallas block kernels for decode loops of at most this
# many rows on a GPU. Measured on an H200 (64M model, benchmarks/RESULTS.md, eleventh GPU session, the
# small-row kernels): 1 row 0.254 ms per step vs XLA 0.510, 4 rows 0.352 vs 0.431, 8 rows 0.476
# vs 0.457 (the wide-tile kernels: 0.434 vs 0.446; 16 rows 0.518 vs ~0.474).
AUTO_PALLAS_MAX_ROWS = 4


@flax.struct.dataclass
class DecodeState:
    """Everything :meth:`SmallE.decode_step` carries from one step to the next (a pytree).

    step: [] int32, the index of the next input column.
    memory: the cross-attention's text memory (keys, values, positions, mask).
    blocks: one state per audio block, encoder blocks then decoder blocks.
    cross: PACA's PosNet GLA state [B, H, K, V] (None for plain cross-attention).
    """

    step: jax.Array
    memory: Memory
    blocks: tuple[Any, ...]
    cross: Any


def _model_config(config: Config | ModelConfig) -> ModelConfig:
    return config.model if isinstance(config, Config) else config


def _concrete(*xs: Any) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _int_array(name: str, x: Any, ndim: int, layout: str) -> None:
    if not hasattr(x, "shape") or x.ndim != ndim:
        raise ValueError(f"{name} must be an array {layout}, got shape {getattr(x, 'shape', type(x))}")
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(f"{name} must be integer tokens {layout}, got dtype {x.dtype}")


def _check_range(name: str, x: Any, upper: int) -> None:
    if _concrete(x):
        values = np.asarray(x)
        if values.size and (values.min() < 0 or values.max() >= upper):
            bad = values[(values < 0) | (values >= upper)].flat[0]
            raise ValueError(f"{name}: token {int(bad)} is outside the vocabulary [0, {upper})")


def check_text(config: ModelConfig, text_tokens: Any, text_mask: Any) -> None:
    """Shapes/values of text tokens [B, J] and mask [B, J]; ValueError with the reason."""
    _int_array("text_tokens", text_tokens, 2, "[B, J]")
    if text_tokens.shape[1] == 0:
        raise ValueError("empty text: text_tokens has no token (shape [B, 0])")
    if not hasattr(text_mask, "shape") or text_mask.shape != text_tokens.shape:
        raise ValueError(f"text_mask must have the shape of text_tokens {text_tokens.shape}, "
                         f"got {getattr(text_mask, 'shape', type(text_mask))}")
    _check_range("text_tokens", text_tokens, config.text_vocab_size)
    if _concrete(text_mask):
        empty = np.flatnonzero(~np.asarray(text_mask).astype(bool).any(axis=1))
        if empty.size:
            raise ValueError(f"empty text: text_mask has no valid token for batch item(s) {empty.tolist()}")


def check_audio(config: ModelConfig, audio_codes: Any, batch: int, name: str = "audio_codes") -> None:
    """Delayed audio tokens [B, L, Q]: batch size, codebook count, vocabulary."""
    _int_array(name, audio_codes, 3, "[B, L, Q]")
    if audio_codes.shape[0] != batch:
        raise ValueError(f"batch size mismatch: text has {batch} items, {name} has {audio_codes.shape[0]}")
    if audio_codes.shape[2] != config.n_codebooks:
        raise ValueError(f"{name} has {audio_codes.shape[2]} codebooks, the model "
                         f"{config.n_codebooks} (model.n_codebooks)")
    if audio_codes.shape[1] == 0:
        raise ValueError(f"{name} has no time step (shape {audio_codes.shape})")
    _check_range(name, audio_codes, config.audio_vocab_size)


class SmallE(nnx.Module):
    """Small-E (docs/model.md §2). ``SmallE(config, rngs=nnx.Rngs(0))``; ``config`` is a Config or ModelConfig."""

    def __init__(self, config: Config | ModelConfig, *, rngs: Optional[nnx.Rngs] = None):
        cfg = _model_config(config)
        cfg.validate()
        rngs = rngs if rngs is not None else nnx.Rngs(0)
        self.config = cfg
        self.dtype = jnp.dtype(cfg.dtype)
        d, Q, V = cfg.d_model, cfg.n_codebooks, cfg.audio_vocab_size
        param_dtype = jnp.dtype(cfg.param_dtype)
        self.text_encoder = TextEncoder(cfg, rngs=rngs)
        self.audio_embed = param(normal_init(1.0)(rngs.params(), (Q, V, d), param_dtype),
                                 (None, "vocab", "embed"))
        self.encoder = nnx.List([make_block(cfg.block, d, cfg.heads, cfg, rngs)
                                 for _ in range(cfg.encoder_layers)])
        self.cross_attention = make_cross_attention(cfg, rngs)
        self.decoder = nnx.List([make_block(cfg.block, d, cfg.heads, cfg, rngs)
                                 for _ in range(cfg.decoder_layers)])
        self.head = param(uniform_init(math.sqrt(3.0 / d))(rngs.params(), (Q, d, V), param_dtype),
                          (None, "embed", "vocab"))

    # ----------------------------------------------------------------------- pieces

    @property
    def blocks(self) -> list[nnx.Module]:
        """Audio blocks in order: encoder then decoder."""
        return [*self.encoder, *self.decoder]

    def encode_text(self, text_tokens: jax.Array, text_mask: jax.Array) -> Memory:
        """Text [B, J] -> the cross-attention memory (text encoder + key/value projections)."""
        return self.cross_attention.memory(self.text_encoder(text_tokens, text_mask), text_mask)

    def embed_audio(self, audio: jax.Array) -> jax.Array:
        """Delayed tokens [B, L, Q] -> summed codebook embeddings [B, L, d]."""
        table = self.audio_embed[...].astype(self.dtype)  # [Q, V, d]
        return table[jnp.arange(table.shape[0]), audio].sum(axis=-2)

    def logits(self, h: jax.Array) -> jax.Array:
        """Hidden [..., d] -> logits [..., Q, V] (fp32 accumulation)."""
        return jnp.einsum("...d,qdv->...qv", h, self.head[...].astype(self.dtype),
                          preferred_element_type=jnp.float32)

    def _initial_states(self, initial_states: Optional[Sequence[Any]]) -> list[Any]:
        n = len(self.encoder) + len(self.decoder)
        if initial_states is None:
            return [None] * n
        if len(initial_states) != n:
            raise ValueError(f"initial_states: expected {n} entries (one per audio block), got "
                             f"{len(initial_states)}")
        return list(initial_states)

    # ----------------------------------------------------------------------- training

    def __call__(
        self,
        text_tokens: jax.Array,
        text_mask: jax.Array,
        audio_codes: jax.Array,
        audio_mask: Optional[jax.Array] = None,
        *,
        initial_states: Optional[Sequence[Any]] = None,
        return_attention: bool = False,
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """Teacher-forced logits.

        Args:
          text_tokens: [B, J] int; text_mask: [B, J] bool (True = real token).
          audio_codes: [B, L, Q] delayed audio tokens (input columns).
          audio_mask: [B, L] bool or None; shape-checked only (the stack is causal).
          initial_states: optional per-audio-block initial recurrent states ([B or 1, H, K, V]
            or None each; GLA blocks only).
          return_attention: also return {"attention": [B, 2 or H, L, J]} (PACA: [A1, A2]).
        Returns:
          logits [B, L, Q, V] fp32 (``logits[:, t]`` predicts column t + 1), and the aux dict
          when ``return_attention``.
        """
        cfg = self.config
        check_text(cfg, text_tokens, text_mask)
        check_audio(cfg, audio_codes, text_tokens.shape[0])
        if audio_mask is not None and audio_mask.shape != audio_codes.shape[:2]:
            raise ValueError(f"audio_mask must have shape [B, L] = {audio_codes.shape[:2]}, got {audio_mask.shape}")
        memory = self.encode_text(text_tokens, text_mask)
        states = self._initial_states(initial_states)
        h = self.embed_audio(audio_codes)
        for block, s0 in zip(self.encoder, states[:len(self.encoder)]):
            h, _ = block(h, s0)
        cross, attention = self.cross_attention(h, memory)
        h = h + cross
        for block, s0 in zip(self.decoder, states[len(self.encoder):]):
            h, _ = block(h, s0)
        logits = self.logits(h)
        return (logits, {"attention": attention}) if return_attention else logits

    def loss(
        self,
        text_tokens: jax.Array,
        text_mask: jax.Array,
        audio_codes: jax.Array,
        audio_mask: jax.Array,
        *,
        initial_states: Optional[Sequence[Any]] = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Masked cross-entropy on the delayed matrix.

        Args:
          audio_codes: [B, L, Q] the whole delayed matrix (``delay.delay``), L >= 2.
          audio_mask: [B, L] bool, its real columns.
        Returns:
          (loss, metrics): loss = mean CE over valid (position, codebook) pairs; metrics has
          ``loss``, ``perplexity``, ``loss_per_codebook`` [Q], ``accuracy_per_codebook`` [Q],
          ``targets_per_codebook`` [Q].
        """
        check_audio(self.config, audio_codes, text_tokens.shape[0])
        if audio_codes.shape[1] < 2:
            raise ValueError(f"loss needs at least 2 columns (input and target), got {audio_codes.shape[1]}")
        if audio_mask is None or audio_mask.shape != audio_codes.shape[:2]:
            raise ValueError(f"audio_mask must have shape [B, L] = {audio_codes.shape[:2]}, "
                             f"got {getattr(audio_mask, 'shape', None)}")
        # All L columns go in and the last prediction (of column L, which does not exist) is
        # dropped: by causality this equals running on the first L - 1 columns, and L is the
        # batch's padded length, typically a multiple of the GLA chunk (64), where L - 1 never is
        # (each GLA layer would pad and slice q, k, v and the gates: ~7% of an H200 step).
        logits = self(text_tokens, text_mask, audio_codes, audio_mask,
                      initial_states=initial_states)[:, :-1]
        targets = audio_codes[:, 1:]
        valid = audio_mask[:, 1:, None].astype(bool) & (targets != PAD)
        if not self.config.loss_include_boa:
            valid &= targets != BOA
        return codebook_cross_entropy(logits, targets, valid)

    # ----------------------------------------------------------------------- decoding

    def init_decode_state(
        self,
        text_tokens: jax.Array,
        text_mask: jax.Array,
        *,
        max_len: Optional[int] = None,
        initial_states: Optional[Sequence[Any]] = None,
    ) -> DecodeState:
        """Decode state for a batch of texts [B, J].

        max_len: the most decode steps; needed only by the transformer baseline (KV cache).
        initial_states: as in ``__call__`` (GLA blocks; broadcast over the batch).
        """
        check_text(self.config, text_tokens, text_mask)
        B = text_tokens.shape[0]
        blocks = []
        for block, s0 in zip(self.blocks, self._initial_states(initial_states)):
            state = block.init_state(B, max_len)
            if s0 is not None:
                if not isinstance(state, jax.Array):
                    raise ValueError("initial_states: only GLA blocks take an initial state")
                state = jnp.broadcast_to(jnp.asarray(s0, jnp.float32), state.shape)
            blocks.append(state)
        return DecodeState(step=jnp.zeros((), jnp.int32), memory=self.encode_text(text_tokens, text_mask),
                           blocks=tuple(blocks), cross=self.cross_attention.init_state(B))

    def fused_decode_weights(self, rows: Optional[int] = None) -> Optional[dict[str, Any]]:
        """The audio blocks' weights packed for the fused decode kernels
        (``kernels.gla.block_step``) when :meth:`uses_fused_decode` for a loop of ``rows``
        rows, else None (XLA ops; also when no block can use the kernels). Traceable: the
        decode loop calls it once, outside the loop, and passes the result to every
        :meth:`decode_step`.

        Returns {"blocks": [dict or None per audio block], "pos_net": dict or None}; a None
        entry runs that block through XLA (e.g. a transformer block).
        """
        if not self.uses_fused_decode(rows):
            return None
        blocks = [b.fused_weights() if b.fused_dims() is not None else None for b in self.blocks]
        pos_net = getattr(self.cross_attention, "pos_net", None)
        pos = pos_net.fused_weights() if pos_net is not None and pos_net.fused_dims() is not None else None
        if pos is None and all(w is None for w in blocks):
            return None
        return {"blocks": blocks, "pos_net": pos}

    def uses_fused_decode(self, rows: Optional[int] = None) -> bool:
        """Whether ``model.decode_kernels`` picks the fused kernels for a decode loop of ``rows``
        rows: "pallas" always, "xla" never, "auto" on a GPU backend for 1..AUTO_PALLAS_MAX_ROWS
        rows (``rows`` None: not known, XLA) of a model in eval mode (the fused kernels have no
        dropout; "pallas" refuses a model with active dropout instead)."""
        choice = self.config.decode_kernels
        if choice not in ("auto", "xla", "pallas"):
            raise ValueError(f"model.decode_kernels={choice!r}; valid: 'auto', 'xla', 'pallas'")
        if choice == "auto":
            dropout = any(b.dropout.rate > 0 and not b.dropout.deterministic for b in self.blocks)
            return (jax.default_backend() == "gpu" and rows is not None
                    and 1 <= rows <= AUTO_PALLAS_MAX_ROWS and not dropout)
        return choice == "pallas"

    def _fused_small_rows(self) -> bool:
        """Whether the fused kernels carry fewer than 16 rows as a power of two (`small_rows`)."""
        dims = [b.fused_dims() for b in self.blocks]
        return any(d is not None and d.small_rows for d in dims)

    def decode_step(
        self, state: DecodeState, codes_t: jax.Array, *, return_attention: bool = False,
        weights: Optional[dict[str, Any]] = None,
    ) -> tuple[jax.Array, DecodeState] | tuple[jax.Array, DecodeState, jax.Array]:
        """One column: codes_t [B, Q] (the input column ``state.step``) -> (logits [B, Q, V] of
        the next column, new state[, attention row [B, 2 or H, J]]).

        ``weights``: :meth:`fused_decode_weights` (None: every block through XLA). With them
        the residual stream carries ``padded_rows(B, small_rows)`` rows between the fused blocks.
        Step by step it reproduces ``__call__`` (same causal computation; the fused kernels
        round where XLA does, see tests/kernels/test_block_step.py for the tolerances).
        """
        if not hasattr(codes_t, "ndim") or codes_t.ndim != 2:
            raise ValueError(f"codes_t must be [B, Q], got shape {getattr(codes_t, 'shape', None)}")
        check_audio(self.config, codes_t[:, None], state.memory["v"].shape[0], name="codes_t")
        position = state.step
        B = codes_t.shape[0]
        fused = weights is not None
        rows = padded_rows(B, self._fused_small_rows()) if fused else B
        block_weights = weights["blocks"] if fused else [None] * len(self.blocks)

        def run_block(block: nnx.Module, h: jax.Array, block_state: Any, w: Optional[dict]):
            if w is not None:  # h is [rows, d]
                return block.step(h, block_state, position, weights=w)
            if fused:  # an XLA block between fused ones: on the real rows
                y, block_state = block.step(h[:B], block_state, position)
                return pad_rows(y, rows), block_state
            return block.step(h, block_state, position)

        # Named scopes: profiles of the decode loop (bench_decode --trace) name each kernel's part.
        with jax.named_scope("embed"):
            h = self.embed_audio(codes_t[:, None])[:, 0]
            h = pad_rows(h, rows) if fused else h
        n_enc = len(self.encoder)
        new_blocks = list(state.blocks)
        for i, block in enumerate(self.encoder):
            with jax.named_scope(f"encoder{i}"):
                h, new_blocks[i] = run_block(block, h, state.blocks[i], block_weights[i])
        with jax.named_scope("cross_attention"):
            cross, cross_state, attention = self.cross_attention.step(
                h[:B], state.memory, state.cross, position,
                pos_net_weights=weights["pos_net"] if fused else None)
        h = h + (pad_rows(cross, rows) if fused else cross)
        for i, block in enumerate(self.decoder):
            with jax.named_scope(f"decoder{i}"):
                h, new_blocks[n_enc + i] = run_block(block, h, state.blocks[n_enc + i],
                                                     block_weights[n_enc + i])
        new_state = state.replace(step=position + 1, blocks=tuple(new_blocks), cross=cross_state)
        with jax.named_scope("heads"):
            logits = self.logits(h[:B])
        return (logits, new_state, attention) if return_attention else (logits, new_state)


def codebook_cross_entropy(logits: jax.Array, targets: jax.Array, valid: jax.Array
                           ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean cross-entropy over valid (position, codebook) pairs, all codebooks weighted equally.

    Args:
      logits: [B, T, Q, V]; targets: [B, T, Q] int; valid: [B, T, Q] bool.
    Returns:
      (loss, metrics) as :meth:`SmallE.loss`. A codebook without valid targets reports 0.
    """
    logits = logits.astype(jnp.float32)
    valid_f = valid.astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    nll = jnp.where(valid, nll, 0.0)
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32) * valid_f
    per_count = valid_f.sum(axis=(0, 1))  # [Q]
    total = per_count.sum()
    loss = nll.sum() / jnp.maximum(total, 1.0)
    metrics = {
        "loss": loss,
        "perplexity": jnp.exp(loss),
        "loss_per_codebook": nll.sum(axis=(0, 1)) / jnp.maximum(per_count, 1.0),
        "accuracy_per_codebook": correct.sum(axis=(0, 1)) / jnp.maximum(per_count, 1.0),
        "targets_per_codebook": per_count,
    }
    return loss, metrics
