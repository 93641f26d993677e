"""Restoring a model from a checkpoint directory alone, and the errors for bad checkpoints."""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from small_e_jax.checkpoint import CheckpointError
from small_e_jax.config import config_to_dict
from small_e_jax.inference import load_model

from tests.inference.conftest import save_checkpoint


def params_of(model):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_restore_round_trip_and_errors(tiny, tmp_path):
    model, config = tiny
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoints", model, config, step=10)
    # From the checkpoint directory, or from the run's workdir above it.
    for where in (ckpt, tmp_path / "run"):
        restored, restored_config, step = load_model(where)
        assert step == 10 and restored_config == config
        for a, b in zip(params_of(restored), params_of(model)):
            np.testing.assert_array_equal(a, b)
    bf16, _, _ = load_model(ckpt, param_dtype="bfloat16")
    assert {x.dtype for x in params_of(bf16)} == {np.dtype(jnp.bfloat16)}

    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_model(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="step 99 is not in"):
        load_model(ckpt, step=99)

    # Incompatible: a config whose model does not fit the saved arrays.
    bad = config_to_dict(config)
    bad["model"]["d_model"] = 128
    other = save_checkpoint(tmp_path / "bad", model, config, step=5, config_dict=bad)
    with pytest.raises(CheckpointError, match="incompatible|no usable"):
        load_model(other)
    # A config this version cannot build at all.
    bad = config_to_dict(config)
    bad["model"]["no_such_field"] = 1
    other = save_checkpoint(tmp_path / "bad2", model, config, step=5, config_dict=bad)
    with pytest.raises(CheckpointError, match="cannot build"):
        load_model(other)

    # Partial: a newer step with its arrays gone falls back to the older complete step ...
    save_checkpoint(ckpt, model, config, step=20)
    shutil.rmtree(ckpt / "20" / "state")
    assert load_model(ckpt)[2] == 10
    # ... and with no complete step left the error says what is wrong.
    shutil.rmtree(ckpt / "10" / "state")
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        load_model(ckpt)


def test_workdir_checkpoints_folder_or_one_step(tiny, tmp_path):
    """Every command that takes a checkpoint accepts the workdir, its checkpoints folder or a step's folder."""
    from small_e_jax.inference import locate_checkpoint

    model, config = tiny
    ckpts = tmp_path / "run" / "checkpoints"
    save_checkpoint(ckpts, model, config, step=10)
    save_checkpoint(ckpts, model, config, step=20)
    assert locate_checkpoint(tmp_path / "run") == (ckpts, None)
    assert locate_checkpoint(ckpts) == (ckpts, None)
    assert locate_checkpoint(ckpts / "10") == (ckpts, 10)
    assert load_model(ckpts / "10")[2] == 10 and load_model(tmp_path / "run")[2] == 20
    with pytest.raises(CheckpointError, match="one step's folder"):
        locate_checkpoint(tmp_path)
