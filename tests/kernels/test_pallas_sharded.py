"""Pallas GLA kernels under a 2 x 2 x 2 (data x fsdp x tensor) mesh of 8 simulated CPU devices
(a subprocess, so the rest of the suite keeps one device): `shard_gla` and `gla` under
`jax.set_mesh` match the unsharded reference (values, state, all gradients), outputs keep the
batch/head sharding, and the ambient-mesh program is really partitioned by shard_map."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-4  # fp32, relative to each array's largest entry (as FP32_TOL in test_gla.py)


def run_child(backend: str, paths: str) -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "tests.kernels.sharded_child", backend, paths], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line.removeprefix("RESULT "))


SPEC = "P(('data', 'fsdp'), None, 'tensor', None)"  # [B, T, H, D] split over batch and heads


def check(result: dict, paths: str) -> None:
    for path in paths.split(","):
        assert set(result[path]) == {"o", "state", "dq", "dk", "dv", "dlog_g", "dinitial_state"}
        for name, err in result[path].items():
            assert err <= TOL, (path, name, err)
        assert result[f"{path}_o_sharding"] == SPEC
    if "ambient" in paths:
        assert result["ambient_dq_sharding"] == SPEC
        assert result["ambient_partitioned"]


def test_pallas_gpu_under_ambient_mesh():
    """gla(backend="pallas_gpu") under jax.set_mesh: the path the model takes."""
    check(run_child("pallas_gpu", "ambient"), "ambient")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pallas_gpu", "pallas_tpu"])
def test_shard_gla_explicit_and_ambient(backend):
    check(run_child(backend, "explicit,ambient"), "explicit,ambient")
