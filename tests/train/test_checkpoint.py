"""Checkpoint restore: a corrupt or partial newest step falls back to the previous good one with
a warning; nothing readable or a different config gives a clear CheckpointError."""

import logging
from pathlib import Path

import pytest

from small_e_jax import train
from small_e_jax.checkpoint import Checkpointer, CheckpointError, config_differences
from small_e_jax.config import config_to_dict
from tests.train.conftest import source, train_config


def test_config_differences_lists_fields_and_ignores_run_control():
    saved = config_to_dict(train_config("/a"))
    current = config_to_dict(train_config("/b", "trainer.steps=50", "checkpoint.keep=7", "model.d_model=128",
                                          "optimizer.learning_rate=0.1"))
    assert config_differences(saved, current) == [
        "model.d_model: checkpoint 64, now 128", "optimizer.learning_rate: checkpoint 0.003, now 0.1"]


@pytest.fixture
def two_checkpoints(tmp_path, shared_trainer):
    """A run stopped at step 4 with checkpoints at steps 2 and 4."""
    config = train_config(tmp_path, "checkpoint.save_every_steps=2")
    train.run(config, source(config), trainer=shared_trainer, stop_at_step=4)
    checkpointer = Checkpointer(train.checkpoint_dir(config), config.checkpoint)
    assert checkpointer.all_steps() == [2, 4]
    return config, checkpointer


def _restore(config, checkpointer, trainer):
    return checkpointer.restore(trainer.init_state(), source(config).train_iterator(), config_to_dict(config))


def _corrupt(step_dir: Path) -> None:
    for path in (step_dir / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage")


def test_corrupt_latest_falls_back_to_previous(two_checkpoints, shared_trainer, caplog):
    config, checkpointer = two_checkpoints
    _corrupt(checkpointer.directory / "4")
    with caplog.at_level(logging.WARNING, logger="small_e_jax.checkpoint"):
        state, meta = _restore(config, checkpointer, shared_trainer)
    assert meta["step"] == 2 and int(state.step) == 2
    assert any("checkpoint" in r.message and "/4 is" in r.message for r in caplog.records)


def test_partial_step_directory_is_skipped(two_checkpoints, shared_trainer):
    config, checkpointer = two_checkpoints
    (checkpointer.directory / "6" / "state").mkdir(parents=True)  # a save that died early
    checkpointer = Checkpointer(checkpointer.directory, config.checkpoint)
    state, meta = _restore(config, checkpointer, shared_trainer)
    assert meta["step"] == 4 and int(state.step) == 4


def test_nothing_readable_is_a_clear_error(two_checkpoints, shared_trainer):
    config, checkpointer = two_checkpoints
    for step in (2, 4):
        _corrupt(checkpointer.directory / str(step))
    with pytest.raises(CheckpointError, match="no readable checkpoint in .*step 4: .*step 2: "):
        _restore(config, checkpointer, shared_trainer)


def test_mismatched_config_is_refused(two_checkpoints, shared_trainer):
    config, checkpointer = two_checkpoints
    other = train_config(config.trainer.workdir, "model.codebook_size=512", "optimizer.weight_decay=0.0")
    with pytest.raises(CheckpointError, match="different config; differing fields: model.codebook_size: "
                                              "checkpoint 1024, now 512; optimizer.weight_decay"):
        checkpointer.restore(shared_trainer.init_state(), source(config).train_iterator(), config_to_dict(other))


def test_keep_latest_and_best_by_validation_loss(tmp_path, shared_trainer):
    config = train_config(tmp_path, "checkpoint.keep=1", "checkpoint.keep_best=1", "checkpoint.save_every_steps=2",
                          "trainer.eval_every=2", "trainer.eval_batches=1", "checkpoint.async_save=false")
    result = train.run(config, source(config), trainer=shared_trainer)
    assert sorted(result.val_losses) == [2, 4, 6, 8]
    best = min(result.val_losses, key=result.val_losses.get)
    kept = Checkpointer(train.checkpoint_dir(config), config.checkpoint).all_steps()
    assert kept == sorted({best, 8})


def test_evaluation_falls_back_like_synthesis(two_checkpoints, caplog):
    """The evaluation command's loader (no step named) skips a corrupt newest step with a warning
    naming it; a step named is read as it is, and nothing readable is one CheckpointError."""
    from small_e_jax.eval.model_eval import load_checkpoint

    config, checkpointer = two_checkpoints
    _corrupt(checkpointer.directory / "4")
    with caplog.at_level(logging.WARNING, logger="small_e_jax.eval.model_eval"):
        loaded = load_checkpoint(checkpointer.directory)
    assert loaded.step == 2 and int(loaded.state.step) == 2
    assert any("skipped the newer unreadable step 4" in r.message for r in caplog.records)
    with pytest.raises(Exception):
        load_checkpoint(checkpointer.directory, step=4)
    _corrupt(checkpointer.directory / "2")
    with pytest.raises(CheckpointError, match="no readable checkpoint in .*step 4: .*step 2: "):
        load_checkpoint(checkpointer.directory)
