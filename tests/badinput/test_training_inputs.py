"""Training against a workdir that is not usable: one ``error:`` line and the documented exit
code, and the checkpoints already there are left as they were."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["--data=synthetic", "--config", "tiny", "trainer.steps=4", "optimizer.warmup_steps=1",
        "checkpoint.save_every_steps=2", "trainer.progress_bar=false", "trainer.tensorboard=false",
        "model.text_layers=1", "mesh.data=1"]


def test_concurrent_trainer_refused(expect_error, tmp_path):
    """A second trainer on a workdir whose lock a live process holds: exit 2, lock untouched."""
    from experiments.librilight_medium import main

    lock = tmp_path / "run" / "checkpoints" / "trainer.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                "started_at": "2024-01-01T00:00:00+00:00"}))
    expect_error(main, [*TINY, f"trainer.workdir={tmp_path / 'run'}"], 2,
                 r"checkpoints is in use by another trainer \(pid \d+ on .*\); stop it, or delete", keep=[lock.parent])


def _train(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.librilight_medium", *TINY, f"trainer.workdir={workdir}"],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])


@pytest.mark.slow
def test_every_checkpoint_corrupt_is_one_line_without_noise(record_property, tmp_path):
    """The real command line (a subprocess: the orbax/asyncio noise is printed at interpreter
    exit): every step corrupt ends with exit 1 and exactly one line on stderr, steps kept."""
    from tests.badinput.conftest import _fingerprint, classify

    workdir = tmp_path / "run"
    assert _train(workdir).returncode == 0
    directory = workdir / "checkpoints"
    for data in (p for p in directory.rglob("*") if p.is_file() and p.parent.name == "d"):
        data.write_bytes(data.read_bytes()[:10])  # what a save killed mid-write leaves
    before = _fingerprint([directory])
    done = _train(workdir)
    outcome = classify(done.returncode, done.stderr, 1, r"no readable checkpoint in .*checkpoints \(all 2 steps")
    record_property("bad_input", outcome)
    assert outcome == "clear", done.stderr[-3000:]
    assert done.stderr.strip().count("\n") == 0  # no "Event loop is closed" tracebacks around it
    after = _fingerprint([directory])
    assert {k: v for k, v in after.items() if not k.endswith("trainer.lock")} == \
        {k: v for k, v in before.items() if not k.endswith("trainer.lock")}
