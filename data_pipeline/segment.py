"""LibriLight segmentation: per-book FLAC + JSON ``voice_activity`` -> segments of at most 25 s.

LibriLight layout: ``<root>/<speaker>/<book>/<file>.flac`` beside ``<file>.json`` whose
``voice_activity`` is a list of ``[start, end]`` seconds of detected speech.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from data_pipeline.rows import Issues, RowIssue, drop_duplicates, table_rows


@dataclass(frozen=True)
class Segment:
    """A span of one file; ``segment_id`` = ``<speaker>/<book>/<file>_<k:04d>``."""

    segment_id: str
    path: str
    speaker: str
    book: str
    start: float
    end: float


def merge_spans(spans: list[tuple[float, float]], max_seconds: float = 25.0) -> list[tuple[float, float]]:
    """Greedily join consecutive voice-activity spans while the joined span stays <= max_seconds;
    a single span longer than that is cut into equal pieces (each <= max_seconds)."""
    out: list[tuple[float, float]] = []
    cur = None
    for s, e in sorted((float(a), float(b)) for a, b in spans):
        if e <= s:
            continue
        if e - s > max_seconds:
            if cur:
                out.append(cur)
                cur = None
            n = math.ceil((e - s) / max_seconds)
            step = (e - s) / n
            out.extend((s + k * step, s + (k + 1) * step) for k in range(n))
            continue
        if cur is not None and e - cur[0] <= max_seconds:
            cur = (cur[0], e)
        else:
            if cur:
                out.append(cur)
            cur = (s, e)
    return out + ([cur] if cur else [])


def librilight_segments(root: str | Path, max_seconds: float = 25.0) -> Iterator[Segment]:
    """Segments of every ``*.flac`` under ``root`` that has a JSON with ``voice_activity``."""
    root = Path(root)
    for flac in sorted(root.rglob("*.flac")):
        meta_path = flac.with_suffix(".json")
        rel = flac.relative_to(root)
        speaker = rel.parts[0] if len(rel.parts) > 2 else ""
        book = rel.parts[1] if len(rel.parts) > 2 else flac.parent.name
        spans = json.loads(meta_path.read_text()).get("voice_activity", []) if meta_path.exists() else []
        stem = rel.with_suffix("").as_posix()
        for k, (s, e) in enumerate(merge_spans(spans, max_seconds)):
            yield Segment(f"{stem}_{k:04d}", str(flac), speaker, book, round(s, 3), round(e, 3))


def read_transcripts(path: str | Path, issues: Optional[list[RowIssue]] = None) -> dict[str, str]:
    """``{segment_id: text}`` from a JSONL (``id``, ``text``) or CSV (header with ``id``, ``text``).
    Row by row: a bad row or a row without ``id`` goes to ``issues`` (logged when ``None``); of
    rows with the same id the first is kept."""
    sink = Issues(issues)
    kept = drop_duplicates(table_rows(path, sink, required=("id",)), lambda r: str(r["id"]).strip(), path, sink)
    return {str(r["id"]).strip(): str(r.get("text") or "") for r in kept}
