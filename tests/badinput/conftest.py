"""The bad-input suite's check: run an entry point in-process, classify what the user would see.

Outcomes: ``clear`` (the expected exit code and exactly one ``error: ...`` line matching the
expected text, no traceback), ``traceback`` (a traceback reached stderr), ``silent`` (exit 0 or
no error line: the bad input went unnoticed), ``wrong`` (an error line, but another exit code or
message). Every case also checks that the files given as ``keep`` are unchanged (nothing already
written was lost)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import pytest


def _fingerprint(paths: Iterable[Path]) -> dict[str, Optional[str]]:
    """Content hash of every file under ``paths`` (None for a path that does not exist)."""
    out: dict[str, Optional[str]] = {}
    for root in map(Path, paths):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        if not root.exists():
            out[str(root)] = None
        for f in files:
            out[str(f)] = hashlib.sha1(f.read_bytes()).hexdigest()
    return out


def classify(code: Optional[int], err: str, expected_code: int, expected: str) -> str:
    """One of ``clear``, ``traceback``, ``silent``, ``wrong`` (see the module docstring)."""
    if "Traceback (most recent call last)" in err:
        return "traceback"
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    if code == 0 or not lines:
        return "silent"
    if code != expected_code or len(lines) != 1 or not re.search(expected, lines[0]):
        return "wrong"
    return "clear"


@pytest.fixture
def expect_error(capsys, record_property) -> Callable[..., str]:
    """``expect_error(main, argv, code, pattern, keep=())`` -> the error line; asserts a clear error
    and unchanged ``keep`` files, and records the outcome for the suite's tally."""

    def check(main: Callable[[Sequence[str]], int], argv: Sequence[str], code: int, pattern: str,
              keep: Iterable[Path] = ()) -> str:
        keep = list(keep)
        before = _fingerprint(keep)
        capsys.readouterr()
        try:
            got: Optional[int] = main(list(argv))
        except SystemExit as exc:  # argparse ends this way (its error already on one line)
            got = exc.code if isinstance(exc.code, int) else 2
        err = capsys.readouterr().err
        outcome = classify(got, err, code, pattern)
        record_property("bad_input", outcome)
        assert outcome == "clear", f"{outcome}: exit {got}, stderr:\n{err}"
        assert _fingerprint(keep) == before, "files written before the bad input changed"
        return next(line for line in err.splitlines() if line.startswith("error: "))

    return check


@pytest.fixture
def expect_reported(record_property) -> Callable[..., None]:
    """``expect_reported(issues, file, line, reason)``: for a bad row that must be skipped and
    reported while the build goes on. ``clear`` when exactly one issue names ``file``, ``line``
    and a reason starting with ``reason``; ``silent`` when nothing was reported; else ``wrong``."""

    def check(issues: Sequence, file: Path, line: int, reason: str) -> None:
        if not issues:
            outcome = "silent"
        elif len(issues) == 1 and (Path(issues[0].file), issues[0].line) == (Path(file), line) \
                and issues[0].reason.startswith(reason):
            outcome = "clear"
        else:
            outcome = "wrong"
        record_property("bad_input", outcome)
        assert outcome == "clear", [str(i) for i in issues]

    return check
