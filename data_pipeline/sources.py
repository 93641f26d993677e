"""Utterance lists from corpus layouts: manifests (CSV/JSONL), LJSpeech, LibriTTS, the mini corpus.

Every reader returns :class:`Utterance` rows and does no audio I/O; bad files are found later,
when the audio is loaded (see :mod:`data_pipeline.encode`). Manifests are read row by row
(:mod:`data_pipeline.rows`): a bad or repeated row is reported with its file and line, not fatal.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from data_pipeline.rows import Issues, RowIssue, drop_duplicates, table_rows, text_lines, utf8

#: The fewest validation utterances a fraction gives (a 2% split of 20 clips would hold none).
VALIDATION_FLOOR = 2
#: Below this many validation utterances the build warns: the loss on so few says little.
VALIDATION_WARN_BELOW = 10
#: Default share of a corpus without splits of its own that goes to validation.
DEFAULT_VALIDATION = 0.02


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
    return "validation" if _hash_value(key) < validation_fraction else "train"


def _hash_value(key: str) -> float:
    return int(hashlib.sha1(key.strip().lower().encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def validation_count(total: int, validation: float) -> int:
    """How many of ``total`` utterances go to validation: ``validation`` >= 1 is a count, a value
    in (0, 1) a fraction (at least :data:`VALIDATION_FLOOR`), 0 none; at least one utterance is
    always left for training."""
    if validation < 0:
        raise ValueError(f"validation split {validation}: give a count (>= 1), a fraction (< 1) or 0")
    if total <= 1 or validation == 0:
        return 0
    n = int(validation) if validation >= 1 else max(VALIDATION_FLOOR, round(validation * total))
    return min(n, total - 1)


def pick_validation(keys: Iterable[str], validation: float) -> set[str]:
    """The keys (e.g. normalised texts) whose utterances form the validation split: whole keys,
    lowest hash first, until :func:`validation_count` utterances are reached. Deterministic, and
    no key (sentence) lands in both splits."""
    keys = [k.strip().lower() for k in keys]
    want = validation_count(len(keys), validation)
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    chosen: set[str] = set()
    got = 0
    for key in sorted(counts, key=lambda k: (_hash_value(k), k)):
        if got >= want:
            break
        if got + counts[key] > len(keys) - 1:  # never empty the training split
            continue
        chosen.add(key)
        got += counts[key]
    return chosen


def split_by_count(utts: list[Utterance], validation: float, keep: Iterable[str] = ()) -> list[Utterance]:
    """``utts`` with their splits redrawn by :func:`pick_validation` of their texts, except the
    ``keep`` source ids (rows whose manifest named their split)."""
    keep = set(keep)
    free = [u for u in utts if u.source_id not in keep]
    val = pick_validation([u.text or u.source_id for u in free], validation)
    return [u if u.source_id in keep else dataclasses.replace(
        u, split="validation" if (u.text or u.source_id).strip().lower() in val else "train") for u in utts]


def validation_warning(utts: list[Utterance]) -> Optional[str]:
    """A warning when the validation split is too small to mean anything, else None."""
    n = sum(u.split == "validation" for u in utts)
    if n >= VALIDATION_WARN_BELOW or not utts:
        return None
    return (f"the validation split holds {n} utterance{'s' if n != 1 else ''} of {len(utts)}: its loss says little "
            f"about unseen sentences (give --validation {VALIDATION_WARN_BELOW} or more where the corpus allows)")


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


def _named_splits(manifest: Path) -> set[str]:
    """Source ids of the manifest rows that name their split (kept as they are). Bad rows are
    skipped silently here: :func:`read_manifest` reports them."""
    out = set()
    for _, row in table_rows(manifest, Issues([]), required=("path", "text")):
        try:
            split, sid, audio = (_field(row, name).strip() for name in ("split", "id", "path"))
        except ValueError:
            continue
        if audio and split in ("train", "validation", "val", "valid", "dev"):
            out.add(sid or Path(audio).with_suffix("").as_posix())
    return out


def read_folder(root: str | Path, validation: float = DEFAULT_VALIDATION,
                issues: Optional[list[RowIssue]] = None) -> list[Utterance]:
    """Detect the layout of ``root``: a manifest file itself, ``manifest.{jsonl,csv}``,
    LJSpeech ``metadata.csv``, or LibriTTS ``*.normalized.txt`` files (bad rows go to ``issues``).

    ``validation``: how many utterances without a split of their own (a manifest's ``split``
    column wins) form the validation split: a count (>= 1) or a fraction (< 1, at least
    :data:`VALIDATION_FLOOR` utterances), chosen by sentence (see :func:`pick_validation`)."""
    root = Path(root)
    manifest = root if root.is_file() else next(
        (root / n for n in ("manifest.jsonl", "manifest.csv") if (root / n).exists()), None)
    if manifest is not None:
        return split_by_count(read_manifest(manifest, issues=issues), validation, keep=_named_splits(manifest))
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder {root} does not exist")
    if (root / "metadata.csv").exists():
        return split_by_count(read_ljspeech(root, issues=issues), validation)
    if next(root.rglob("*.normalized.txt"), None) is not None or next(root.rglob("*.wav"), None) is not None:
        return split_by_count(read_libritts(root, issues=issues), validation)
    raise ValueError(f"{root}: no manifest.jsonl/manifest.csv, LJSpeech metadata.csv or LibriTTS "
                     "*.wav + *.normalized.txt found")
