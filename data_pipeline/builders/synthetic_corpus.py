"""``synthetic_corpus``: the synthetic reading corpus made by ``data_pipeline.make_synthetic_corpus``.

``manual_dir`` is the corpus folder (its ``manifest.jsonl``). Splits as made there: ``train``,
``validation`` (held-out sentences read by training voices) and ``heldout_voices`` (held-out
sentences read by voices never in training: voice-cloning prompts and references).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from data_pipeline.builders.base import CodecBuilder
from data_pipeline.sources import Utterance, read_manifest


class SyntheticCorpus(CodecBuilder):
    """Many sentences read by 17 offline synthetic voices (espeak-ng, flite, Festival)."""

    SPLITS = ("train", "validation", "heldout_voices")
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Make the corpus with python -m data_pipeline.make_synthetic_corpus --out DIR "
                                    "and pass --manual_dir DIR.")

    def __init__(self, *, manual_dir: Optional[str] = None, **kwargs):
        self._corpus_dir = manual_dir
        super().__init__(**kwargs)
        self._original_state.update(manual_dir=manual_dir)

    def utterances(self, dl_manager) -> list[Utterance]:
        if not self._corpus_dir:
            raise ValueError("synthetic_corpus needs --manual_dir (a folder made by "
                             "python -m data_pipeline.make_synthetic_corpus)")
        manifest = Path(self._corpus_dir) / "manifest.jsonl"
        if not manifest.exists():
            raise FileNotFoundError(f"{manifest} is missing: make the corpus with "
                                    f"python -m data_pipeline.make_synthetic_corpus --out {self._corpus_dir}")
        return read_manifest(manifest, splits=self.SPLITS, issues=self.row_issues)
