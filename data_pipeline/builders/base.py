"""Shared TFDS machinery: features, codec/tokenizer set-up, split generation through the encoder.

A builder subclass only says where its utterances come from (:meth:`CodecBuilder.utterances`).
The builder config name is the codec name, so codes of different codecs live side by side in
``<data_dir>/<dataset>/<codec>/<version>``. Bad-input reports go to
``<data_dir>/reports/<dataset>_<codec>_<split>.{jsonl,summary.json}``; manifest rows that could
not be read (file, line, reason) or repeat an id go to ``<dataset>_<codec>_rows.{jsonl,summary.json}``. The build records its codec
in the TFDS metadata (``metadata.json`` beside ``dataset_info.json``): ``codec``, ``codec_weights``
(``"bundled"``, a directory, or ``None`` for random weights) and ``n_q``; the trainer reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import tensorflow_datasets as tfds

from data_pipeline.audio_io import AudioLimits
from data_pipeline.encode import BuildReport, Encoder, generate_examples
from data_pipeline.rows import RowIssue
from data_pipeline.sources import Utterance

SPLITS = ("train", "validation")


class CodecBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the builders: audio + text -> codec codes, text tokens, metadata (ArrayRecord)."""

    VERSION = tfds.core.Version("1.0.0")
    SPLITS: tuple[str, ...] = SPLITS  # the splits a builder writes (a subclass may add its own)

    def __init__(self, *, codec: str = "dac_24khz", codec_weights: Optional[str] = None, n_q: int = 4,
                 codec_obj: Any = None, max_examples: Optional[int] = None,
                 limits: AudioLimits = AudioLimits(), chunk_size: int = 64, **kwargs: Any):
        """``codec_obj`` (tests) replaces the codec loaded by name; ``max_examples`` caps each split."""
        config = kwargs.pop("config", None)  # set when TFDS unpickles a builder (grain workers)
        if config is not None:
            codec = getattr(config, "name", config)
        if codec_obj is not None:
            n_q = codec_obj.n_q
        self._codec_name, self._codec_weights, self._n_q = codec, codec_weights, n_q
        self._codec = codec_obj
        self._max_examples, self._limits, self._chunk_size = max_examples, limits, chunk_size
        self.row_issues: list[RowIssue] = []  # manifest rows skipped by utterances() (file, line, reason)
        kwargs.setdefault("file_format", "array_record")
        super().__init__(config=tfds.core.BuilderConfig(name=codec), **kwargs)
        # What a pickled copy (a grain worker's data source) needs to re-open the dataset; not the codec.
        self._original_state.update(codec=codec, codec_weights=codec_weights, n_q=n_q)

    # -- what a subclass provides --------------------------------------------------------------
    def utterances(self, dl_manager: tfds.download.DownloadManager) -> list[Utterance]:
        raise NotImplementedError

    # -- tfds hooks ----------------------------------------------------------------------------
    def weights_label(self) -> Optional[str]:
        """How the metadata names the codec weights: ``"bundled"``, an absolute directory, or ``None``."""
        if self._codec_weights is None:
            return None
        from small_e_jax.codec import bundled_weights

        path = os.path.abspath(self._codec_weights)
        bundled = bundled_weights(self._codec_name)
        return "bundled" if bundled is not None and os.path.abspath(bundled) == path else path

    def _info(self) -> tfds.core.DatasetInfo:
        n_q = self._n_q
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            metadata=tfds.core.MetadataDict(codec=self._codec_name, codec_weights=self.weights_label(), n_q=n_q),
            features=tfds.features.FeaturesDict({
                "codes": tfds.features.Tensor(shape=(n_q, None), dtype=np.int16),
                "text": tfds.features.Text(),
                "text_tokens": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                "speaker": tfds.features.Text(),
                "duration": tfds.features.Scalar(dtype=np.float32),
                "source_id": tfds.features.Text(),
            }),
        )

    def codec(self) -> Any:
        if self._codec is None:
            from small_e_jax.codec import load_codec
            self._codec = load_codec(self._codec_name, self._codec_weights, n_q=self._n_q)
        return self._codec

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        self.row_issues = []  # filled again by utterances()
        utts = self.utterances(dl_manager)
        self._report_rows(len(utts))
        by_split = {s: [u for u in utts if u.split == s] for s in self.SPLITS}
        if self._max_examples is not None:
            by_split = {s: u[: self._max_examples] for s, u in by_split.items()}
        return {s: self._generate_examples(s, u) for s, u in by_split.items() if u}

    def _report_rows(self, kept: int) -> None:
        """Write the manifest rows skipped by :meth:`utterances` (file, line, reason) to
        ``reports/<dataset>_<codec>_rows.{jsonl,summary.json}`` and say so on the console."""
        report = BuildReport(Path(self._data_dir_root) / "reports" / f"{self.name}_{self.builder_config.name}_rows")
        report.skipped = [issue.as_report() for issue in self.row_issues]
        report.kept = kept
        report.write()
        if self.row_issues:
            summary = report.summary()
            print(f"[{self.name}] manifest rows: {kept} read, {summary['skipped']} skipped "
                  f"{summary['skipped_by_reason']} — report: {report.path}.jsonl", flush=True)

    def _generate_examples(self, split: str, utts: list[Utterance]):
        from small_e_jax.text import load_tokenizer
        root = Path(self._data_dir_root)
        stem = f"{self.name}_{self.builder_config.name}_{split}"
        report = BuildReport(root / "reports" / stem)
        encoder = Encoder(self.codec(), load_tokenizer(), self._limits)
        c = encoder.codec  # the cache is valid only for the same codec
        codec_id = f"{self._codec_name}:{self._codec_weights}:{c.n_q}:{c.sample_rate}:{c.hop_length}"
        yield from generate_examples(utts, encoder, report, cache_dir=root / "_encode_cache" / stem,
                                     codec_id=codec_id, chunk_size=self._chunk_size, desc=f"{self.name}/{split}")
        print(f"[{self.name}/{split}] {report.summary()} — report: {report.path}.jsonl", flush=True)

