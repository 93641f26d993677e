"""``speech_folder``: any corpus folder or manifest given as ``manual_dir``.

Layouts: a manifest file (CSV with a header, or JSONL: ``path``, ``text``, optional ``speaker``,
``split``, ``id``), a folder holding ``manifest.jsonl``/``manifest.csv``, LJSpeech
(``metadata.csv`` + ``wavs/``) or LibriTTS (``*.wav`` + ``*.normalized.txt``). Utterances whose
manifest row names no split are split by ``validation`` (a count or a fraction with a floor, see
:func:`data_pipeline.sources.read_folder`); a validation split too small to mean anything is
warned about. User guide: ``docs/data.md``.
"""

from __future__ import annotations

import sys

from data_pipeline.builders.base import CodecBuilder
from data_pipeline.sources import DEFAULT_VALIDATION, Utterance, read_folder, validation_warning


class SpeechFolder(CodecBuilder):
    """Audio files with transcripts from a folder or a manifest (``manual_dir``)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = "Pass --manual_dir: a corpus folder or a manifest (.csv/.jsonl)."

    def utterances(self, dl_manager) -> list[Utterance]:
        utts = read_folder(self._manual_dir_path(), self._validation, issues=self.row_issues)
        warning = validation_warning(utts)
        if warning:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        return utts

    def _manual_dir_path(self):
        path = self._manual_dir_override
        if path is None:
            raise ValueError("speech_folder needs --manual_dir (a corpus folder or a manifest file)")
        return path

    def __init__(self, *, manual_dir: str | None = None, validation: float = DEFAULT_VALIDATION, **kwargs):
        self._manual_dir_override = manual_dir  # a manifest *file* is allowed, which tfds' manual_dir is not
        self._validation = validation
        super().__init__(**kwargs)
        self._original_state.update(manual_dir=manual_dir, validation=validation)
