"""Intelligibility: transcribe audio with an offline ASR and score it against the input text.

Two ways in:

* :func:`score_transcripts` / :func:`evaluate_audio`: audio (or transcripts) that already exist,
  with their reference texts — the ``wer`` / ``skips`` subcommands, and the ground-truth
  baseline that must always be reported beside a model's numbers;
* :func:`evaluate_synthesizer`: any ``synthesize(texts, prompt) -> list[wav]`` callable (e.g.
  the inference ``Synthesizer``) with its sample rate.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from small_e_jax.eval.skips import count_skips_repeats, summarize
from small_e_jax.eval.wer import error_rates, utterance_error_rates

# (texts, prompt) -> one mono waveform [S] per text. ``prompt`` is whatever the synthesizer
# takes for voice cloning (e.g. a reference waveform), or None.
SynthesizeFn = Callable[[Sequence[str], Optional[Any]], list[np.ndarray]]


class Transcriber(Protocol):
    def transcribe(self, wavs: Sequence[np.ndarray], sample_rate: int) -> list[str]: ...


def score_transcripts(texts: Sequence[str], transcripts: Sequence[str], *, window: int = 3) -> dict[str, Any]:
    """WER/CER and skip/repeat counts of transcripts against their input texts.

    Returns ``{"wer", "cer", ..., "utterances": n, "skips": {per-100 rates}, "per_utterance": [rows]}``.
    """
    rates = error_rates(texts, transcripts).as_dict()
    rows = utterance_error_rates(texts, transcripts)
    counts = [count_skips_repeats(t, h, window=window) for t, h in zip(texts, transcripts)]
    for row, c, raw in zip(rows, counts, transcripts):
        row.update(skipped=c.skipped, repeated=c.repeated, inserted=c.inserted, transcript=raw)
    return {**rates, "skips": summarize(counts), "per_utterance": rows}


def evaluate_audio(texts: Sequence[str], wavs: Sequence[np.ndarray], sample_rate: int, asr: Transcriber,
                   *, window: int = 3) -> dict[str, Any]:
    """Transcribe ``wavs`` (mono [S_i] at ``sample_rate``) and score them against ``texts``."""
    if len(texts) != len(wavs):
        raise ValueError(f"{len(texts)} texts but {len(wavs)} waveforms")
    transcripts = asr.transcribe(list(wavs), sample_rate)
    return score_transcripts(texts, transcripts, window=window)


def evaluate_synthesizer(synthesize: SynthesizeFn, sample_rate: int, texts: Sequence[str], asr: Transcriber,
                         *, prompt: Optional[Any] = None, batch_size: int = 8,
                         window: int = 3) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Synthesize ``texts`` (in batches) and score them; returns (scores, waveforms)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    wavs: list[np.ndarray] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start: start + batch_size])
        out = synthesize(chunk, prompt)
        if len(out) != len(chunk):
            raise ValueError(f"synthesize returned {len(out)} waveforms for {len(chunk)} texts")
        wavs.extend(np.asarray(w, np.float32).reshape(-1) for w in out)
    return evaluate_audio(texts, wavs, sample_rate, asr, window=window), wavs


class SpeakerSimilarity(Protocol):
    def similarity(self, a: np.ndarray, rate_a: int, b: np.ndarray, rate_b: int) -> float: ...


def evaluate_cloning(synthesize: SynthesizeFn, sample_rate: int, texts: Sequence[str], asr: Transcriber,
                     encoder: SpeakerSimilarity, prompt: Any, prompt_wav: np.ndarray, prompt_rate: int,
                     *, batch_size: int = 8) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Voice cloning: synthesize ``texts`` with ``prompt`` (what the synthesizer takes), score
    intelligibility, and the speaker similarity of each output to ``prompt_wav`` (the prompt's
    audio, mono [S] at ``prompt_rate``). Adds ``similarity_mean`` and per-utterance ``similarity``
    to the scores; an output too short to embed gets NaN and is counted in ``similarity_failed``."""
    scores, wavs = evaluate_synthesizer(synthesize, sample_rate, texts, asr, prompt=prompt, batch_size=batch_size)
    sims = []
    for w in wavs:
        try:
            sims.append(float(encoder.similarity(prompt_wav, prompt_rate, w, sample_rate)))
        except ValueError:  # empty or speechless output
            sims.append(float("nan"))
    for row, s in zip(scores["per_utterance"], sims):
        row["similarity"] = s
    ok = [s for s in sims if np.isfinite(s)]
    scores["similarity_mean"] = float(np.mean(ok)) if ok else float("nan")
    scores["similarity_failed"] = len(sims) - len(ok)
    return scores, wavs
