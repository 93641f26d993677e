"""Incremental decoding reproduces the teacher-forced forward, for every block and cross-attention."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

TOL = 1e-4  # fp32; observed ~1e-6 (chunked GLA vs the token-by-token step)


def random_states(model, seed=1):
    """Non-zero initial states for every GLA block (initial-state tuning), None for the transformer."""
    if model.config.block == "transformer":
        return None
    keys = jax.random.split(jax.random.key(seed), len(model.blocks))
    return [0.5 * jax.random.normal(k, block.init_state(1).shape) for k, block in zip(keys, model.blocks)]


@pytest.mark.parametrize("block, cross", [
    ("gla", "paca"), ("gla", "plain"), ("simple_gla", "paca"), ("transformer", "paca"),
])
def test_decode_steps_match_forward(kit, block, cross):
    model = kit.model(f"model.block={block}", f"model.cross_attention={cross}")
    b = kit.batch(model.config)
    states = random_states(model)
    logits, attention = kit.forward(model, b["text"], b["text_mask"], b["audio"], b["audio_mask"], states)
    step_logits, step_attention = kit.decode_all(model, b["text"], b["text_mask"], b["audio"], states,
                                                 max_len=b["audio"].shape[1])
    assert logits.shape == (2, b["audio"].shape[1], 4, model.config.audio_vocab_size)
    assert np.isfinite(np.asarray(logits)).all()
    kit.assert_close(step_logits, logits, TOL)
    kit.assert_close(step_attention, attention, TOL)
    heads = 2 if cross == "paca" else model.config.cross_attention_heads
    assert attention.shape == (2, heads, b["audio"].shape[1], b["text"].shape[1])
    # Attention rows are distributions over the real text tokens only (item 1 has 5).
    np.testing.assert_allclose(np.asarray(attention).sum(-1), 1.0, atol=1e-5)
    assert float(np.abs(np.asarray(attention)[1, ..., 5:]).max()) < 1e-6
    if states is not None:  # the initial states changed the output
        zero_state_logits, _ = kit.forward(model, b["text"], b["text_mask"], b["audio"], b["audio_mask"])
        assert float(jnp.abs(zero_state_logits - logits).max()) > 1e-3


def test_transformer_decode_needs_max_len(kit):
    model = kit.model("model.block=transformer")
    b = kit.batch(model.config)
    with pytest.raises(ValueError, match="max_len"):
        model.init_decode_state(b["text"], b["text_mask"])


@nnx.jit
def _first_step(model, text, text_mask, column):
    state = model.init_decode_state(text, text_mask)
    logits, new_state = model.decode_step(state, column)
    return state, logits, new_state


def test_gla_decode_state_is_fixed_size_fp32(kit):
    model = kit.model()
    cfg = model.config
    b = kit.batch(cfg)
    state, logits, new_state = _first_step(model, b["text"], b["text_mask"], b["audio"][:, 0])
    head_k, head_v = int(cfg.d_model * cfg.expand_k) // cfg.heads, int(cfg.d_model * cfg.expand_v) // cfg.heads
    assert len(state.blocks) == cfg.encoder_layers + cfg.decoder_layers
    for s in state.blocks:
        assert s.shape == (2, cfg.heads, head_k, head_v) and s.dtype == jnp.float32
        assert not s.any()
    assert state.cross.dtype == jnp.float32 and state.cross.ndim == 4  # PACA's PosNet state
    assert logits.shape == (2, cfg.n_codebooks, cfg.audio_vocab_size)
    assert int(state.step) == 0 and int(new_state.step) == 1
    assert jax.tree.map(jnp.shape, new_state.blocks) == jax.tree.map(jnp.shape, state.blocks)
    assert all(s.any() for s in new_state.blocks) and new_state.cross.any()
