"""End to end: a tiny model trained briefly on one utterance reproduces its codes with greedy
decoding through the whole generate path (prefill, compiled loop, stop token, undelay, cut)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from small_e_jax.delay import delay
from small_e_jax.inference import Synthesizer
from small_e_jax.sampling import GREEDY

from tests.inference.conftest import random_model, tiny_config

TEXT = "The quick brown fox."
FRAMES = 10


def train_on_one(model, synth, codes, steps: int, learning_rate: float = 3e-3) -> float:
    text, text_mask = synth.encode_texts([TEXT])
    audio, audio_mask = delay(codes[None], np.array([len(codes)]))
    audio, audio_mask = jnp.asarray(audio), jnp.asarray(audio_mask)
    model.train()
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(model):
            return model.loss(text, text_mask, audio, audio_mask)[0]

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    for _ in range(steps):
        loss = step(model, optimizer)
    model.eval()
    return float(loss)


@pytest.mark.slow
def test_trained_model_reproduces_its_utterance():
    config = tiny_config("model.text_dropout=0.0", "model.attention_dropout=0.0")
    model = random_model(config, seed=1)
    codes = np.random.default_rng(0).integers(0, config.model.codebook_size, (FRAMES, config.model.n_codebooks))
    synth = Synthesizer(model, config)
    loss = train_on_one(model, synth, codes, steps=150)
    assert loss < 0.05, loss
    synth = Synthesizer(model, config)  # the trained parameters
    generated = synth.generate([TEXT], sampling=GREEDY, max_frames=3 * FRAMES)[0]
    np.testing.assert_array_equal(generated, codes)  # same codes, stopped at the right frame
