"""Manifest files read row by row: a bad row is reported (file, line, reason) and skipped, never fatal.

Every reader yields ``(line number, fields)`` for the good rows and appends a :class:`RowIssue`
to ``issues`` for each bad one: bytes that are not UTF-8, malformed JSON or CSV, a row that is
not an object, a missing field. :func:`drop_duplicates` applies the duplicate rule: of the rows
sharing an id, the first is kept and each later one is reported and dropped.

``issues=None`` logs each issue as a warning instead (a bad row is never dropped silently).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RowIssue:
    """One skipped row: where it is and why (``reason`` starts with its kind, e.g. ``not UTF-8: ...``)."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def as_report(self) -> dict:
        """The row as a build-report entry (same keys as a skipped utterance, plus ``line``)."""
        return {"path": self.file, "line": self.line, "source_id": "", "reason": self.reason}


class Issues:
    """Where a reader puts its issues: a caller's list, or the log when there is none."""

    def __init__(self, sink: Optional[list[RowIssue]]):
        self.sink = sink

    def add(self, file: str | Path, line: int, reason: str) -> None:
        issue = RowIssue(str(file), line, reason)
        if self.sink is None:
            log.warning("skipped %s", issue)
        else:
            self.sink.append(issue)


def utf8(raw: bytes) -> tuple[Optional[str], str]:
    """``(text, "")`` or ``(None, reason)`` for one line of bytes."""
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"


def text_lines(path: Path, issues: Issues) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of the non-blank lines; a line that is not UTF-8 is an issue.
    Decoded line by line so that one bad byte costs one row, not the file."""
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        text, reason = utf8(raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw)  # a BOM is no error
        if text is None:
            issues.add(path, number, reason)
        elif text.strip():
            yield number, text


def jsonl_rows(path: Path, issues: Issues) -> Iterator[tuple[int, dict]]:
    """One JSON object a line."""
    for number, text in text_lines(path, issues):
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            issues.add(path, number, f"malformed JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(row, dict):
            issues.add(path, number, f"malformed JSON: expected an object, got {type(row).__name__}")
            continue
        yield number, row


def _has_undecoded(values: Sequence[str]) -> bool:
    """Whether ``surrogateescape`` had to stand in for a byte that is not UTF-8."""
    return any("\udc80" <= ch <= "\udcff" for v in values for ch in v)


def csv_rows(path: Path, issues: Issues) -> Iterator[tuple[int, dict]]:
    """A CSV file whose first row is the header; each row must have as many fields as the header."""
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        if _has_undecoded(header):
            raise ValueError(f"{path}:1: the header row is not UTF-8")
        header = [h.strip() for h in header]
        while True:
            start = reader.line_num + 1  # the record's first line (a quoted field may span lines)
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                issues.add(path, start, f"malformed CSV: {exc}")
                continue
            if not fields or not any(v.strip() for v in fields):
                continue
            if _has_undecoded(fields):
                issues.add(path, start, "not UTF-8: the row holds bytes that are not UTF-8")
            elif len(fields) != len(header):
                issues.add(path, start, f"malformed CSV: {len(fields)} fields, the header has {len(header)}")
            else:
                yield start, dict(zip(header, fields))


def table_rows(path: str | Path, issues: Issues, required: Sequence[str] = ()) -> list[tuple[int, dict]]:
    """The rows of a JSONL (``.jsonl``/``.json``) or CSV file that hold every field of ``required``
    (a row without one is an issue; a CSV header without one is a file error: ValueError)."""
    path = Path(path)
    is_json = path.suffix in (".jsonl", ".json")
    out = []
    for number, row in (jsonl_rows(path, issues) if is_json else csv_rows(path, issues)):
        if not is_json and not set(required) <= set(row):
            raise ValueError(f"manifest {path} needs columns {' and '.join(map(repr, required))}; found {sorted(row)}")
        missing = [k for k in required if row.get(k) is None]
        if missing:
            issues.add(path, number, f"missing field: {', '.join(missing)}")
            continue
        out.append((number, row))
    return out


def drop_duplicates(items: Sequence[tuple[int, T]], key: Callable[[T], str], path: str | Path,
                    issues: Issues) -> list[T]:
    """Items in order, each key once: the first row with a key is kept, a later one is reported and dropped."""
    first: dict[str, int] = {}
    out = []
    for number, item in items:
        k = key(item)
        if k in first:
            issues.add(path, number, f"duplicate row: id {k!r} is already at line {first[k]}; this row is dropped")
            continue
        first[k] = number
        out.append(item)
    return out
