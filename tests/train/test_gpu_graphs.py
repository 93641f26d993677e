"""trainer.cuda_graphs: the XLA flags the entry points add before JAX starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from small_e_jax import gpu_graphs
from small_e_jax.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_flags_are_appended_once_and_other_flags_kept():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    assert gpu_graphs.enable_cuda_graphs(env) is True
    tokens = env["XLA_FLAGS"].split()
    assert tokens[0] == "--xla_force_host_platform_device_count=8"
    assert tokens[1:] == list(gpu_graphs.COMMAND_BUFFER_FLAGS)
    assert gpu_graphs.enable_cuda_graphs(env) is False  # already there: nothing doubled
    assert env["XLA_FLAGS"].split() == tokens


def test_the_users_own_setting_wins():
    env = {"XLA_FLAGS": "--xla_gpu_enable_command_buffer="}  # graphs off, by the user
    assert gpu_graphs.enable_cuda_graphs(env) is True  # only the missing flag is added
    assert env["XLA_FLAGS"].split() == ["--xla_gpu_enable_command_buffer=",
                                        "--xla_gpu_graph_min_graph_size=1"]
    empty: dict[str, str] = {}
    assert gpu_graphs.enable_cuda_graphs(empty) is True
    assert empty["XLA_FLAGS"].split() == list(gpu_graphs.COMMAND_BUFFER_FLAGS)


def test_config_default_is_on_and_can_be_turned_off():
    assert load_config("tiny").trainer.cuda_graphs is True
    assert load_config("tiny", ["trainer.cuda_graphs=false"]).trainer.cuda_graphs is False


def _child(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python without XLA_FLAGS; it must exit 0."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_in_a_fresh_process_the_flags_reach_xla_and_cpu_runs_with_them():
    """Before JAX starts: added, and XLA accepts them (a CPU program still runs)."""
    code = ("import os, jax, jax.numpy as jnp\n"
            "from small_e_jax import gpu_graphs\n"
            "assert gpu_graphs.enable_cuda_graphs()\n"
            "print(float(jax.jit(lambda x: (x * 2).sum())(jnp.ones(4))))\n"
            "print(os.environ['XLA_FLAGS'])\n")
    done = _child(code)
    value, flags = done.stdout.strip().splitlines()
    assert value == "8.0" and flags.split() == list(gpu_graphs.COMMAND_BUFFER_FLAGS)


def test_after_jax_started_nothing_changes_and_a_warning_says_why():
    code = ("import os, jax\n"
            "jax.devices()\n"
            "from small_e_jax import gpu_graphs\n"
            "assert gpu_graphs.enable_cuda_graphs() is False\n"
            "print(repr(os.environ.get('XLA_FLAGS')))\n")
    done = _child(code)
    assert done.stdout.strip() == "None"
    assert "cannot change now" in done.stderr
