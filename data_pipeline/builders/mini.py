"""``mini``: the bundled mini corpus (data_pipeline/mini_corpus, Harvard sentences, synthetic voices)."""

from __future__ import annotations

from pathlib import Path

from data_pipeline.builders.base import CodecBuilder
from data_pipeline.sources import Utterance, read_manifest

MINI_CORPUS = Path(__file__).resolve().parent.parent / "mini_corpus"


class Mini(CodecBuilder):
    """Harvard sentences (public domain) read by espeak-ng and Festival voices, 16 kHz Opus."""

    def utterances(self, dl_manager) -> list[Utterance]:
        manifest = MINI_CORPUS / "manifest.jsonl"
        if not manifest.exists():
            raise FileNotFoundError(f"{manifest} is missing: run python -m data_pipeline.make_mini_corpus")
        return read_manifest(manifest, issues=self.row_issues)
