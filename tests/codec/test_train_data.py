"""Codec-training data: deterministic crops, resampling fallbacks, mini-corpus decoding."""

import numpy as np
import pytest

from small_e_jax.codec.training import data as train_data
from small_e_jax.codec.training.data import Clip, CropSampler


def _clips():
    rng = np.random.default_rng(0)
    return [Clip("a", "s1", rng.uniform(-0.5, 0.5, 5000).astype(np.float32)),
            Clip("b", "s2", rng.uniform(-0.5, 0.5, 300).astype(np.float32))]


def test_crops_are_deterministic_per_step_and_shaped():
    s = CropSampler(_clips(), 1000, seed=3)
    a, b, c = s.batch(7, 16), s.batch(7, 16), s.batch(8, 16)
    assert a.shape == (16, 1000) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a).max() <= 0.5
    # The 300-sample clip is zero-padded: some rows hold exactly 700 zeros around it.
    short = [row for row in a if np.count_nonzero(row) <= 300]
    assert all(np.count_nonzero(row) > 0 for row in short)


def test_sampler_rejects_bad_input():
    with pytest.raises(ValueError, match="no clips"):
        CropSampler([], 100)
    with pytest.raises(ValueError, match="min_gain"):
        CropSampler(_clips(), 100, min_gain=0.0)


def test_numpy_resampler_matches_scipy():
    scipy_signal = pytest.importorskip("scipy.signal")
    t = np.arange(16000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    ours = train_data._resample_poly_numpy(x, 3, 2)
    ref = scipy_signal.resample_poly(x, 3, 2)
    assert ours.shape == ref.shape == (24000,)
    # Different filters: compare away from the edges, where both are accurate to ~1e-3.
    np.testing.assert_allclose(ours[500:-500], ref[500:-500], atol=5e-3)


def test_load_clips_from_the_mini_corpus():
    clips = train_data.load_clips(train_data.MINI_CORPUS, "validation", 24_000, limit=2, progress=False)
    rows = train_data.read_manifest(train_data.MINI_CORPUS, "validation")[:2]
    assert len(clips) == 2
    for clip, row in zip(clips, rows):
        assert clip.audio.dtype == np.float32
        assert abs(len(clip.audio) / 24_000 - row["duration"]) < 0.05
        assert 0.1 < np.abs(clip.audio).max() <= 1.0


def test_read_manifest_errors(tmp_path):
    with pytest.raises(ValueError, match="manifest.jsonl"):
        train_data.read_manifest(tmp_path, "train")
    (tmp_path / "manifest.jsonl").write_text('{"path": "x.ogg", "split": "train"}\n')
    with pytest.raises(ValueError, match="no rows"):
        train_data.read_manifest(tmp_path, "validation")
