"""Speaker similarity with resemblyzer (slow: loads torch + librosa; ~45 s on 2 cores).

Measured on the bundled mini corpus (Nov 2026): identical clip 1.000; two sentences of the same
voice 0.84-0.89 (Festival slt/kal, espeak en-us, en-gb+f4); different voices 0.45-0.80.
"""

import json

import numpy as np
import pytest

from tests.eval.conftest import MINI_CORPUS, require_module


def clips(speaker: str, n: int = 2) -> list[np.ndarray]:
    from small_e_jax.eval.audio import read_audio
    rows = [json.loads(line) for line in (MINI_CORPUS / "manifest.jsonl").read_text().splitlines()]
    return [read_audio(MINI_CORPUS / r["path"], 16_000) for r in rows if r["speaker"] == speaker][:n]


@pytest.mark.slow
def test_similarity_identical_same_and_different_voices():
    require_module("resemblyzer", "pip install -r requirements-eval.txt && pip install --no-deps -r requirements-eval-nodeps.txt")
    require_module("torch")
    from small_e_jax.eval.speaker import SpeakerEncoder, cosine
    enc = SpeakerEncoder()
    slt, kal = clips("festival_slt"), clips("festival_kal")
    assert enc.similarity(slt[0], 16_000, slt[0], 16_000) == pytest.approx(1.0, abs=1e-5)
    e_slt = [enc.embed(w, 16_000) for w in slt]
    e_kal = [enc.embed(w, 16_000) for w in kal]
    same = [cosine(*e_slt), cosine(*e_kal)]
    different = [cosine(a, b) for a in e_slt for b in e_kal]
    assert min(same) > max(different) + 0.15, (same, different)  # measured 0.84-0.89 vs ~0.49
    # Resampling the same audio (24 kHz output vs 16 kHz prompt) barely moves it.
    from small_e_jax.eval.audio import resample
    assert enc.similarity(slt[0], 16_000, resample(slt[0], 16_000, 24_000), 24_000) > 0.97


def test_cosine_checks_shapes():
    from small_e_jax.eval.speaker import cosine
    assert cosine(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cosine(np.ones(3), np.ones(4))


def test_score_pairs_counts_unscorable_pairs_and_keeps_going():
    from small_e_jax.eval.speaker import score_pairs

    def similarity(a, b):
        if b == "silent.wav":
            raise ValueError("audio has less than 0.1 s of speech after voice-activity trimming")
        if b == "missing.wav":
            raise OSError("no such file")
        return {"x.wav": 0.5, "y.wav": 0.9}[b]

    out = score_pairs([("p", "x.wav"), ("p", "silent.wav"), ("p", "y.wav"), ("p", "missing.wav")], similarity)
    assert out["pairs"] == 2 and out["skipped"] == 2
    assert out["mean"] == pytest.approx(0.7) and out["min"] == pytest.approx(0.5)
    assert [s["output"] for s in out["skipped_pairs"]] == ["silent.wav", "missing.wav"]
    assert "voice-activity" in out["skipped_pairs"][0]["reason"] and "OSError" in out["skipped_pairs"][1]["reason"]
    with pytest.raises(ValueError, match="none of the 1 pairs"):
        score_pairs([("p", "silent.wav")], similarity)
