"""Word and character error rates with ``jiwer``, after :func:`small_e_jax.eval.text_norm.normalize`.

Corpus-level rates (``errors / reference words``, not a mean of per-utterance rates), as is usual
for WER; per-utterance rates are reported beside them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import jiwer

from small_e_jax.eval.text_norm import normalize


@dataclasses.dataclass
class ErrorRates:
    """Corpus-level WER/CER and the word-level edit counts behind the WER."""

    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int
    utterances: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _prepare(refs: Sequence[str], hyps: Sequence[str], normalizer: Optional[Callable[[str], str]]
             ) -> tuple[list[str], list[str]]:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("no utterances to score")
    norm = normalizer or (lambda s: s)
    refs_n, hyps_n = [norm(r) for r in refs], [norm(h) for h in hyps]
    empty = [i for i, r in enumerate(refs_n) if not r.split()]
    if empty:
        raise ValueError(f"reference(s) {empty[:5]} are empty after normalisation; WER is undefined")
    return refs_n, hyps_n


def error_rates(refs: Sequence[str], hyps: Sequence[str], *,
                normalizer: Optional[Callable[[str], str]] = normalize) -> ErrorRates:
    """WER and CER of ``hyps`` against ``refs`` (lists of utterances, same length).

    ``normalizer`` is applied to both sides (None = compare the strings as given). An empty
    hypothesis is allowed (all its reference words are deletions); an empty reference is not.
    """
    refs_n, hyps_n = _prepare(refs, hyps, normalizer)
    words = jiwer.process_words(refs_n, hyps_n)
    chars = jiwer.process_characters(refs_n, hyps_n)
    n_ref = sum(len(r.split()) for r in refs_n)
    return ErrorRates(wer=float(words.wer), cer=float(chars.cer), substitutions=words.substitutions,
                      deletions=words.deletions, insertions=words.insertions, reference_words=n_ref,
                      utterances=len(refs_n))


def utterance_error_rates(refs: Sequence[str], hyps: Sequence[str], *,
                          normalizer: Optional[Callable[[str], str]] = normalize) -> list[dict]:
    """Per utterance: ``{"reference", "hypothesis", "wer", "cer"}`` (normalised texts)."""
    refs_n, hyps_n = _prepare(refs, hyps, normalizer)
    return [{"reference": r, "hypothesis": h, "wer": float(jiwer.wer(r, h)), "cer": float(jiwer.cer(r, h))}
            for r, h in zip(refs_n, hyps_n)]
