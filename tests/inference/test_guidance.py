"""Classifier-free guidance training: text dropout replaces whole rows by the null text."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from small_e_jax.delay import delay
from small_e_jax.guidance import drop_text, null_text
from small_e_jax.train import TrainState, make_train_step


def test_drop_text_rows():
    text = jnp.asarray(np.random.default_rng(0).integers(3, 256, (64, 9)), jnp.int32)
    mask = jnp.ones(text.shape, bool).at[:, 7:].set(False)
    same, same_mask, dropped = drop_text(text, mask, jax.random.key(0), 0.0)
    assert not dropped.any() and (same == text).all() and (same_mask == mask).all()
    null, null_mask = null_text(64, 9)
    out, out_mask, dropped = drop_text(text, mask, jax.random.key(0), 1.0)
    assert dropped.all() and (out == null).all() and (out_mask == null_mask).all()
    assert (np.asarray(out[:, :2]) == [1, 2]).all() and int(out_mask.sum()) == 2 * 64
    out, out_mask, dropped = drop_text(text, mask, jax.random.key(1), 0.3)
    d = np.asarray(dropped)
    assert 5 < d.sum() < 40  # about 0.3 x 64
    np.testing.assert_array_equal(np.asarray(out)[~d], np.asarray(text)[~d])
    np.testing.assert_array_equal(np.asarray(out)[d], np.asarray(null)[d])
    with pytest.raises(ValueError, match="at least 2"):
        null_text(2, 1)


@pytest.mark.slow  # two train-step compilations
def test_train_step_drops_text(tiny):
    model, config = tiny
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    rng = np.random.default_rng(0)
    text = jnp.asarray(rng.integers(3, 256, (2, 8)), jnp.int32)
    codes = rng.integers(0, 1024, (2, 6, 4))
    audio, audio_mask = delay(codes)
    batch = {"text": text, "text_mask": jnp.ones((2, 8), bool), "audio": jnp.asarray(audio),
             "audio_mask": jnp.asarray(audio_mask)}
    tx = optax.adam(0.0)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, rngs=nnx.state(model, nnx.RngState),
                       opt_state=tx.init(params))
    null, null_mask = null_text(2, 8)
    dropped = jax.jit(make_train_step(graphdef, tx, lambda n: 0.0, text_dropout=1.0))(
        state, batch, jnp.bool_(False))[1]
    plain = jax.jit(make_train_step(graphdef, tx, lambda n: 0.0))(
        state, {**batch, "text": null, "text_mask": null_mask}, jnp.bool_(False))[1]
    assert float(dropped["text_dropped"]) == 1.0
    np.testing.assert_allclose(float(dropped["loss"]), float(plain["loss"]), rtol=1e-5)
