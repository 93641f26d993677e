"""Child of test_multihost.py. ``worker``: one of several JAX processes (jax.distributed on CPU,
env JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID) that each feed their own rows
of the global batch; ``reference``: one process with as many local devices, fed the same global
rows. Both take two train steps of the tiny model and print one RESULT JSON line."""

import json
import sys

from small_e_jax import sharding

if sys.argv[1] == "worker":
    sharding.initialize_distributed("auto")  # before anything else touches JAX

import jax  # noqa: E402
import numpy as np  # noqa: E402

from small_e_jax.checkpoint import flatten_state  # noqa: E402
from small_e_jax.synthetic_data import SyntheticSource, SyntheticSpec  # noqa: E402
from small_e_jax.train import Trainer  # noqa: E402
from tests.train.conftest import train_config  # noqa: E402

PROCESSES = 2
SPEC = SyntheticSpec(batch_size=2, text_len=8, frames=12)  # rows per process


def replicated_value(x: jax.Array) -> np.ndarray:
    """The value of an array replicated over the mesh (a data-parallel mesh replicates the
    parameters and the loss): every process holds it whole on each of its devices."""
    assert x.is_fully_replicated, x.sharding
    return np.asarray(x.addressable_data(0))


def main(mode: str) -> None:
    config = train_config("/tmp/unused", f"mesh.data={jax.device_count()}")
    trainer = Trainer(config)
    state = trainer.init_state()
    if mode == "worker":
        iterators = [SyntheticSource(config.model, SPEC, jax.process_index(), jax.process_count()).train_iterator()]
    else:  # the same global rows, process 0's first, all fed by this one process
        iterators = [SyntheticSource(config.model, SPEC, p, PROCESSES).train_iterator() for p in range(PROCESSES)]
    losses = []
    for _ in range(2):
        parts = [next(it) for it in iterators]
        local = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        state, metrics = trainer.step(state, trainer.shard_batch(local))
        losses.append(float(replicated_value(metrics["loss"])))
    params = {k: replicated_value(v) for k, v in flatten_state(state.params).items()}
    print("RESULT " + json.dumps({"process": jax.process_index(), "processes": jax.process_count(),
                                  "devices": jax.device_count(), "losses": losses,
                                  "param_sums": {k: float(np.abs(v).sum()) for k, v in params.items()}}))


if __name__ == "__main__":
    main(sys.argv[1])
