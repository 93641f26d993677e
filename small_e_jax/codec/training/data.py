"""Audio crops for codec training: a manifest's clips decoded into memory, random crops as numpy.

Deliberately free of grain/TFDS (the GPU image lacks them): the bundled mini corpus is ~57 min
(~330 MB of float32 at 24 kHz), so every clip is decoded once (soundfile, Ogg Opus), resampled
to the codec rate and kept in RAM. A batch is ``[B, segment]`` float32 crops drawn with a numpy
generator seeded by ``(seed, step)``, so a resumed run draws exactly the batches the
uninterrupted run would have drawn, with no iterator state to checkpoint.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Optional

import numpy as np

MINI_CORPUS = Path(__file__).resolve().parents[3] / "data_pipeline" / "mini_corpus"


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``[S]`` float32 at ``rate_in`` -> ``[ceil(S * rate_out / rate_in)]`` at ``rate_out``.

    soxr when installed (the CPU stack); otherwise scipy's polyphase filter, so that training
    also runs on images with neither (the GPU image has scipy via torch's stack; if not, a
    windowed-sinc polyphase filter in numpy).
    """
    if rate_in == rate_out:
        return audio.astype(np.float32)
    try:
        import soxr

        return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32)
    except ImportError:
        pass
    g = gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    try:
        from scipy.signal import resample_poly

        return resample_poly(audio, up, down).astype(np.float32)
    except ImportError:
        return _resample_poly_numpy(audio, up, down)


def _resample_poly_numpy(audio: np.ndarray, up: int, down: int, taps_per_phase: int = 32) -> np.ndarray:
    # Zero-stuff by `up`, low-pass (Kaiser-windowed sinc at the lower Nyquist), keep every `down`-th.
    cutoff = 1.0 / max(up, down)
    n = taps_per_phase * max(up, down)
    t = np.arange(-n, n + 1)
    h = cutoff * np.sinc(cutoff * t) * np.kaiser(2 * n + 1, 8.0) * up
    stuffed = np.zeros(len(audio) * up, np.float64)
    stuffed[::up] = audio
    y = np.convolve(stuffed, h, mode="same")[::down]
    return y[: -(-len(audio) * up // down)].astype(np.float32)


@dataclass(frozen=True)
class Clip:
    """One decoded utterance: ``audio [S]`` float32 at the codec rate."""

    path: str
    speaker: str
    audio: np.ndarray


def read_manifest(corpus_dir: str | Path, split: str) -> list[dict]:
    """Rows of ``manifest.jsonl`` in ``corpus_dir`` whose ``split`` is ``split`` (``train``/``validation``/``all``)."""
    path = Path(corpus_dir) / "manifest.jsonl"
    if not path.is_file():
        raise ValueError(f"{path} not found: pass the folder of a corpus with a manifest.jsonl "
                         "(python -m data_pipeline.make_mini_corpus writes one)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if split != "all":
        rows = [r for r in rows if r.get("split") == split]
    if not rows:
        raise ValueError(f"{path} has no rows with split {split!r}")
    return rows


def decode_clip(corpus_dir: str | Path, row: dict, sample_rate: int) -> Clip:
    """One manifest ``row``'s audio, mono, resampled to ``sample_rate`` and clipped to [-1, 1]."""
    import soundfile as sf

    audio, rate = sf.read(str(Path(corpus_dir) / row["path"]), dtype="float32", always_2d=True)
    audio = np.clip(resample(audio.mean(axis=1), rate, sample_rate), -1.0, 1.0)
    return Clip(row["path"], row.get("speaker", ""), audio)


def load_clips(corpus_dir: str | Path, split: str, sample_rate: int, *, limit: Optional[int] = None,
               workers: int = 8, progress: bool = True) -> list[Clip]:
    """Decode (and resample to ``sample_rate``) the clips of ``split``; ``limit`` keeps the first ones."""
    rows = read_manifest(corpus_dir, split)[:limit]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        it = pool.map(lambda row: decode_clip(corpus_dir, row, sample_rate), rows)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(rows), desc=f"decode {split}", unit="clip", mininterval=1.0)
        return list(it)


class CropSampler:
    """Random ``segment``-sample crops of in-memory clips, deterministic per ``(seed, step)``.

    Clips shorter than ``segment`` are zero-padded at a random offset. A random gain in
    ``[min_gain, 1]`` makes the codec see several loudness levels (the corpus is peak-normalised).
    """

    def __init__(self, clips: list[Clip], segment: int, *, seed: int = 0, min_gain: float = 0.3):
        if not clips:
            raise ValueError("no clips to sample from")
        if segment < 1:
            raise ValueError(f"segment must be >= 1 sample, got {segment}")
        if not 0.0 < min_gain <= 1.0:
            raise ValueError(f"min_gain must lie in (0, 1], got {min_gain}")
        self.clips, self.segment, self.seed, self.min_gain = clips, segment, seed, min_gain
        # Draw clips in proportion to their length, so every second of audio is equally likely.
        lengths = np.array([len(c.audio) for c in clips], np.float64)
        self._p = lengths / lengths.sum()

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        """``[batch_size, segment]`` float32 crops for training step ``step``."""
        rng = np.random.default_rng((self.seed, step))
        out = np.zeros((batch_size, self.segment), np.float32)
        for i, j in enumerate(rng.choice(len(self.clips), size=batch_size, p=self._p)):
            audio = self.clips[j].audio
            if len(audio) >= self.segment:
                start = int(rng.integers(0, len(audio) - self.segment + 1))
                out[i] = audio[start:start + self.segment]
            else:
                start = int(rng.integers(0, self.segment - len(audio) + 1))
                out[i, start:start + len(audio)] = audio
            out[i] *= rng.uniform(self.min_gain, 1.0)
        return out
