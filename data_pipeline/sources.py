"""Utterance lists from corpus layouts: manifests (CSV/JSONL), LJSpeech, LibriTTS, the mini corpus.

Every reader returns :class:`Utterance` rows and does no audio I/O; bad files are found later,
when the audio is loaded (see :mod:`data_pipeline.encode`). Manifests are read row by row
(:mod:`data_pipeline.rows`): a bad or repeated row is reported with its file and line, not fatal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from data_pipeline.rows import Issues, RowIssue, drop_duplicates, table_rows, text_lines, utf8


@dataclass(frozen=True)
class Utterance:
    """One (audio span, transcript) pair; ``end=None`` means to the end of the file."""

    source_id: str
    path: str
    text: str
    speaker: str = ""
    split: str = "train"
    start: float = 0.0
    end: Optional[float] = None


def hash_split(key: str, validation_fraction: float) -> str:
    """Deterministic split from a key (e.g. the normalised text: no sentence is in both splits)."""
    h = int(hashlib.sha1(key.strip().lower().encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if h < validation_fraction else "train"


def _split_of(row: dict, text: str, validation_fraction: float,
              splits: tuple[str, ...] = ("train", "validation")) -> str:
    split = (row.get("split") or "").strip()
    if split in ("val", "valid", "dev"):
        split = "validation"
    return split if split in splits else hash_split(text, validation_fraction)


def read_rows(path: str | Path, issues: Optional[list[RowIssue]] = None) -> list[dict]:
    """The rows of a JSONL file (one object a line) or a CSV file with a header row; bad rows go
    to ``issues`` (file, line, reason; logged when ``None``) instead of ending the read."""
    return [row for _, row in table_rows(path, Issues(issues))]


def _field(row: dict, name: str) -> str:
    value = row.get(name)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)):
        raise ValueError(f"field {name!r} must be text, got {type(value).__name__}")
    return str(value)


def _no_usable_rows(path: Path, issues: list[RowIssue]) -> ValueError:
    return ValueError(f"{path}: no usable row ({len(issues)} bad; first: {issues[0]})")


def read_manifest(path: str | Path, validation_fraction: float = 0.02,
                  splits: tuple[str, ...] = ("train", "validation"),
                  issues: Optional[list[RowIssue]] = None) -> list[Utterance]:
    """A CSV (header row) or JSONL manifest with ``path`` and ``text`` (optional ``speaker``,
    ``split``, ``id``); relative audio paths are relative to the manifest's folder. A row's split
    is kept when it is one of ``splits``, else drawn by :func:`hash_split` of its text.

    Read row by row: a bad row (not UTF-8, malformed, without ``path`` or ``text``) goes to
    ``issues`` with its line number; of rows with the same id the first is kept (the others go
    to ``issues`` too). An empty ``text`` is kept here and reported by the encoder with its audio.
    A manifest with rows but none usable is an error (ValueError)."""
    path = Path(path)
    found: list[RowIssue] = []
    sink = Issues(found)
    numbered = []
    for number, row in table_rows(path, sink, required=("path", "text")):
        try:
            audio_field, text = _field(row, "path").strip(), _field(row, "text").strip()
            sid = _field(row, "id").strip()
            speaker, split = _field(row, "speaker"), _field(row, "split")
        except ValueError as exc:
            sink.add(path, number, f"bad field: {exc}")
            continue
        if not audio_field:
            sink.add(path, number, "missing field: path is empty")
            continue
        audio = Path(audio_field) if Path(audio_field).is_absolute() else path.parent / audio_field
        sid = sid or Path(audio_field).with_suffix("").as_posix()
        numbered.append((number, Utterance(sid, str(audio), text, speaker,
                                           _split_of({"split": split}, text, validation_fraction, splits))))
    out = drop_duplicates(numbered, lambda u: u.source_id, path, sink)
    _hand_over(found, issues)
    if not out and found:
        raise _no_usable_rows(path, found)
    return out


def _hand_over(found: list[RowIssue], issues: Optional[list[RowIssue]]) -> None:
    """Pass a reader's issues to the caller's list, or log them (never dropped silently)."""
    found.sort(key=lambda issue: issue.line)
    if issues is not None:
        issues.extend(found)
    else:
        for issue in found:
            Issues(None).add(issue.file, issue.line, issue.reason)


def read_ljspeech(root: str | Path, validation_fraction: float = 0.02,
                  issues: Optional[list[RowIssue]] = None) -> list[Utterance]:
    """LJSpeech: ``metadata.csv`` rows ``id|text|normalized_text``, audio in ``wavs/<id>.wav``.
    Row by row as :func:`read_manifest`: a line that is not UTF-8 or has no ``|`` is an issue,
    a repeated id is kept once."""
    root = Path(root)
    metadata = root / "metadata.csv"
    found: list[RowIssue] = []
    sink = Issues(found)
    numbered = []
    for number, line in text_lines(metadata, sink):
        parts = line.split("|")
        if len(parts) < 2 or not parts[0].strip():
            sink.add(metadata, number, "malformed row: expected id|text|normalized_text")
            continue
        sid = parts[0].strip()
        text = (parts[2] if len(parts) > 2 and parts[2].strip() else parts[1]).strip()
        numbered.append((number, Utterance(sid, str(root / "wavs" / f"{sid}.wav"), text, "ljspeech",
                                           hash_split(text, validation_fraction))))
    out = drop_duplicates(numbered, lambda u: u.source_id, metadata, sink)
    _hand_over(found, issues)
    if not out and found:
        raise _no_usable_rows(metadata, found)
    return out


def read_libritts(root: str | Path, validation_fraction: float = 0.02,
                  issues: Optional[list[RowIssue]] = None) -> list[Utterance]:
    """LibriTTS: ``<speaker>_<chapter>_...wav`` beside ``.normalized.txt``; a missing transcript
    gives an empty text (reported as bad input later, not dropped silently); a transcript that is
    not UTF-8 is an issue (that utterance is skipped)."""
    found: list[RowIssue] = []
    out = []
    for wav in sorted(Path(root).rglob("*.wav")):
        txt = wav.with_suffix(".normalized.txt")
        text = ""
        if txt.exists():
            decoded, reason = utf8(txt.read_bytes())
            if decoded is None:
                Issues(found).add(txt, 1, reason)
                continue
            text = decoded.strip()
        out.append(Utterance(wav.stem, str(wav), text, wav.stem.split("_")[0],
                             hash_split(text or wav.stem, validation_fraction)))
    _hand_over(found, issues)
    return out


def read_folder(root: str | Path, validation_fraction: float = 0.02,
                issues: Optional[list[RowIssue]] = None) -> list[Utterance]:
    """Detect the layout of ``root``: a manifest file itself, ``manifest.{jsonl,csv}``,
    LJSpeech ``metadata.csv``, or LibriTTS ``*.normalized.txt`` files (bad rows go to ``issues``)."""
    root = Path(root)
    if root.is_file():
        return read_manifest(root, validation_fraction, issues=issues)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder {root} does not exist")
    for name in ("manifest.jsonl", "manifest.csv"):
        if (root / name).exists():
            return read_manifest(root / name, validation_fraction, issues=issues)
    if (root / "metadata.csv").exists():
        return read_ljspeech(root, validation_fraction, issues=issues)
    if next(root.rglob("*.normalized.txt"), None) is not None or next(root.rglob("*.wav"), None) is not None:
        return read_libritts(root, validation_fraction, issues=issues)
    raise ValueError(f"{root}: no manifest.jsonl/manifest.csv, LJSpeech metadata.csv or LibriTTS "
                     "*.wav + *.normalized.txt found")
