"""EnCodec behind the codec interface, without PyTorch: presets and bandwidths, input checks, shapes,
jit caching, the batching/padding invariance the module docstring claims, saved weights and
``load_codec``. Mostly a small random EnCodec of the same (causal conv + LSTM) architecture."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from small_e_jax.codec import (PAD_CODE, Codec, EncodecCodec, EncodecConfig, encodec_24khz, load_codec,
                               num_params)
from small_e_jax.codec.encodec import abstract_model, random_init
from small_e_jax.codec.weights import load_dac, load_encodec, save_model

# Same architecture as EnCodec 24 kHz, scaled down: strides 2 and 3 (hop 6), a 1-layer LSTM,
# 6 codebooks of 32 entries. frame_rate 4000/s -> 20 kbps per codebook.
SMALL = EncodecConfig(sample_rate=24_000, n_filters=4, ratios=(3, 2), dimension=8, lstm_layers=1, n_codebooks=6,
                      codebook_size=32, target_bandwidths=(20.0, 80.0), n_q=4)
HOP = SMALL.hop_length


@pytest.fixture(scope="module")
def codec() -> EncodecCodec:
    """A random small EnCodec whose codebooks are calibrated to its latents, so that codes vary
    (with N(0, 1) codebooks and small latents every frame would pick the same codeword)."""
    model = random_init(SMALL, seed=0)
    z, _ = model.encode_latents(jnp.asarray(_noise(6000, 123))[None])
    residual = np.asarray(z).reshape(-1, SMALL.dimension)
    rng = np.random.default_rng(0)
    books = []
    for _ in range(SMALL.n_codebooks):
        book = residual.mean(0) + residual.std(0) * rng.standard_normal((SMALL.codebook_size, SMALL.dimension))
        book = book.astype(np.float32)
        idx = np.argmin(((residual[:, None, :] - book[None]) ** 2).sum(-1), axis=1)
        residual = residual - book[idx]
        books.append(book)
    model.quantizer.codebook.set_value(jnp.asarray(np.stack(books)))
    return EncodecCodec(model, bucket_frames=64)


def _noise(n: int, seed: int, scale: float = 0.3) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).standard_normal(n) * scale, -1, 1).astype(np.float32)


def _batch(lengths: list[int], seed: int = 0, fill_seed: int | None = None) -> np.ndarray:
    out = np.zeros((len(lengths), max(lengths)), np.float32)
    if fill_seed is not None:
        out[:] = _noise(out.size, fill_seed, 0.5).reshape(out.shape)
    for i, n in enumerate(lengths):
        out[i, :n] = _noise(n, seed + i)
    return out


def test_preset_bandwidths_and_size():
    cfg = encodec_24khz()
    assert (cfg.hop_length, cfg.frame_rate, cfg.n_q, cfg.n_codebooks, cfg.codebook_size) == (320, 75.0, 4, 32, 1024)
    assert cfg.bitrate == pytest.approx(3000.0) and cfg.bandwidth_per_codebook == pytest.approx(0.75)
    assert [cfg.n_q_for_bandwidth(b) for b in (1.5, 3, 6, 12, 24)] == [2, 4, 8, 16, 32]
    assert encodec_24khz(bandwidth=12.0).n_q == 16 and encodec_24khz(n_q=None).num_quantizers == 32
    # torch: 14,851,810 parameters; ours folds 4,993 weight-norm gains, sums 4 x 2048 LSTM bias pairs
    # and holds the 32 x 1024 x 128 codebooks (torch buffers) as parameters.
    assert num_params(abstract_model(cfg)) == 14_851_810 - 4_993 - 4 * 2048 + 32 * 1024 * 128
    with pytest.raises(ValueError, match="bandwidth 5.0 kbps is not supported"):
        cfg.n_q_for_bandwidth(5.0)
    with pytest.raises(ValueError, match="bandwidth must be a number"):
        cfg.n_q_for_bandwidth("3")
    with pytest.raises(ValueError, match="n_q=33 must lie in 1..n_codebooks=32"):
        encodec_24khz(n_q=33)
    with pytest.raises(ValueError, match="n_filters=30 must be divisible by compress=4"):
        EncodecConfig(n_filters=30, compress=4)
    with pytest.raises(ValueError, match="unknown EncodecConfig keys"):
        EncodecConfig.from_dict({"sample_rate": 24_000, "hop": 320})
    assert EncodecConfig.from_dict(cfg.to_dict()) == cfg


def test_codec_protocol_and_attributes(codec):
    assert isinstance(codec, Codec)
    assert (codec.sample_rate, codec.hop_length, codec.n_q, codec.codebook_size) == (24_000, 6, 4, 32)
    assert codec.frame_rate == pytest.approx(4000.0) and codec.bandwidth == pytest.approx(80.0)
    with pytest.raises(ValueError, match="n_q or bandwidth, not both"):
        EncodecCodec(codec.model, n_q=2, bandwidth=20.0)
    assert EncodecCodec(codec.model, bandwidth=20.0).n_q == 1
    with pytest.raises(ValueError, match="n_q=7 must lie in 1..6"):
        EncodecCodec(codec.model, n_q=7)
    with pytest.raises(ValueError, match="needs an EnCodec model"):
        EncodecCodec(object())


@pytest.mark.parametrize("wav,match", [
    (np.zeros(100, np.float32), "rank 1"),
    (np.zeros((1, 100), np.int16), "integer dtype"),
    (np.full((1, 100), np.nan, np.float32), "NaN"),
    (np.full((1, 100), 2.0, np.float32), "outside \\[-1, 1\\]"),
    (np.zeros((1, 0), np.float32), "0 samples"),
])
def test_encode_rejects_bad_audio(codec, wav, match):
    with pytest.raises(ValueError, match=match):
        codec.encode(wav, 24_000)


def test_decode_rejects_bad_codes(codec):
    with pytest.raises(ValueError, match="codes must be \\[B, n_q, F\\]"):
        codec.decode(np.zeros((4, 10), np.int32))
    with pytest.raises(ValueError, match="integers"):
        codec.decode(np.zeros((1, 4, 10), np.float32))
    with pytest.raises(ValueError, match="outside \\[0, 32\\)"):
        codec.decode(np.full((1, 4, 10), 32, np.int32))
    with pytest.raises(ValueError, match="7 codebooks"):
        codec.decode(np.zeros((1, 7, 10), np.int32))
    with pytest.raises(ValueError, match="frame_lengths"):
        codec.decode(np.zeros((2, 4, 10), np.int32), [10, 11])
    with pytest.raises(ValueError, match="lengths must lie in 1..100"):
        codec.encode(np.zeros((1, 100), np.float32), 24_000, [0])


def test_shapes_resampling_and_channels(codec):
    codes = codec.encode(_batch([100, 37]), 24_000, [100, 37])
    assert codes.shape == (2, 4, -(-100 // HOP)) and codes.dtype == np.int32
    assert np.all(codes[1, :, -(-37 // HOP):] == PAD_CODE) and np.all(codes[1, :, :-(-37 // HOP)] >= 0)
    assert np.all(codes[codes >= 0] < 32) and len(np.unique(codes[0])) > 3
    wav = codec.decode(codes, [17, 7])
    assert wav.shape == (2, 17 * HOP) and wav.dtype == np.float32
    assert np.all(wav[1, 7 * HOP:] == 0) and np.abs(wav[1, :7 * HOP]).max() > 0
    # 16 kHz stereo in: resampled (soxr) to 24 kHz and mixed down.
    stereo = np.stack([_noise(160, 1), _noise(160, 2)])[None]
    codes16 = codec.encode(stereo, 16_000)
    assert codes16.shape == (1, 4, codec.num_frames(160, 16_000)) == (1, 4, 40)


def test_batching_and_padding_do_not_change_codes(codec):
    """The docstring's claim: an item's codes (and decoded audio) do not depend on its batch or padding."""
    lengths = [1, 5, 6, 7, 61, 300]
    alone = [codec.encode(_noise(n, 10 + i)[None], 24_000)[0] for i, n in enumerate(lengths)]
    batch = np.zeros((len(lengths), 300), np.float32)
    noisy = _noise(batch.size, 99, 0.5).reshape(batch.shape)  # garbage after each item's end
    for i, n in enumerate(lengths):
        batch[i, :n] = noisy[i, :n] = _noise(n, 10 + i)
    wide = np.concatenate([noisy, noisy[:, :200]], axis=1)  # extra right padding, another length bucket
    other = EncodecCodec(codec.model, bucket_frames=7)
    for codes in (codec.encode(batch, 24_000, lengths), codec.encode(noisy, 24_000, lengths),
                  codec.encode(wide, 24_000, lengths), other.encode(noisy, 24_000, lengths)):
        for i, n in enumerate(lengths):
            f = -(-n // HOP)
            np.testing.assert_array_equal(codes[i, :, :f], alone[i], err_msg=f"item {i} (length {n})")
    # Decoding is per item too.
    f_max = max(a.shape[1] for a in alone)
    codes = np.full((len(alone), 4, f_max), PAD_CODE, np.int32)
    for i, a in enumerate(alone):
        codes[i, :, :a.shape[1]] = a
    wav = codec.decode(codes, [a.shape[1] for a in alone])
    for i, a in enumerate(alone):
        single = codec.decode(a[None])[0]
        np.testing.assert_allclose(wav[i, :len(single)], single, rtol=0, atol=1e-6)


def test_naive_zero_padding_would_change_codes(codec):
    """Why the per-item lengths matter: the end reflection differs from zero padding."""
    clip = _noise(61, 3)
    padded = np.zeros((1, 120), np.float32)
    padded[0, :61] = clip
    with_lengths = codec.encode(padded, 24_000, [61])[0, :, :11]
    as_if_longer = codec.encode(padded, 24_000)[0, :, :11]
    np.testing.assert_array_equal(with_lengths, codec.encode(clip[None], 24_000)[0])
    assert not np.array_equal(with_lengths, as_if_longer)


def test_jit_compiles_once_per_bucket(codec):
    fresh = EncodecCodec(codec.model, bucket_frames=64)
    fresh.encode(_batch([50, 20]), 24_000, [50, 20])
    fresh.encode(_batch([300, 7]), 24_000, [300, 7])
    assert fresh.trace_counts["encode"] == 1
    fresh.decode(np.zeros((2, 4, 10), np.int32))
    fresh.decode(np.zeros((2, 4, 30), np.int32))
    assert fresh.trace_counts["decode"] == 1


def test_saved_weights_round_trip_and_load_codec(tmp_path, codec):
    save_model(tmp_path / "w", codec.model)
    meta = json.loads((tmp_path / "w" / "config.json").read_text())
    assert meta["format"] == "small_e_jax.codec.encodec" and meta["config"]["ratios"] == [3, 2]
    loaded = EncodecCodec.from_pretrained(str(tmp_path / "w"))
    assert loaded.config == codec.config
    batch = _batch([70, 33])
    np.testing.assert_array_equal(loaded.encode(batch, 24_000, [70, 33]), codec.encode(batch, 24_000, [70, 33]))
    assert EncodecCodec.from_pretrained(str(tmp_path / "w"), bandwidth=20.0).n_q == 1
    assert load_encodec(tmp_path / "w", n_q=6).config.n_q == 6
    with pytest.raises(ValueError, match="holds an EnCodec model, not DAC"):
        load_dac(tmp_path / "w")
    with pytest.raises(ValueError, match="not encodec_24khz"):  # 24 kHz, but hop 6 instead of 320
        load_codec("encodec_24khz", str(tmp_path / "w"))
    with pytest.raises(ValueError, match="unknown codec 'encodec'.*encodec_24khz"):
        load_codec("encodec")


def test_load_codec_random_full_size_model():
    codec = load_codec("encodec_24khz", bucket_frames=8)
    assert isinstance(codec, EncodecCodec) and (codec.n_q, codec.frame_rate, codec.hop_length) == (4, 75.0, 320)
    assert load_codec("encodec_24khz", bandwidth=12.0).n_q == 16 and load_codec("encodec_24khz", n_q=2).n_q == 2
    codes = codec.encode(_noise(2400, 0)[None], 24_000)
    assert codes.shape == (1, 4, 8) and codes.min() >= 0 and codes.max() < 1024
    wav = codec.decode(codes)
    assert wav.shape == (1, 8 * 320) and np.all(np.isfinite(wav)) and np.abs(wav).max() > 0
