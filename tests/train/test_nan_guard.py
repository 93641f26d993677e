"""NaN guard: a non-finite gradient skips the update (parameters and optimizer state unchanged)
and is reported; max_consecutive_bad_steps in a row stop the run with a clear error."""

import pytest

from small_e_jax import train
from tests.train.conftest import assert_trees_equal, source, train_config


def test_nan_step_is_skipped_and_reported(tmp_path, shared_trainer, capsys):
    config = train_config(tmp_path / "clean")
    clean = train.run(config, source(config), trainer=shared_trainer, stop_at_step=2)
    config = train_config(tmp_path / "poisoned")
    poisoned = train.run(config, source(config), trainer=shared_trainer, stop_at_step=3, nan_steps=(2,))
    assert poisoned.bad_steps == [3]
    assert "step 3: non-finite" in capsys.readouterr().out
    # Step 3's update was skipped: the state equals the one after two clean steps.
    assert_trees_equal(poisoned.state.params, clean.state.params)
    assert_trees_equal(poisoned.state.opt_state, clean.state.opt_state)


def test_consecutive_bad_steps_stop_the_run(tmp_path, shared_trainer):
    config = train_config(tmp_path, "trainer.max_consecutive_bad_steps=3")
    with pytest.raises(train.TrainingDiverged, match=r"3 consecutive steps \(up to step 4\).*non-finite"):
        train.run(config, source(config), trainer=shared_trainer, nan_steps=(1, 2, 3, 4))


def test_isolated_bad_steps_do_not_stop_the_run(tmp_path, shared_trainer):
    config = train_config(tmp_path, "trainer.max_consecutive_bad_steps=2")
    result = train.run(config, source(config), trainer=shared_trainer, nan_steps=(1, 3, 5))
    assert (result.stopped, result.bad_steps) == ("done", [2, 4, 6])


def test_run_starts_with_a_banner_and_times_compilation(tmp_path, shared_trainer, capsys):
    """Not about NaNs: placed here to share this file's compiled step (compiling dominates)."""
    config = train_config(tmp_path / "run", "trainer.tensorboard=true")
    train.run(config, source(config), trainer=shared_trainer, stop_at_step=2)
    out = capsys.readouterr().out
    for expected in ("devices: 1 x", "M parameters (gla blocks, paca cross-attention)", "data: synthetic random examples",
                     "steps: 0 -> 8", f"workdir: {(tmp_path / 'run').absolute()}",
                     f"TensorBoard: tensorboard --logdir {(tmp_path / 'run' / 'tensorboard').absolute()}",
                     "compiling the training step…", "compiled and ran the first step in"):
        assert expected in out, expected
    assert "\x1b[" not in out  # not a terminal: plain lines, no progress-bar escape codes
