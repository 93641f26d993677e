"""Multi-host code path on one machine: two JAX processes (jax.distributed with a local
coordinator, gloo collectives on CPU, 2 devices each) train exactly like one process with 4
devices fed the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from small_e_jax.sharding import distributed_arguments

ROOT = Path(__file__).resolve().parents[2]


def test_distributed_arguments_from_environment():
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert distributed_arguments(env) == {"coordinator_address": "10.0.0.1:1234", "num_processes": 4,
                                          "process_id": 3}
    assert distributed_arguments({}) == {}
    with pytest.raises(ValueError, match="JAX_PROCESS_ID"):
        distributed_arguments({"JAX_PROCESS_ID": "one"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra: str) -> dict:
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
                PYTHONPATH=str(ROOT), **extra)


def _result(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("RESULT ")][-1][len("RESULT "):])


@pytest.mark.slow
def test_two_processes_train_like_one():
    port = _free_port()
    cmd = [sys.executable, "-m", "tests.train.multihost_child"]
    workers = [subprocess.Popen(cmd + ["worker"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env(2, JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
                                         JAX_PROCESS_ID=str(i)))
               for i in range(2)]
    outs = [w.communicate(timeout=900) for w in workers]
    for w, (_, err) in zip(workers, outs):
        assert w.returncode == 0, err[-3000:]
    reference = subprocess.run(cmd + ["reference"], cwd=ROOT, env=_env(4), capture_output=True, text=True,
                               timeout=900)
    assert reference.returncode == 0, reference.stderr[-3000:]
    ref = _result(reference.stdout)
    results = [_result(out) for out, _ in outs]
    assert sorted(r["process"] for r in results) == [0, 1]
    for r in results:
        assert (r["processes"], r["devices"]) == (2, 4)
        assert r["losses"] == pytest.approx(ref["losses"], abs=1e-5)
        for name, value in ref["param_sums"].items():
            assert r["param_sums"][name] == pytest.approx(value, rel=1e-5), name
