"""Shared fixture ``kit`` for the model tests: tiny models built once, a fixed padded batch, and
jitted forward / loss / full-decode functions (compiling dominates CPU test time, and ``nnx.jit``
reuses a compiled program for the same model structure and shapes)."""

from __future__ import annotations

import functools
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from small_e_jax.config import ModelConfig, load_config
from small_e_jax.delay import delay
from small_e_jax.model import SmallE

# Batch: 2 items; text 7 tokens (item 1 padded after 5); audio 6 and 4 frames (delayed: 11 / 9 columns).
TEXT_LEN, FRAMES = 7, 6
TEXT_LENGTHS, FRAME_LENGTHS = (7, 5), (6, 4)


def tiny_config(*overrides: str) -> ModelConfig:
    return load_config("tiny", list(overrides)).model


@functools.lru_cache(maxsize=None)
def _cached_model(overrides: tuple[str, ...]) -> SmallE:
    model = SmallE(tiny_config(*overrides), rngs=nnx.Rngs(0))
    model.eval()
    return model


def make_batch(config: ModelConfig, seed: int = 0) -> dict[str, jax.Array]:
    """text [2, 7] (+mask), delayed audio tokens [2, 11, Q] (+mask), and the raw codes [2, 6, Q]."""
    rng = np.random.default_rng(seed)
    text = rng.integers(3, config.text_vocab_size, (2, TEXT_LEN))
    text_mask = np.arange(TEXT_LEN)[None] < np.array(TEXT_LENGTHS)[:, None]
    text = np.where(text_mask, text, 0)
    codes = rng.integers(0, config.codebook_size, (2, FRAMES, config.n_codebooks))
    audio, audio_mask = delay(codes, np.array(FRAME_LENGTHS), codebook_size=config.codebook_size)
    return {"text": jnp.asarray(text), "text_mask": jnp.asarray(text_mask), "codes": codes,
            "audio": jnp.asarray(audio), "audio_mask": jnp.asarray(audio_mask)}


def default_states(model: SmallE) -> Any:
    """Zero initial states for GLA models (so that tests with and without states share one
    compiled program), None for the transformer."""
    if model.config.block == "transformer":
        return None
    return [block.init_state(1) for block in model.blocks]


@nnx.jit
def _forward(model: SmallE, text, text_mask, audio, audio_mask, initial_states):
    logits, aux = model(text, text_mask, audio, audio_mask, initial_states=initial_states,
                        return_attention=True)
    return logits, aux["attention"]


def forward(model: SmallE, text, text_mask, audio, audio_mask, initial_states=None):
    """(logits [B, L, Q, V], attention [B, 2|H, L, J]), jitted."""
    states = default_states(model) if initial_states is None else initial_states
    return _forward(model, text, text_mask, audio, audio_mask, states)


@nnx.jit
def loss(model: SmallE, text, text_mask, audio, audio_mask):
    return model.loss(text, text_mask, audio, audio_mask)


@functools.partial(nnx.jit, static_argnames=("max_len",))
def decode_all(model: SmallE, text, text_mask, audio, initial_states=None, *, max_len: int):
    """Feed every column of audio [B, L, Q] through decode_step: (logits [B, L, Q, V], attention)."""
    state = model.init_decode_state(text, text_mask, max_len=max_len, initial_states=initial_states)

    def body(state, column):
        logits, state, attention = model.decode_step(state, column, return_attention=True)
        return state, (logits, attention)

    _, (logits, attention) = jax.lax.scan(body, state, jnp.swapaxes(audio, 0, 1))
    return jnp.swapaxes(logits, 0, 1), jnp.moveaxis(attention, 0, 2)


def assert_close(actual: Any, expected: Any, tol: float) -> None:
    """max |actual - expected| <= tol * max(1, max |expected|)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(actual - expected).max())
    assert err <= tol * scale, f"max abs error {err:.3g} > {tol:.1g} x {scale:.3g}"


@pytest.fixture(scope="session")
def kit() -> types.SimpleNamespace:
    """``kit.model("model.block=transformer", ...)`` (cached, eval mode: do not mutate), ``kit.config``,
    ``kit.batch``, ``kit.forward``, ``kit.loss``, ``kit.decode_all``, ``kit.assert_close``."""
    return types.SimpleNamespace(
        model=lambda *overrides: _cached_model(tuple(overrides)), config=tiny_config, batch=make_batch,
        forward=forward, loss=loss, decode_all=decode_all, assert_close=assert_close)
