"""Utterance lists from corpus layouts: manifests (CSV/JSONL), LJSpeech, LibriTTS, the mini corpus.

Every reader returns :class:`Utterance` rows and does no audio I/O; bad files are found later,
when the audio is loaded (see :mod:`data_pipeline.encode`).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


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


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a JSONL file (one object a line) or a CSV file with a header row."""
    path = Path(path)
    if path.suffix in (".jsonl", ".json"):
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_manifest(path: str | Path, validation_fraction: float = 0.02,
                  splits: tuple[str, ...] = ("train", "validation")) -> list[Utterance]:
    """A CSV (header row) or JSONL manifest with ``path`` and ``text`` (optional ``speaker``,
    ``split``, ``id``); relative audio paths are relative to the manifest's folder. A row's split
    is kept when it is one of ``splits``, else drawn by :func:`hash_split` of its text."""
    path = Path(path)
    rows = read_rows(path)
    if rows and not {"path", "text"} <= set(rows[0]):
        raise ValueError(f"manifest {path} needs columns 'path' and 'text'; found {sorted(rows[0])}")
    out = []
    for row in rows:
        audio = Path(row["path"]) if Path(row["path"]).is_absolute() else path.parent / row["path"]
        text = (row.get("text") or "").strip()
        sid = str(row.get("id") or Path(row["path"]).with_suffix("").as_posix())
        out.append(Utterance(sid, str(audio), text, str(row.get("speaker") or ""),
                             _split_of(row, text, validation_fraction, splits)))
    return out


def read_ljspeech(root: str | Path, validation_fraction: float = 0.02) -> list[Utterance]:
    """LJSpeech: ``metadata.csv`` rows ``id|text|normalized_text``, audio in ``wavs/<id>.wav``."""
    root = Path(root)
    out = []
    for line in (root / "metadata.csv").read_text(encoding="utf-8").splitlines():
        parts = line.split("|")
        if not parts[0]:
            continue
        text = (parts[2] if len(parts) > 2 and parts[2].strip() else parts[1] if len(parts) > 1 else "").strip()
        out.append(Utterance(parts[0], str(root / "wavs" / f"{parts[0]}.wav"), text, "ljspeech",
                             hash_split(text, validation_fraction)))
    return out


def read_libritts(root: str | Path, validation_fraction: float = 0.02) -> list[Utterance]:
    """LibriTTS: ``<speaker>_<chapter>_...wav`` beside ``.normalized.txt``; a missing transcript
    gives an empty text (reported as bad input later, not dropped silently)."""
    out = []
    for wav in sorted(Path(root).rglob("*.wav")):
        txt = wav.with_suffix(".normalized.txt")
        text = txt.read_text(encoding="utf-8").strip() if txt.exists() else ""
        out.append(Utterance(wav.stem, str(wav), text, wav.stem.split("_")[0],
                             hash_split(text or wav.stem, validation_fraction)))
    return out


def read_folder(root: str | Path, validation_fraction: float = 0.02) -> list[Utterance]:
    """Detect the layout of ``root``: a manifest file itself, ``manifest.{jsonl,csv}``,
    LJSpeech ``metadata.csv``, or LibriTTS ``*.normalized.txt`` files."""
    root = Path(root)
    if root.is_file():
        return read_manifest(root, validation_fraction)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder {root} does not exist")
    for name in ("manifest.jsonl", "manifest.csv"):
        if (root / name).exists():
            return read_manifest(root / name, validation_fraction)
    if (root / "metadata.csv").exists():
        return read_ljspeech(root, validation_fraction)
    if next(root.rglob("*.normalized.txt"), None) is not None or next(root.rglob("*.wav"), None) is not None:
        return read_libritts(root, validation_fraction)
    raise ValueError(f"{root}: no manifest.jsonl/manifest.csv, LJSpeech metadata.csv or LibriTTS "
                     "*.wav + *.normalized.txt found")
