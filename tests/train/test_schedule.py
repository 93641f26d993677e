"""Learning-rate schedule (SPEC §6): linear warm-up, then cosine to zero at trainer.steps."""

import math

import numpy as np
import pytest

from small_e_jax.config import OptimizerConfig
from small_e_jax.optim import decay_mask, learning_rate_schedule


@pytest.mark.parametrize("step, expected", [
    (0, 0.0), (50, 5e-4 * 0.1), (250, 5e-4 * 0.5), (500, 5e-4),
    (500 + 4500 // 2, 5e-4 * 0.5), (500 + 4500 // 4, 5e-4 * 0.5 * (1 + math.cos(math.pi / 4))),
    (5000, 0.0), (6000, 0.0)])
def test_warmup_cosine(step, expected):
    schedule = learning_rate_schedule(OptimizerConfig(learning_rate=5e-4, warmup_steps=500), total_steps=5000)
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-10)


def test_constant_after_warmup():
    schedule = learning_rate_schedule(OptimizerConfig(learning_rate=1e-3, warmup_steps=10, schedule="constant"), 100)
    assert [float(schedule(s)) for s in (5, 10, 99)] == pytest.approx([5e-4, 1e-3, 1e-3])


def test_decay_mask_skips_norms_biases_and_tables():
    params = {"audio_embed": np.zeros((4, 7, 8)), "blocks": {"w": np.zeros((8, 8)), "scale": np.zeros(8)}}
    assert decay_mask(params) == {"audio_embed": False, "blocks": {"w": True, "scale": False}}
