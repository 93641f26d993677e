"""``librilight_medium``: LibriLight (medium) from ``manual_dir``, cut by its VAD into <= 25 s segments.

Transcripts come from ``transcripts`` (JSONL/CSV ``id``, ``text``; ids as in
:mod:`data_pipeline.segment`), e.g. written by ``python -m data_pipeline.transcribe``. A segment
without a transcript is reported in the build report, never guessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from data_pipeline.builders.base import CodecBuilder
from data_pipeline.segment import librilight_segments, read_transcripts
from data_pipeline.sources import Utterance, hash_split


class LibrilightMedium(CodecBuilder):
    """LibriLight medium: VAD segments (<= 25 s) with transcripts from a manifest."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Download LibriLight medium (per-book FLAC + JSON) into --manual_dir and pass "
                                    "--transcripts (run python -m data_pipeline.transcribe to make one).")

    def __init__(self, *, manual_dir: Optional[str] = None, transcripts: Optional[str] = None,
                 max_segment_seconds: float = 25.0, validation_fraction: float = 0.01, **kwargs):
        self._root, self._transcripts = manual_dir, transcripts
        self._max_segment, self._val_fraction = max_segment_seconds, validation_fraction
        super().__init__(**kwargs)
        self._original_state.update(manual_dir=manual_dir, transcripts=transcripts,
                                    max_segment_seconds=max_segment_seconds, validation_fraction=validation_fraction)

    def utterances(self, dl_manager) -> list[Utterance]:
        if not self._root or not Path(self._root).is_dir():
            raise ValueError(f"librilight_medium needs --manual_dir (a LibriLight folder); got {self._root!r}")
        if not self._transcripts:
            raise ValueError("librilight_medium needs --transcripts (JSONL/CSV id,text); make one with "
                             "python -m data_pipeline.transcribe --manual_dir ... --out transcripts.jsonl")
        texts = read_transcripts(self._transcripts, self.row_issues)
        return [Utterance(s.segment_id, s.path, texts.get(s.segment_id, ""), s.speaker,
                          hash_split(s.book, self._val_fraction), s.start, s.end)  # split by book
                for s in librilight_segments(self._root, self._max_segment)]
