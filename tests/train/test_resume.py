"""Kill-and-resume: a run stopped at step k and resumed from its checkpoint (new iterator, new
state) matches an uninterrupted run bit for bit (losses after k, final params and optimizer
state), at three interruption points sharing one reference run."""

import pytest

from small_e_jax import train
from tests.train.conftest import STEPS, assert_trees_equal, source, train_config


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shared_trainer):
    config = train_config(tmp_path_factory.mktemp("reference"))
    return train.run(config, source(config), trainer=shared_trainer)


@pytest.mark.parametrize("stop_at", [2, 5, 7])
def test_resume_matches_uninterrupted_run(tmp_path, shared_trainer, reference, stop_at):
    config = train_config(tmp_path)
    first = train.run(config, source(config), trainer=shared_trainer, stop_at_step=stop_at)
    assert (first.stopped, first.step) == ("stop_at_step", stop_at)
    assert first.losses == {s: reference.losses[s] for s in range(1, stop_at + 1)}
    resumed = train.run(config, source(config), trainer=shared_trainer)  # fresh iterator and state
    assert (resumed.stopped, resumed.step) == ("done", STEPS)
    assert resumed.losses == {s: reference.losses[s] for s in range(stop_at + 1, STEPS + 1)}
    assert_trees_equal(resumed.state.params, reference.state.params)
    assert_trees_equal(resumed.state.opt_state, reference.state.opt_state)
    assert_trees_equal(resumed.state.rngs, reference.state.rngs)


def test_training_lowers_the_loss(reference):
    assert reference.losses[STEPS] < reference.losses[1] - 0.3
