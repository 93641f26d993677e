"""Shared pieces of the trainer tests: a tiny config (B=2, J=8, 12 frames, one text layer,
no validation, no console/TensorBoard output) and one session-wide :class:`Trainer`, so that
the train step compiles once for all in-process tests (compiling dominates their time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from small_e_jax.checkpoint import flatten_state
from small_e_jax.config import Config, load_config
from small_e_jax.synthetic_data import SyntheticSource, SyntheticSpec
from small_e_jax.train import Trainer

STEPS = 8
BASE_OVERRIDES = (f"trainer.steps={STEPS}", "trainer.log_every=4", "trainer.eval_batches=0",
                  "trainer.progress_bar=false", "trainer.tensorboard=false", "optimizer.warmup_steps=2",
                  "checkpoint.save_every_steps=100", "checkpoint.async_save=true", "model.text_layers=1",
                  "mesh.data=1")


def train_config(workdir: Path | str, *overrides: str) -> Config:
    return load_config("tiny", [f"trainer.workdir={workdir}", *BASE_OVERRIDES, *overrides])


def source(config: Config) -> SyntheticSource:
    return SyntheticSource(config.model, SyntheticSpec(batch_size=2, text_len=8, frames=12))


def tree_bytes(tree: Any) -> list[np.ndarray]:
    """Leaves as numpy arrays (PRNG keys as their raw key data)."""
    return [np.asarray(x) for x in flatten_state(tree).values()]


def assert_trees_equal(a: Any, b: Any) -> None:
    la, lb = tree_bytes(a), tree_bytes(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="session")
def shared_trainer(tmp_path_factory) -> Trainer:
    return Trainer(train_config(tmp_path_factory.mktemp("unused")))
