"""Utterances -> TFDS examples: load + check audio, tokenize text, codec-encode in length-sorted
batches, cache each chunk on disk (a crashed build resumes where it stopped), report bad input.

Example (what the builders store):
  ``codes`` int16 ``[n_q, F]``, ``text`` str, ``text_tokens`` int32 ``[J]`` (BOS … EOS),
  ``speaker`` str, ``duration`` float32 seconds, ``source_id`` str.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
from tqdm import tqdm

from data_pipeline.audio_io import AudioLimits, BadInput, load_audio
from data_pipeline.sources import Utterance


@dataclass
class BuildReport:
    """Skipped utterances (path, reason) and counts; written as ``<stem>.jsonl`` + ``<stem>.summary.json``."""

    path: Optional[Path] = None  # stem; None = keep in memory only
    skipped: list[dict] = field(default_factory=list)
    kept: int = 0
    seconds: float = 0.0

    def skip(self, utt: Utterance, reason: str) -> None:
        self.skipped.append({"path": utt.path, "source_id": utt.source_id, "reason": reason})

    def summary(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for s in self.skipped:
            kind = s["reason"].split(":")[0].split(" (")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
        return {"kept": self.kept, "skipped": len(self.skipped), "hours": round(self.seconds / 3600, 4),
                "skipped_by_reason": reasons}

    def write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.jsonl", "w") as f:
            for s in self.skipped:
                f.write(json.dumps(s) + "\n")
        Path(f"{self.path}.summary.json").write_text(json.dumps(self.summary(), indent=1) + "\n")


def tokenize_text(tokenizer: Any, text: str) -> np.ndarray:
    """Token ids ``[J]`` int32; raises BadInput for an empty or unencodable transcript."""
    if not text or not text.strip():
        raise BadInput("missing or empty transcript")
    try:
        return np.asarray(tokenizer.encode(text), np.int32)
    except ValueError as exc:  # UnencodableCharacterError names the character
        raise BadInput(f"unencodable transcript: {exc}") from None


def length_batches(lengths: Sequence[int], max_samples: int, max_batch: int) -> list[list[int]]:
    """Indices grouped by similar length: sorted, then cut so ``B * longest <= max_samples``."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches, cur = [], []
    for i in order:
        if cur and ((len(cur) + 1) * lengths[i] > max_samples or len(cur) >= max_batch):
            batches.append(cur)
            cur = []
        cur.append(int(i))
    return batches + ([cur] if cur else [])


class Encoder:
    """Turns utterances into examples with one codec; stateless apart from the codec."""

    def __init__(self, codec: Any, tokenizer: Any, limits: AudioLimits = AudioLimits(), *,
                 batch_seconds: float = 60.0, max_batch: int = 32):
        self.codec, self.tokenizer, self.limits = codec, tokenizer, limits
        self.max_samples = int(batch_seconds * codec.sample_rate)
        self.max_batch = max_batch

    def encode_chunk(self, utts: Sequence[Utterance], progress: Callable[[int], Any] = lambda n: None
                     ) -> tuple[list[Optional[dict]], list[tuple[int, str]]]:
        """Examples (None where skipped) and the (index, reason) of each skipped utterance;
        ``progress(n)`` is called as utterances are done (for the progress bar)."""
        examples: list[Optional[dict]] = [None] * len(utts)
        bad, wavs, tokens, good = [], [], [], []
        for i, u in enumerate(utts):
            try:
                tok = tokenize_text(self.tokenizer, u.text)
                wav = load_audio(u.path, self.codec.sample_rate, self.limits, u.start, u.end)
            except BadInput as exc:
                bad.append((i, str(exc)))
                continue
            good.append(i); wavs.append(wav); tokens.append(tok)
        progress(len(bad))
        lengths = [len(w) for w in wavs]
        for batch in length_batches(lengths, self.max_samples, self.max_batch):
            try:
                self._encode_batch(utts, batch, good, wavs, tokens, lengths, examples)
            except Exception as exc:  # one clip the codec rejects must not end the build: retry singly
                if len(batch) == 1:
                    bad.append((good[batch[0]], f"codec error ({type(exc).__name__}: {exc})"))
                else:
                    for j in batch:
                        try:
                            self._encode_batch(utts, [j], good, wavs, tokens, lengths, examples)
                        except Exception as exc1:
                            bad.append((good[j], f"codec error ({type(exc1).__name__}: {exc1})"))
            progress(len(batch))
        return examples, bad

    def _encode_batch(self, utts: Sequence[Utterance], batch: list[int], good: list[int], wavs: list[np.ndarray],
                      tokens: list[np.ndarray], lengths: list[int], examples: list[Optional[dict]]) -> None:
        """Encode ``batch`` (indices into the loaded clips) and fill ``examples`` in place."""
        longest = max(lengths[j] for j in batch)
        # Batch rows padded to a power of two (the codec already buckets the time axis), so
        # the jit-compiled encoder sees few shapes; filler rows are one hop of silence.
        rows = 1 << (len(batch) - 1).bit_length()
        pad = np.zeros((rows, longest), np.float32)
        lens = [self.codec.hop_length] * rows
        for r, j in enumerate(batch):
            pad[r, : lengths[j]] = wavs[j]
            lens[r] = lengths[j]
        codes, frames = self.codec.encode_with_lengths(pad, self.codec.sample_rate, lens)
        codes, frames = np.asarray(codes), np.asarray(frames)
        for r, j in enumerate(batch):
            u = utts[good[j]]
            examples[good[j]] = {
                "codes": codes[r, :, : frames[r]].astype(np.int16),  # codebook_size <= 32768
                "text": u.text, "text_tokens": tokens[j], "speaker": u.speaker,
                "duration": np.float32(lengths[j] / self.codec.sample_rate), "source_id": u.source_id}


def _chunk_key(utts: Sequence[Utterance], codec_id: str) -> str:
    h = hashlib.sha1(codec_id.encode())
    for u in utts:
        h.update(repr(u).encode())
    return h.hexdigest()[:16]


def generate_examples(utts: Sequence[Utterance], encoder: Encoder, report: BuildReport, *,
                      cache_dir: Optional[Path] = None, codec_id: str = "", chunk_size: int = 128,
                      desc: str = "encode") -> Iterator[tuple[str, dict]]:
    """Yield ``(key, example)`` for every good utterance; bad ones go to ``report``.

    With ``cache_dir``, each chunk of ``chunk_size`` utterances is pickled there once encoded, so a
    build that dies part-way re-encodes only the chunks it had not finished.
    """
    bar = tqdm(total=len(utts), desc=desc, unit="utt", dynamic_ncols=True)
    for start in range(0, len(utts), chunk_size):
        chunk = utts[start: start + chunk_size]
        name = f"chunk_{start // chunk_size:06d}_{_chunk_key(chunk, codec_id)}.pkl"
        cache = None if cache_dir is None else cache_dir / name
        if cache is not None and cache.exists():
            examples, bad = pickle.loads(cache.read_bytes())
            bar.update(len(chunk))
        else:
            examples, bad = encoder.encode_chunk(chunk, bar.update)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(pickle.dumps((examples, bad)))
                tmp.replace(cache)  # atomic: a half-written chunk is never read back
        for i, reason in bad:
            report.skip(chunk[i], reason)
        for i, ex in enumerate(examples):
            if ex is not None:
                report.kept += 1
                report.seconds += float(ex["duration"])
                yield f"{start + i:09d}", ex
        bar.set_postfix(kept=report.kept, skipped=len(report.skipped))
    bar.close()
    report.write()
