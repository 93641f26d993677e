"""Grain loader: shapes, dtypes, masks, delay pattern, sharding coverage, checkpointable iterator."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline.loader import make_buckets, make_dataset
from small_e_jax.delay import BOA, EOA, PAD, undelay

Q = 4


@pytest.fixture(scope="module")
def source(folder_build):
    return folder_build[0].as_data_source()["train"]


def _kwargs(**over):
    kw = dict(n_q=Q, frames_per_batch=400, n_buckets=3, seed=7, process_index=0, process_count=1,
              codebook_size=1024)
    kw.update(over)
    return kw


def test_batches_shapes_masks_delay(source):
    ds = make_dataset(source, num_epochs=1, **_kwargs())
    batches = list(ds)
    assert batches
    shapes = {(b["audio"].shape, b["text"].shape) for b in batches}
    assert len(shapes) <= 3  # one shape per bucket
    for b in batches:
        B, L, q = b["audio"].shape
        assert q == Q and B * L <= 400
        assert b["audio"].dtype == np.int32 and b["text"].dtype == np.int32
        assert b["audio_mask"].dtype == bool and b["text_mask"].dtype == bool and b["audio_mask"].shape == (B, L)
        assert L % 64 == 0 and b["text"].shape[1] % 8 == 0  # length_multiple 64 by default
        for r in range(B):
            i, F = int(b["index"][r]), int(b["frames"][r])
            if i < 0:
                assert F == 0 and not b["audio_mask"][r].any() and not b["text_mask"][r].any()
                continue
            rec = source[i]
            assert F == rec["codes"].shape[1]
            assert b["audio_mask"][r].sum() == F + Q + 1 and b["audio_mask"][r, : F + Q + 1].all()
            toks = b["audio"][r]
            assert (toks[0] == BOA).all() and (toks[F + Q] == EOA).all() and (toks[F + Q + 1:] == PAD).all()
            codes, valid = undelay(toks[: F + Q + 1])
            np.testing.assert_array_equal(codes, rec["codes"].T.astype(np.int32))
            assert valid.all()
            J = len(rec["text_tokens"])
            np.testing.assert_array_equal(b["text"][r, :J], rec["text_tokens"])
            assert b["text_mask"][r].sum() == J and (b["text"][r, J:] == PAD).all()


@pytest.mark.parametrize("P", [1, 2, 3])
def test_sharding_covers_each_example_once(source, P):
    seen = []
    per_process = []
    for p in range(P):
        batches = list(make_dataset(source, num_epochs=1, **_kwargs(process_index=p, process_count=P)))
        per_process.append([(b["audio"].shape, b["text"].shape) for b in batches])
        seen += [int(i) for b in batches for i in b["index"] if i >= 0]
    assert sorted(seen) == list(range(len(source)))
    assert all(s == per_process[0] for s in per_process)  # processes step in lock-step shapes


def test_length_filter(source):
    frames = np.array([source[i]["codes"].shape[1] for i in range(len(source))])
    cut = int(np.median(frames))
    seen = [int(i) for b in make_dataset(source, num_epochs=1, **_kwargs(max_frames=cut)) for i in b["index"] if i >= 0]
    assert sorted(seen) == sorted(np.flatnonzero(frames <= cut).tolist())


def test_iterator_state_restores_next_batch(source):
    ds = make_dataset(source, num_epochs=3, **_kwargs())
    it = iter(ds)
    for _ in range(5):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    fresh = iter(make_dataset(source, num_epochs=3, **_kwargs()))
    fresh.set_state(state)
    for want in expected:
        got = next(fresh)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_epochs_reshuffle(source):
    ds = make_dataset(source, num_epochs=2, **_kwargs())
    batches = list(ds)
    n = len(batches) // 2
    first = [tuple(b["index"]) for b in batches[:n]]
    second = [tuple(b["index"]) for b in batches[n:]]
    assert sorted(i for t in first for i in t) == sorted(i for t in second for i in t)
    assert first != second


def test_make_loader_from_config(folder_build):
    from data_pipeline.loader import make_loader
    from small_e_jax.config import DataConfig
    _, data_dir, _ = folder_build
    cfg = DataConfig(dataset="speech_folder", data_dir=str(data_dir), codec="tiny", frames_per_batch=400, n_buckets=2)
    batches = list(make_loader(cfg, "validation", n_q=Q, process_index=0, process_count=1, num_epochs=1))
    assert sorted(int(i) for b in batches for i in b["index"] if i >= 0) == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="not built"):
        make_loader(DataConfig(dataset="speech_folder", data_dir=str(data_dir), codec="other"), n_q=Q,
                    process_index=0, process_count=1)


@pytest.mark.slow
def test_worker_processes_give_the_same_batches(source):
    from absl import flags
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["pytest"])  # grain workers read absl flags
    want = list(make_dataset(source, num_epochs=1, **_kwargs()))
    got = list(make_dataset(source, num_epochs=1, worker_count=2, **_kwargs()))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for k in w:
            np.testing.assert_array_equal(g[k], w[k])


def test_filler_fraction_and_small_corpus_warning(source, caplog):
    from data_pipeline.loader import Bucket, filler_fraction

    buckets = [Bucket(audio_len=16, text_len=8, global_batch=4), Bucket(audio_len=32, text_len=8, global_batch=2)]
    ids = np.array([0, 0, 0, 0, 0, 1, 1])  # bucket 0: 5 records -> 2 batches of 4 (3 filler); bucket 1: 1 batch
    assert filler_fraction(ids, buckets) == pytest.approx(3 / 10)
    with caplog.at_level("WARNING", logger="data_pipeline.loader"):
        make_dataset(source, **_kwargs(frames_per_batch=100_000))  # batches far larger than the corpus
    assert any("filler" in r.getMessage() and "n_buckets" in r.getMessage() for r in caplog.records)


def test_length_multiple_sets_the_bucket_lengths(source):
    """Bucket lengths follow `length_multiple` (8 here, so not all are multiples of 64 at these
    lengths) and stay within the frame budget; a multiple < 1 is refused."""
    lengths = {b["audio"].shape[1] for b in make_dataset(source, num_epochs=1, **_kwargs(length_multiple=8))}
    assert lengths and all(L % 8 == 0 for L in lengths) and any(L % 64 for L in lengths)
    for b in make_dataset(source, num_epochs=1, **_kwargs(length_multiple=8)):
        assert b["audio"].shape[0] * b["audio"].shape[1] <= 400
    with pytest.raises(ValueError, match="length_multiple"):
        make_dataset(source, num_epochs=1, **_kwargs(length_multiple=0))


def _epoch_batches(audio_len, bounds, fpb, P=1):
    ids = np.searchsorted(np.asarray(bounds), audio_len, side="left")
    rows = [max(1, fpb // (L * P)) * P for L in bounds]
    return sum(-(-int((ids == b).sum()) // rows[b]) for b in range(len(bounds)))


@pytest.mark.parametrize("seed", range(4))
def test_bucket_bounds_are_the_fewest_batches(seed):
    """Exhaustive check on small cases: no choice of at most n_buckets bounds among the rounded
    lengths needs fewer batches per epoch, and every item fits its bucket."""
    import itertools
    from data_pipeline.loader import _bucket_bounds
    rng = np.random.default_rng(seed)
    L = np.concatenate([rng.integers(20, 200, 60), rng.integers(200, 900, 6)])  # a long tail
    fpb, n_buckets = 2048, 3
    bounds = _bucket_bounds(L, n_buckets, fpb, 1, 64)
    cand = sorted({-(-int(x) // 64) * 64 for x in L})
    assert len(bounds) <= n_buckets and bounds[-1] == cand[-1] and all(b % 64 == 0 for b in bounds)
    best = min(_epoch_batches(L, list(c) + [cand[-1]], fpb)
               for k in range(n_buckets) for c in itertools.combinations(cand[:-1], k))
    assert _epoch_batches(L, bounds, fpb) == best
    buckets, ids = make_buckets(L, np.full(len(L), 5), n_buckets, fpb, 1)
    assert all(L[i] <= buckets[ids[i]].audio_len for i in range(len(L)))


def test_bucket_bounds_beat_quantile_bins_on_a_long_tail():
    """Speech-like lengths (mean ~250 frames, a tail to 1,600): the old quantile bins padded the
    tail bucket to the longest item; these bounds need fewer batches for the same bucket count."""
    from data_pipeline.loader import _bucket_bounds
    rng = np.random.default_rng(0)
    L = np.clip(rng.lognormal(np.log(230), 0.45, 5000), 60, 1600).astype(int)
    L[:20] = 1600
    quantile = sorted({-(-int(q) // 64) * 64 for q in np.quantile(L, np.linspace(0, 1, 9)[1:], method="higher")})
    ours = _bucket_bounds(L, 8, 32768, 1, 64)
    assert _epoch_batches(L, ours, 32768) < 0.9 * _epoch_batches(L, quantile, 32768)
    assert _bucket_bounds(L, 8, 32768, 2, 64)[-1] == 1600  # process count: still covers every item


def test_split_sizes_count_each_split_of_a_built_dataset(folder_build):
    from data_pipeline.loader import open_source, split_sizes
    builder, data_dir, _ = folder_build
    sizes = split_sizes("speech_folder", data_dir=str(data_dir), codec="tiny")
    assert sizes and sizes == {s: len(open_source("speech_folder", s, data_dir=str(data_dir), codec="tiny")[0])
                               for s in builder.as_data_source()}
    with pytest.raises(FileNotFoundError, match="not built"):
        split_sizes("speech_folder", data_dir=str(data_dir / "elsewhere"), codec="tiny")
