"""Grain loader: ArrayRecord (TFDS data source) -> length-bucketed, delayed, padded numpy batches.

Pipeline: lengths of every record are read once (cached beside the dataset) ->
length filter (``min_frames <= F <= max_frames``, ``J <= max_text_tokens``) -> buckets by
delayed length ``L = F + Q + 1`` (at most ``n_buckets`` bins chosen for the fewest batches per
epoch; each bucket pads L and J up to
its boundary, L rounded up to ``length_multiple`` (64, the GLA chunk) and J to 8, so a jit step
sees at most ``n_buckets`` shapes) -> per epoch, a seeded plan of
*global* batches (``B_b * L_b <= frames_per_batch``, B_b a multiple of the process count) ->
process p takes rows ``[p*b, (p+1)*b)`` of each global batch (every example exactly once per
epoch across processes; the last batch of a bucket is filled with all-masked rows) -> read,
delay pattern + BOA/EOA/PAD, pad, mask.

Batch (per process, b rows): ``text [b, J] int32`` (PAD 0), ``text_mask [b, J] bool``,
``audio [b, L, Q] int32`` (delayed tokens, PAD 0), ``audio_mask [b, L] bool``, ``frames [b] int32``
(codec frames; 0 for filler rows), ``index [b] int64`` (record index, -1 for filler). The
iterator is a grain ``DatasetIterator``: ``get_state()`` / ``set_state()`` restore exactly the
next batch.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import grain
import numpy as np

from small_e_jax.delay import PAD, delay

log = logging.getLogger(__name__)

Record = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Bucket:
    """Shapes of one bucket: audio length L (delayed columns), text length J, global batch size."""

    audio_len: int
    text_len: int
    global_batch: int


def read_lengths(source: Sequence[Record], cache: Optional[Path] = None) -> tuple[np.ndarray, np.ndarray]:
    """Codec frames ``[N]`` and text tokens ``[N]`` of every record (one pass; cached as .npz)."""
    if cache is not None and cache.exists():
        z = np.load(cache)
        if len(z["frames"]) == len(source):
            return z["frames"], z["text"]
    frames = np.empty(len(source), np.int32)
    text = np.empty(len(source), np.int32)
    for i in range(len(source)):
        r = source[i]
        frames[i], text[i] = r["codes"].shape[1], len(r["text_tokens"])
    if cache is not None:
        try:
            np.savez(cache, frames=frames, text=text)
        except OSError:  # read-only dataset dir: just recompute next time
            pass
    return frames, text


def _round_up(x: int, m: int) -> int:
    return -(-int(x) // m) * m


def _bucket_bounds(audio_len: np.ndarray, n_buckets: int, frames_per_batch: int, process_count: int,
                   multiple: int) -> list[int]:
    """At most ``n_buckets`` bucket lengths (multiples of ``multiple``) that minimise the number of
    global batches per epoch, i.e. the steps (and padded columns) an epoch costs.

    Quantile bins put the whole long tail of a speech corpus into one bucket padded to the
    longest item (on a 3-to-20-second corpus, 8 quantile bins cost 24% more steps than these
    bounds). Exact dynamic programme over the distinct rounded lengths (a few dozen at most):
    a bucket holding lengths up to ``L`` takes ``B = frames_per_batch // L`` rows per batch."""
    rounded = -(-audio_len.astype(np.int64) // multiple) * multiple
    cand, counts = np.unique(rounded, return_counts=True)
    m = len(cand)
    cum = np.concatenate([[0], np.cumsum(counts)])

    def batches(i: int, j: int) -> int:  # one bucket for candidates i..j-1, padded to cand[j-1]
        rows = max(1, frames_per_batch // (int(cand[j - 1]) * process_count)) * process_count
        return -(-int(cum[j] - cum[i]) // rows)

    k_max = min(n_buckets, m)
    inf = float("inf")
    best = np.full((k_max + 1, m + 1), inf)
    arg = np.zeros((k_max + 1, m + 1), np.int64)
    best[0, 0] = 0
    for k in range(1, k_max + 1):
        for j in range(k, m + 1):
            for i in range(k - 1, j):
                c = best[k - 1, i] + batches(i, j)
                if c < best[k, j]:
                    best[k, j], arg[k, j] = c, i
    k = min(range(1, k_max + 1), key=lambda k: (best[k, m], k))  # ties: fewer shapes to compile
    bounds, j = [], m
    while k > 0:
        bounds.append(int(cand[j - 1]))
        j, k = int(arg[k, j]), k - 1
    return bounds[::-1]


def make_buckets(audio_len: np.ndarray, text_len: np.ndarray, n_buckets: int, frames_per_batch: int,
                 process_count: int, multiple: int = 64, text_multiple: int = 8
                 ) -> tuple[list[Bucket], np.ndarray]:
    """At most ``n_buckets`` buckets over delayed lengths, with the fewest batches per epoch
    (:func:`_bucket_bounds`); returns the buckets and each item's bucket id ``[N]``.

    Bucket lengths L are multiples of ``multiple`` (audio columns; see ``DataConfig.
    length_multiple``), text lengths J of ``text_multiple``."""
    if len(audio_len) == 0:
        raise ValueError("no examples left after the length filter")
    bounds = _bucket_bounds(np.asarray(audio_len), n_buckets, frames_per_batch, process_count, multiple)
    ids = np.searchsorted(np.asarray(bounds), audio_len, side="left")
    buckets = []
    for b, L in enumerate(bounds):
        in_b = ids == b
        J = _round_up(max(int(text_len[in_b].max()) if in_b.any() else 1, 1), text_multiple)
        per_process = max(1, frames_per_batch // (L * process_count))
        buckets.append(Bucket(L, J, per_process * process_count))
    return buckets, ids


class BatchPlan:
    """Random-access list of this process's batches: item k = (bucket id, record indices [b], -1 = filler).

    Epoch e shuffles each bucket with ``seed + e``, cuts it into global batches and shuffles their
    order; the plan is the same on every process (it depends only on lengths and seed).
    """

    def __init__(self, indices: np.ndarray, bucket_ids: np.ndarray, buckets: list[Bucket], seed: int,
                 process_index: int, process_count: int, num_epochs: Optional[int]):
        self.indices, self.bucket_ids, self.buckets = indices, bucket_ids, buckets
        self.seed, self.p, self.P = seed, process_index, process_count
        self.per_epoch = sum(-(-int((bucket_ids == b).sum()) // bk.global_batch) for b, bk in enumerate(buckets))
        self.num_epochs = num_epochs
        self._cache: tuple[int, list] = (-1, [])

    def __len__(self) -> int:
        return self.per_epoch * (self.num_epochs if self.num_epochs is not None else 1_000_000)

    def epoch(self, e: int) -> list[tuple[int, np.ndarray]]:
        if self._cache[0] != e:
            rng = np.random.default_rng([self.seed, e])
            batches = []
            for b, bk in enumerate(self.buckets):
                members = rng.permutation(self.indices[self.bucket_ids == b])
                for s in range(0, len(members), bk.global_batch):
                    rows = np.full(bk.global_batch, -1, np.int64)
                    chunk = members[s: s + bk.global_batch]
                    rows[: len(chunk)] = chunk
                    batches.append((b, rows))
            order = rng.permutation(len(batches))
            self._cache = (e, [batches[i] for i in order])
        return self._cache[1]

    def __getitem__(self, k: int) -> tuple[int, np.ndarray]:
        b, rows = self.epoch(k // self.per_epoch)[k % self.per_epoch]
        per = self.buckets[b].global_batch // self.P
        return b, rows[self.p * per: (self.p + 1) * per]


class Collate:
    """Reads the records of one planned batch and returns the padded numpy batch (see module doc)."""

    def __init__(self, source: Sequence[Record], buckets: list[Bucket], n_q: int,
                 codebook_size: Optional[int] = None):
        self.source, self.buckets, self.n_q, self.codebook_size = source, buckets, n_q, codebook_size

    def __call__(self, planned: tuple[int, np.ndarray]) -> dict[str, np.ndarray]:
        b, rows = planned
        bk = self.buckets[b]
        T = bk.audio_len - self.n_q - 1  # frames that fill L delayed columns
        B = len(rows)
        codes = np.zeros((B, T, self.n_q), np.int32)
        frames = np.zeros(B, np.int32)
        text = np.full((B, bk.text_len), PAD, np.int32)
        text_len = np.zeros(B, np.int32)
        for r, i in enumerate(rows):
            if i < 0:
                continue  # filler row: everything masked
            rec = self.source[int(i)]
            c = np.asarray(rec["codes"], np.int32).T  # [F, Q]
            frames[r] = c.shape[0]
            codes[r, : c.shape[0]] = c
            tok = np.asarray(rec["text_tokens"], np.int32)
            text_len[r] = len(tok)
            text[r, : len(tok)] = tok
        audio, audio_mask = delay(codes, frames, codebook_size=self.codebook_size)
        audio_mask &= frames[:, None] > 0  # filler rows would otherwise show BOA/EOA columns
        audio = np.where(audio_mask[..., None], audio, PAD)
        return {"text": text, "text_mask": np.arange(bk.text_len)[None] < text_len[:, None],
                "audio": audio, "audio_mask": audio_mask, "frames": frames,
                "index": rows.astype(np.int64)}


def open_source(dataset: str, split: str, *, data_dir: Optional[str] = None, codec: str = "dac_24khz",
                n_q: int = 4) -> tuple[Sequence[Record], Optional[Path]]:
    """The TFDS ArrayRecord data source of a built dataset, and its folder (for the length cache)."""
    sources, folder = _data_sources(dataset, data_dir=data_dir, codec=codec, n_q=n_q)
    if split not in sources:
        raise ValueError(f"{dataset} has no split {split!r}; it has {sorted(sources)}")
    return sources[split], folder


def split_sizes(dataset: str, *, data_dir: Optional[str] = None, codec: str = "dac_24khz",
                n_q: int = 4) -> dict[str, int]:
    """Examples per split of a built dataset (one opening of its data sources)."""
    sources, _ = _data_sources(dataset, data_dir=data_dir, codec=codec, n_q=n_q)
    return {split: len(source) for split, source in sources.items()}


def _data_sources(dataset: str, *, data_dir: Optional[str], codec: str, n_q: int
                  ) -> tuple[dict[str, Sequence[Record]], Path]:
    from data_pipeline.builders import BUILDERS
    if dataset not in BUILDERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(BUILDERS)}")
    builder = BUILDERS[dataset](codec=codec, n_q=n_q, data_dir=data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(f"{dataset}/{codec} is not built in {builder.data_dir}: run "
                                f"python -m data_pipeline.build --dataset {dataset} --codec {codec}")
    return builder.as_data_source(), Path(builder.data_dir)


def built_codecs(dataset: str, data_dir: Optional[str] = None) -> tuple[Path, dict[str, dict]]:
    """``(<data_dir>/<dataset>, {codec: metadata})``: the codecs ``dataset`` is built with (a
    finished build: a version folder holding ``dataset_info.json``) and what each build recorded
    (``codec``, ``codec_weights``, ``n_q``; ``{}`` for a build older than that record)."""
    import json
    import re

    from data_pipeline.builders import BUILDERS
    if dataset not in BUILDERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(BUILDERS)}")
    folder = Path(BUILDERS[dataset](data_dir=data_dir).data_dir).parents[1]
    built: dict[str, dict] = {}
    codec_dirs = sorted(d for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
    for codec_dir in codec_dirs:
        versions = [v for v in codec_dir.iterdir()
                    if re.fullmatch(r"\d+\.\d+\.\d+", v.name) and (v / "dataset_info.json").is_file()]
        if versions:
            latest = max(versions, key=lambda v: tuple(int(x) for x in v.name.split(".")))
            meta = latest / "metadata.json"
            built[codec_dir.name] = json.loads(meta.read_text()) if meta.is_file() else {}
    return folder, built


def resolve_codec(data_config: Any, model_config: Any) -> list[str]:
    """Take the codec, its weights and ``n_q`` from the built dataset where the config leaves
    them at their defaults; returns notes saying what was taken (the configs are updated).

    ``data.codec`` at its default (``DataConfig.codec``) with no build for it, and exactly one
    codec's build of ``data.dataset``: that codec is used. ``data.codec`` set to a codec that is
    not built while others are: ``FileNotFoundError`` naming the built ones. Unset
    ``data.codec_weights`` takes the build's weights; ``model.n_codebooks`` at its default takes
    the build's ``n_q``, and a different one is a ``ValueError``."""
    from small_e_jax.config import DataConfig, ModelConfig
    folder, built = built_codecs(data_config.dataset, data_config.data_dir)
    notes = []
    if data_config.codec not in built:
        if not built:
            return notes  # open_source says how to build it
        if len(built) == 1 and data_config.codec == DataConfig.codec:
            (only,) = built
            notes.append(f"data.codec={only}: the codec {data_config.dataset} is built with in {folder} "
                         f"(data.codec was left at its default, {data_config.codec}, which is not built)")
            data_config.codec = only
        else:
            raise FileNotFoundError(f"{data_config.dataset} is not built with codec {data_config.codec} in {folder}; "
                                    f"it is built with {', '.join(built)}: set data.codec to one of them")
    meta = built[data_config.codec]
    if data_config.codec_weights is None and meta.get("codec_weights") is not None:
        data_config.codec_weights = meta["codec_weights"]
        notes.append(f"data.codec_weights={data_config.codec_weights}: the weights {data_config.dataset} "
                     f"was built with")
    n_q = meta.get("n_q")
    if n_q is not None and n_q != model_config.n_codebooks:
        if model_config.n_codebooks != ModelConfig.n_codebooks:
            raise ValueError(f"model.n_codebooks={model_config.n_codebooks} but {data_config.dataset}/"
                             f"{data_config.codec} is built with n_q={n_q}: set model.n_codebooks={n_q}")
        model_config.n_codebooks = n_q
        notes.append(f"model.n_codebooks={n_q}: the codebooks {data_config.dataset}/{data_config.codec} "
                     "is built with")
    return notes


def filler_fraction(bucket_ids: np.ndarray, buckets: Sequence[Bucket]) -> float:
    """Share of an epoch's batch rows that are filler (the last batch of each bucket is padded
    with masked rows): near 0 for a large corpus, near 1 when buckets hold far fewer records
    than one batch."""
    rows = filled = 0
    for b, bk in enumerate(buckets):
        n = int((bucket_ids == b).sum())
        rows += -(-n // bk.global_batch) * bk.global_batch
        filled += n
    return 1.0 - filled / max(rows, 1)


def make_dataset(source: Sequence[Record], *, n_q: int, min_frames: int = 1, max_frames: int = 2000,
                 max_text_tokens: int = 512, frames_per_batch: int = 24_000, n_buckets: int = 10,
                 length_multiple: int = 64,
                 seed: int = 123, process_index: Optional[int] = None, process_count: Optional[int] = None,
                 num_epochs: Optional[int] = None, worker_count: int = 0, codebook_size: Optional[int] = None,
                 lengths_cache: Optional[Path] = None) -> grain.IterDataset:
    """The batch pipeline over ``source`` (any random-access sequence of records).

    ``process_index/process_count`` default to ``jax.process_index()/process_count()``;
    ``frames_per_batch`` is the *global* budget (B_global * L <= it, padding included).
    ``num_epochs=None`` repeats (practically) forever. ``worker_count > 0`` reads in grain worker
    processes (the caller needs a ``__main__`` guard).
    """
    if process_index is None or process_count is None:
        import jax
        process_index, process_count = jax.process_index(), jax.process_count()
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    frames, text = read_lengths(source, lengths_cache)
    keep = (frames >= min_frames) & (frames <= max_frames) & (text <= max_text_tokens)
    indices = np.flatnonzero(keep)
    if length_multiple < 1:
        raise ValueError(f"length_multiple must be >= 1, got {length_multiple}")
    buckets, ids = make_buckets(frames[indices] + n_q + 1, text[indices], n_buckets, frames_per_batch,
                                process_count, multiple=length_multiple)
    waste = filler_fraction(ids, buckets)
    if waste > 0.5:  # tiny corpora: most of every batch would be masked rows (wasted compute)
        log.warning("%.0f%% of the batch rows are filler: %d examples in %d length buckets of up to %d rows; "
                    "lower data.n_buckets or data.frames_per_batch for a corpus this small",
                    100 * waste, len(indices), len(buckets), max(bk.global_batch for bk in buckets))
    plan = BatchPlan(indices, ids, buckets, seed, process_index, process_count, num_epochs)
    ds = grain.MapDataset.source(plan).map(Collate(source, buckets, n_q, codebook_size)).to_iter_dataset()
    if worker_count > 0:
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return ds


def make_loader(data_config: Any, split: str = "train", *, n_q: int = 4, codebook_size: Optional[int] = None,
                process_index: Optional[int] = None, process_count: Optional[int] = None,
                num_epochs: Optional[int] = None) -> grain.IterDataset:
    """``make_dataset`` from a ``DataConfig`` (the dataset must be built). Iterate it with ``iter()``."""
    source, folder = open_source(data_config.dataset, split, data_dir=data_config.data_dir,
                                 codec=data_config.codec, n_q=n_q)
    cache = None if folder is None else folder / f"lengths_{split}.npz"
    return make_dataset(source, n_q=n_q, min_frames=data_config.min_frames, max_frames=data_config.max_frames,
                        max_text_tokens=data_config.max_text_tokens, frames_per_batch=data_config.frames_per_batch,
                        n_buckets=data_config.n_buckets, length_multiple=data_config.length_multiple,
                        seed=data_config.shuffle_seed,
                        process_index=process_index, process_count=process_count, num_epochs=num_epochs,
                        worker_count=data_config.worker_count, codebook_size=codebook_size,
                        lengths_cache=cache if os.access(folder, os.W_OK) else None)
