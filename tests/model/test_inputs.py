"""Bad inputs give a ValueError that says what is wrong (checked before any computation)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from flax import nnx


@pytest.fixture(scope="module")
def setup(kit):
    model = kit.model()
    return model, kit.batch(model.config)


def call(model, b, **changes):
    args = {k: b[k] for k in ("text", "text_mask", "audio", "audio_mask")} | changes
    return model(args["text"], args["text_mask"], args["audio"], args["audio_mask"])


@pytest.mark.parametrize("change, message", [
    (lambda b: {"audio": jnp.concatenate([b["audio"], b["audio"][:1]]),
                "audio_mask": jnp.concatenate([b["audio_mask"], b["audio_mask"][:1]])}, "batch size mismatch"),
    (lambda b: {"audio": b["audio"].at[0, 3, 1].set(1027)}, "outside the vocabulary"),
    (lambda b: {"audio": b["audio"].at[0, 3, 1].set(-1)}, "outside the vocabulary"),
    (lambda b: {"audio": b["audio"][..., :3]}, "codebooks"),
    (lambda b: {"audio": b["audio"].astype(jnp.float32)}, "integer"),
    (lambda b: {"audio": b["audio"][:, :0], "audio_mask": b["audio_mask"][:, :0]}, "no time step"),
    (lambda b: {"audio_mask": b["audio_mask"][:, :3]}, "audio_mask"),
    (lambda b: {"text": b["text"].at[0, 2].set(256)}, "outside the vocabulary"),
    (lambda b: {"text": b["text"][:, :0], "text_mask": b["text_mask"][:, :0]}, "empty text"),
    (lambda b: {"text_mask": b["text_mask"].at[1].set(False)}, r"empty text.*\[1\]"),
    (lambda b: {"text_mask": b["text_mask"][:, :4]}, "text_mask"),
    (lambda b: {"text": b["text"][0]}, r"\[B, J\]"),
])
def test_forward_rejects(setup, change, message):
    model, b = setup
    with pytest.raises(ValueError, match=message):
        call(model, b, **change(b))


def test_loss_rejects(setup):
    model, b = setup
    with pytest.raises(ValueError, match="batch size mismatch"):
        model.loss(b["text"][:1], b["text_mask"][:1], b["audio"], b["audio_mask"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.loss(b["text"], b["text_mask"], b["audio"].at[1, 2, 0].set(5000), b["audio_mask"])
    with pytest.raises(ValueError, match="audio_mask"):
        model.loss(b["text"], b["text_mask"], b["audio"], None)
    with pytest.raises(ValueError, match="at least 2 columns"):
        model.loss(b["text"], b["text_mask"], b["audio"][:, :1], b["audio_mask"][:, :1])


def test_decoding_rejects(setup):
    model, b = setup
    with pytest.raises(ValueError, match="empty text"):
        model.init_decode_state(b["text"], b["text_mask"].at[0].set(False))
    with pytest.raises(ValueError, match="initial_states"):
        model.init_decode_state(b["text"], b["text_mask"], initial_states=[None])
    # Shapes only: the checks run before any computation.
    state = nnx.eval_shape(lambda m: m.init_decode_state(b["text"], b["text_mask"]), model)
    with pytest.raises(ValueError, match=r"\[B, Q\]"):
        model.decode_step(state, b["audio"][:, 0, 0])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.decode_step(state, b["audio"][:, 0].at[0, 0].set(1027))
    with pytest.raises(ValueError, match="batch size mismatch"):
        model.decode_step(state, b["audio"][:1, 0])
