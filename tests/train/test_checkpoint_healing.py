"""Checkpoints that heal: a newest step that does not restore is moved aside (kept), the run
resumes from the newest good step and saves the moved step again; with every step corrupt the
run stops with one clear error and moves nothing. Inference restores name the step they used and
the steps they skipped, and move nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from small_e_jax import train
from small_e_jax.checkpoint import Checkpointer, CheckpointError
from small_e_jax.config import config_to_dict
from small_e_jax.inference import load_model
from tests.train.conftest import STEPS, source, train_config


@pytest.fixture
def stopped_run(tmp_path, shared_trainer):
    """A run stopped at step 4 with checkpoints at steps 2 and 4."""
    config = train_config(tmp_path, "checkpoint.save_every_steps=2")
    train.run(config, source(config), trainer=shared_trainer, stop_at_step=4)
    directory = Path(train.checkpoint_dir(config))
    assert Checkpointer(directory, config.checkpoint).all_steps() == [2, 4]
    return config, directory


def _truncate_arrays(step_dir: Path) -> None:
    """Cut every array data file of a step short (what a save killed mid-write leaves)."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    for path in files:
        path.write_bytes(path.read_bytes()[:10])


def test_corrupt_newest_step_is_moved_aside_and_saved_again(stopped_run, shared_trainer, capsys, caplog,
                                                            record_property):
    config, directory = stopped_run
    _truncate_arrays(directory / "4")
    with caplog.at_level(logging.WARNING, logger="small_e_jax.checkpoint"):
        result = train.run(config, source(config), trainer=shared_trainer)
    # Resumed from step 2: the first loss recorded is step 3's.
    assert (result.stopped, result.step) == ("done", STEPS)
    assert min(result.losses) == 3
    moved = [p.name for p in directory.iterdir() if p.name.startswith("4.corrupt-")]
    assert len(moved) == 1 and (directory / moved[0] / "state").is_dir()  # kept, not deleted
    out = capsys.readouterr().out
    assert f"resumed from {directory}/2 (step 2; corrupt steps moved aside: 4 -> {moved[0]})" in out
    warnings = [r.getMessage() for r in caplog.records if "/4 is corrupt" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and f"moved aside to {moved[0]}" in warnings[0]
    # Step 4 was saved again by the resumed run, and the newest step restores.
    checkpointer = Checkpointer(directory, config.checkpoint)
    assert 4 in checkpointer.all_steps() and checkpointer.latest_step() == STEPS
    state, meta = checkpointer.restore(shared_trainer.init_state(), source(config).train_iterator(),
                                       config_to_dict(config))
    assert meta["step"] == int(state.step) == STEPS and checkpointer.skipped == []
    checkpointer.close()
    assert "Traceback" not in out
    record_property("bad_input", "clear")  # a counted case of the bad-input suite (tests/badinput)


def test_every_step_corrupt_is_one_clear_error_and_moves_nothing(stopped_run, shared_trainer):
    config, directory = stopped_run
    for step in (2, 4):
        _truncate_arrays(directory / str(step))
    with pytest.raises(CheckpointError) as info:
        train.run(config, source(config), trainer=shared_trainer)
    message = str(info.value)
    assert "\n" not in message and len(message) < 1000
    assert message.startswith(f"no readable checkpoint in {directory} (all 2 steps are corrupt")
    assert "step 4: " in message and "step 2: " in message
    assert sorted(p.name for p in directory.iterdir() if p.is_dir()) == ["2", "4"]


def test_inference_restore_names_the_step_used_and_skipped(stopped_run, caplog):
    config, directory = stopped_run
    _truncate_arrays(directory / "4")
    with caplog.at_level(logging.INFO, logger="small_e_jax.inference"):
        _, _, step = load_model(config.trainer.workdir)
    assert step == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "small_e_jax.inference"]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith(f"restored checkpoint step 2 of {directory}; skipped unusable steps: step 4: ")
    assert (directory / "4").is_dir()  # inference moves nothing
