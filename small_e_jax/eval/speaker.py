"""Speaker similarity: cosine similarity of resemblyzer speaker embeddings (offline).

``resemblyzer`` (Apache-2.0) ships its pretrained GE2E speaker encoder (``pretrained.pt``) in its
wheel and runs on PyTorch (CPU is fine). Embeddings are L2-normalised 256-d vectors of the
whole utterance (resemblyzer's partial-window average after its VAD trimming), so the cosine
similarity is their dot product, in [-1, 1]; identical audio gives 1.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from small_e_jax.eval.audio import resample

ENCODER_RATE = 16_000


class SpeakerEncoder:
    """``SpeakerEncoder()``; ``embed(wav, sample_rate) -> [256]``; ``similarity(a, ra, b, rb)``."""

    def __init__(self, device: str = "cpu"):
        try:
            from resemblyzer import VoiceEncoder
        except ImportError:
            raise ImportError("resemblyzer is not installed: pip install -r requirements-eval.txt") from None
        self.encoder = VoiceEncoder(device=device, verbose=False)

    def embed(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono waveform [S] -> unit-norm speaker embedding [256] (float32)."""
        from resemblyzer import preprocess_wav

        audio = preprocess_wav(resample(wav, sample_rate, ENCODER_RATE), source_sr=ENCODER_RATE)
        if audio.size < ENCODER_RATE // 10:
            raise ValueError("audio has less than 0.1 s of speech after voice-activity trimming")
        emb = np.asarray(self.encoder.embed_utterance(audio), np.float32)
        return emb / np.linalg.norm(emb)

    def similarity(self, a: np.ndarray, rate_a: int, b: np.ndarray, rate_b: int) -> float:
        """Cosine similarity of the speakers of two waveforms."""
        return cosine(self.embed(a, rate_a), self.embed(b, rate_b))

    def pairwise(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], sample_rate: int) -> list[float]:
        """Similarity of each (prompt, output) pair, both at ``sample_rate``."""
        return [self.similarity(a, sample_rate, b, sample_rate) for a, b in pairs]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors [D]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"embeddings must be vectors of one shape, got {a.shape} and {b.shape}")
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def score_pairs(pairs: Sequence[tuple[str, str]], similarity: Callable[[str, str], float]
                ) -> dict[str, Any]:
    """Similarity of each (prompt path, output path) pair by ``similarity(a, b)``.

    A pair that cannot be scored (``ValueError``: e.g. no speech left after voice-activity
    trimming, as in an untrained model's output; ``OSError``: an unreadable file) is kept in
    ``skipped`` with both paths and the reason, and counted, instead of stopping the run; the
    mean/std/min are over the scored pairs. Raises ``ValueError`` if no pair could be scored.
    """
    scored, skipped = [], []
    for a, b in pairs:
        try:
            scored.append({"prompt": a, "output": b, "similarity": float(similarity(a, b))})
        except (ValueError, OSError) as err:
            skipped.append({"prompt": a, "output": b, "reason": f"{type(err).__name__}: {err}"})
    if not scored:
        reasons = sorted({s["reason"] for s in skipped})
        raise ValueError(f"none of the {len(skipped)} pairs could be scored: " + "; ".join(reasons[:3]))
    x = np.asarray([s["similarity"] for s in scored])
    return {"pairs": len(scored), "skipped": len(skipped), "mean": float(x.mean()), "std": float(x.std()),
            "min": float(x.min()), "per_pair": scored, "skipped_pairs": skipped}
