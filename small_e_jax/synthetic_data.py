"""A synthetic, learnable source of training batches (grain), for tests and for running the
trainer before real data exists.

Example i (seeded by ``seed`` and i): a random text of 1…J tokens, ``frames`` random 1…T, and
codes that are a fixed function of the text (``codes[t, k] = (7 * text[t * n_text // frames]
+ 31 * k + t) % codebook_size``; without the ``+ t`` if ``codes_follow_time`` is False), so the
loss can fall well below chance. Examples are padded
to fixed shapes and batched::

    text [B, J] int32 (0 = pad), text_mask [B, J] bool,
    audio [B, T + Q + 1, Q] int32 (delayed, ``small_e_jax.delay``), audio_mask [B, T + Q + 1] bool

Each process reads its own slice of the examples (``process_index::process_count``) and
yields its local rows of the global batch. Iterators are grain ``DatasetIterator``s: their
``get_state()/set_state()`` (or ``grain.checkpoint.CheckpointSave``) restore the position.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Optional

import grain
import numpy as np

from small_e_jax.config import ModelConfig
from small_e_jax.delay import delay


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Shapes of the synthetic data. ``batch_size`` is the per-process batch."""

    batch_size: int = 2
    text_len: int = 8  # J
    frames: int = 12  # T (the delayed matrix has T + Q + 1 columns)
    n_train: int = 256  # examples per epoch (training repeats forever)
    n_eval: int = 8
    seed: int = 0
    # True: codes also advance with the frame index t (below). False: a token's codes are the
    # same on all its frames, so the first code of each token is a pure lookup of that token
    # (experiments.synthetic_reading; with t in it, it is the previous code plus a token-pair
    # dependent jump modulo the codebook size, which a small model does not learn).
    codes_follow_time: bool = True


class _Examples:
    """A grain random-access source: example i as numpy arrays (a pure function of seed, i)."""

    def __init__(self, spec: SyntheticSpec, model: ModelConfig, size: int, salt: int):
        self.spec, self.model, self.size, self.salt = spec, model, size, salt

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        s, m = self.spec, self.model
        rng = np.random.default_rng((s.seed, self.salt, int(i)))
        n_text = int(rng.integers(1, s.text_len + 1))
        n_frames = int(rng.integers(1, s.frames + 1))
        text = np.zeros(s.text_len, np.int32)
        text[:n_text] = rng.integers(3, m.text_vocab_size, n_text)
        t = np.arange(s.frames)
        source = text[np.minimum(t * n_text // n_frames, n_text - 1)]
        shift = t[:, None] if s.codes_follow_time else 0
        codes = (7 * source[:, None] + 31 * np.arange(m.n_codebooks)[None] + shift) % m.codebook_size
        audio, audio_mask = delay(codes[None], np.array([n_frames]), codebook_size=m.codebook_size)
        return {"text": text, "text_mask": np.arange(s.text_len) < n_text,
                "audio": audio[0].astype(np.int32), "audio_mask": audio_mask[0]}


class SyntheticSource:
    """The trainer's data-source interface: ``train_iterator()`` (infinite, stateful) and
    ``eval_batches()`` (a fresh finite iterable each call)."""

    def __init__(self, model: ModelConfig, spec: SyntheticSpec = SyntheticSpec(),
                 process_index: int = 0, process_count: int = 1):
        self.model, self.spec = model, spec
        self.process_index, self.process_count = process_index, process_count

    def _dataset(self, size: int, salt: int) -> grain.MapDataset:
        ds = grain.MapDataset.source(_Examples(self.spec, self.model, size, salt))
        return ds[self.process_index::self.process_count]

    def train_iterator(self) -> grain.DatasetIterator:
        ds = self._dataset(self.spec.n_train, salt=0).shuffle(seed=self.spec.seed).repeat(None)
        return iter(ds.batch(self.spec.batch_size, drop_remainder=True).to_iter_dataset())

    def eval_batches(self) -> Iterator[dict[str, Any]]:
        ds = self._dataset(self.spec.n_eval * self.process_count, salt=1)
        return iter(ds.batch(self.spec.batch_size, drop_remainder=True))

    def describe(self) -> str:
        """For the trainer's start banner."""
        return (f"synthetic random examples (seed {self.spec.seed}): train {self.spec.n_train}, "
                f"validation {self.spec.n_eval * self.process_count}")


def synthetic_source(model: ModelConfig, spec: Optional[SyntheticSpec] = None) -> SyntheticSource:
    """The synthetic source for this process (reads ``jax.process_index/process_count``)."""
    import jax

    return SyntheticSource(model, spec or SyntheticSpec(), jax.process_index(), jax.process_count())
