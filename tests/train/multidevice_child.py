"""Child process of test_multidevice.py (needs XLA_FLAGS=--xla_force_host_platform_device_count=8):
two train steps of the tiny model on one device and on each mesh given on the command line
(``data,fsdp`` pairs); prints one JSON line with the largest differences and the sharded params."""

import json
import sys

import jax
import numpy as np
from flax import nnx

from small_e_jax import sharding
from small_e_jax.checkpoint import flatten_state
from small_e_jax.synthetic_data import SyntheticSource, SyntheticSpec
from small_e_jax.train import Trainer
from tests.train.conftest import train_config


def two_steps(data: int, fsdp: int):
    config = train_config("/tmp/unused", f"mesh.data={data}", f"mesh.fsdp={fsdp}")
    devices = jax.devices()[:data * fsdp]
    trainer = Trainer(config, sharding.make_mesh(config.mesh, devices))
    state = trainer.init_state()
    init = {k: np.asarray(v) for k, v in flatten_state(state.params).items()}
    iterator = SyntheticSource(config.model, SyntheticSpec(batch_size=8, text_len=8, frames=12)).train_iterator()
    losses = []
    for _ in range(2):
        state, metrics = trainer.step(state, trainer.shard_batch(next(iterator)))
        losses.append(float(metrics["loss"]))
    specs = [str(v.value.sharding.spec) for _, v in nnx.to_flat_state(state.params)]
    params = {k: np.asarray(v) for k, v in flatten_state(state.params).items()}
    return init, losses, params, specs


def main(meshes: list[str]) -> None:
    assert jax.device_count() == 8, jax.device_count()
    init1, losses1, params1, _ = two_steps(1, 1)
    out = {}
    for mesh in meshes:
        data, fsdp = map(int, mesh.split(","))
        init, losses, params, specs = two_steps(data, fsdp)
        out[mesh] = {
            "init_diff": max(float(np.abs(init[k] - init1[k]).max()) for k in init1),
            "loss_diff": max(abs(a - b) for a, b in zip(losses, losses1)),
            "param_diff": max(float(np.abs(params[k] - params1[k]).max()) for k in params1),
            "sharded_over_fsdp": sum("fsdp" in s for s in specs),
            "losses": losses, "losses_1": losses1}
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
