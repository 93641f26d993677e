"""Gradient accumulation: A micro-batches (rows a::A) give the full-batch loss and update."""

import numpy as np
import pytest

from small_e_jax.checkpoint import flatten_state
from small_e_jax.synthetic_data import SyntheticSource, SyntheticSpec
from small_e_jax.train import Trainer
from tests.train.conftest import train_config


def two_steps(tmp_path, accumulation: int):
    # No dropout: micro-batches draw other dropout masks than the full batch.
    config = train_config(tmp_path, f"optimizer.grad_accumulation={accumulation}", "model.text_dropout=0",
                          "model.attention_dropout=0")
    trainer = Trainer(config)
    state = trainer.init_state()
    iterator = SyntheticSource(config.model, SyntheticSpec(batch_size=4, text_len=8, frames=12)).train_iterator()
    losses = []
    for _ in range(2):
        state, metrics = trainer.step(state, trainer.shard_batch(next(iterator)))
        losses.append(float(metrics["loss"]))
    return losses, {k: np.asarray(v) for k, v in flatten_state(state.params).items()}


@pytest.mark.slow
def test_accumulation_matches_full_batch(tmp_path):
    losses1, params1 = two_steps(tmp_path, 1)
    losses2, params2 = two_steps(tmp_path, 2)
    np.testing.assert_allclose(losses2, losses1, rtol=1e-6)
    assert max(float(np.abs(params2[k] - params1[k]).max()) for k in params1) <= 1e-4
