"""Session-wide hooks: the bad-input suite's tally (tests/badinput), printed after the run.

Each bad-input case records its outcome as a ``bad_input`` user property (it travels with the
test report, so the tally also works with pytest-xdist, whose workers run the tests)."""

from __future__ import annotations

from collections import Counter

OUTCOMES = ("clear", "traceback", "silent", "wrong")  # see tests/badinput/conftest.py
_tally: Counter = Counter()


def pytest_runtest_logreport(report) -> None:
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == "bad_input":
            _tally[value] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    cases = sum(_tally.values())
    if cases:
        terminalreporter.write_line(
            f"bad-input suite: {cases} cases, {_tally['clear']} clear errors, {_tally['traceback']} tracebacks, "
            f"{_tally['silent']} silent, {_tally['wrong']} wrong exit code or message")
