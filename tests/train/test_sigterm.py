"""SIGTERM during training (the experiment entry point in a subprocess) saves a checkpoint,
exits with 143, releases the trainer lock, and the checkpoint restores."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from small_e_jax import train
from small_e_jax.checkpoint import Checkpointer
from small_e_jax.config import config_to_dict
from tests.train.conftest import BASE_OVERRIDES, source, train_config

ROOT = Path(__file__).resolve().parents[2]


def test_sigterm_saves_a_restorable_checkpoint(tmp_path, shared_trainer, record_property):
    args = [sys.executable, "-m", "experiments.librilight_medium", "--data=synthetic", "--config", "tiny",
            f"trainer.workdir={tmp_path}", *BASE_OVERRIDES, "trainer.steps=100000", "trainer.log_every=1",
            "checkpoint.save_every_steps=100000"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 600
    try:
        for line in proc.stdout:
            lines.append(line)
            if "[train step 3]" in line:
                proc.send_signal(signal.SIGTERM)
                break
            assert time.monotonic() < deadline, "child did not reach step 3"
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines) + out
    assert proc.returncode == 143, output[-3000:]
    assert "SIGTERM: saved step" in output
    assert not (tmp_path / "checkpoints" / "trainer.lock").exists()  # released on the SIGTERM path
    config = train_config(tmp_path, "trainer.steps=100000")
    checkpointer = Checkpointer(train.checkpoint_dir(config), config.checkpoint)
    steps = checkpointer.all_steps()
    assert len(steps) == 1 and steps[0] >= 3  # only the SIGTERM save (periodic saves are off)
    state, meta = checkpointer.restore(shared_trainer.init_state(), source(config).train_iterator(),
                                       config_to_dict(config))
    assert int(state.step) == meta["step"] == steps[0]
    assert "Traceback" not in output
    record_property("bad_input", "clear")  # a counted case of the bad-input suite (tests/badinput)
