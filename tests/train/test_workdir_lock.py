"""One trainer per workdir: the lock holds pid, host and start time; a live holder (or one on
another host) is refused with one line, exit code 2 through the entry point; a stale lock is
taken over with a warning; the lock is gone after a normal run and after an exception."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import librilight_medium
from small_e_jax import train
from small_e_jax.workdir_lock import WorkdirLock, WorkdirLocked, read_lock
from tests.train.conftest import BASE_OVERRIDES, source, train_config


def _write_lock(path: Path, pid: int, host: str | None = None) -> dict:
    record = {"pid": pid, "host": host or socket.gethostname(), "started_at": "2025-01-01T00:00:00+00:00",
              "token": "other"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_lock_records_holder_and_is_released(tmp_path):
    path = tmp_path / "trainer.lock"
    with WorkdirLock(path) as lock:
        record = read_lock(path)
        assert record == lock.record
        assert (record["pid"], record["host"]) == (os.getpid(), socket.gethostname()) and record["started_at"]
        with pytest.raises(WorkdirLocked):  # not re-entrant: this process is alive
            WorkdirLock(path).acquire()
    assert not path.exists()


def test_live_holder_is_refused_with_one_line(tmp_path, sleeper):
    path = tmp_path / "trainer.lock"
    record = _write_lock(path, sleeper.pid)
    with pytest.raises(WorkdirLocked) as info:
        WorkdirLock(path).acquire()
    message = str(info.value)
    assert "\n" not in message and f"pid {sleeper.pid} on {socket.gethostname()}" in message
    assert "in use by another trainer" in message and str(path) in message
    assert read_lock(path) == record  # the holder's lock is untouched


def test_holder_on_another_host_is_refused(tmp_path):
    path = tmp_path / "trainer.lock"
    _write_lock(path, _dead_pid(), host="some-other-host.invalid")
    with pytest.raises(WorkdirLocked, match="another host"):
        WorkdirLock(path).acquire()


def test_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    path = tmp_path / "trainer.lock"
    dead = _dead_pid()
    _write_lock(path, dead)
    with caplog.at_level(logging.WARNING, logger="small_e_jax.workdir_lock"):
        lock = WorkdirLock(path).acquire()
    assert read_lock(path)["pid"] == os.getpid()
    assert [r.getMessage() for r in caplog.records] == [
        f"taking over a stale trainer lock {path} (pid {dead} on {socket.gethostname()}, "
        "started 2025-01-01T00:00:00+00:00: no such process)"]
    lock.release()
    assert not path.exists()


def test_release_leaves_another_holders_lock(tmp_path):
    path = tmp_path / "trainer.lock"
    lock = WorkdirLock(path).acquire()
    record = _write_lock(path, os.getpid())  # taken over meanwhile (another token)
    lock.release()
    assert read_lock(path) == record


class _CheckingSource:
    """The synthetic source, asserting that the run holds the lock when it asks for data."""

    def __init__(self, config, path: Path):
        self.inner, self.path = source(config), path

    def train_iterator(self):
        assert read_lock(self.path)["pid"] == os.getpid()
        return self.inner.train_iterator()

    def eval_batches(self):
        return self.inner.eval_batches()


def test_run_holds_the_lock_and_releases_it(tmp_path, shared_trainer):
    config = train_config(tmp_path, "trainer.steps=2", "optimizer.warmup_steps=1")
    path = train.lock_path(config)
    assert path == tmp_path.absolute() / "checkpoints" / "trainer.lock"
    # An exception inside the run (a trainer of another config) releases the lock ...
    with pytest.raises(ValueError, match="another model"):
        train.run(config, _CheckingSource(config, path), trainer=shared_trainer)
    assert not path.exists()
    # ... and so does a normal end.
    config = train_config(tmp_path)
    result = train.run(config, _CheckingSource(config, path), trainer=shared_trainer, stop_at_step=1)
    assert result.step == 1 and not path.exists()


def test_entry_point_refuses_a_second_trainer(tmp_path, sleeper, capsys):
    record = _write_lock(tmp_path / "checkpoints" / "trainer.lock", sleeper.pid)
    code = librilight_medium.main(["--data=synthetic", "--config", "tiny", f"trainer.workdir={tmp_path}",
                                   *BASE_OVERRIDES])
    text = capsys.readouterr().err
    err = [line for line in text.splitlines() if line.startswith("error:")]  # tiny's cuda_graphs warns on CPU
    assert code == 2 and "Traceback" not in text
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path.absolute()}/checkpoints is in use by another "
                                               f"trainer (pid {sleeper.pid} on ")
    assert read_lock(tmp_path / "checkpoints" / "trainer.lock") == record
    assert not (tmp_path / "checkpoints" / "1").exists()
