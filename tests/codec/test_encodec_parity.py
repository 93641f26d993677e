"""Parity with Meta's PyTorch EnCodec 24 kHz (``encodec`` 0.1.1, the oracle) through its checkpoint format.

The real 24 kHz architecture (``EncodecModel.encodec_model_24khz(pretrained=False)``, 14.9M
parameters) with random weights — weight-norm gains, biases and codebooks drawn, see
``torch_oracle.build_reference_encodec`` — is saved as a bare state dict like the official
``encodec_24khz-d7cc33bc.th``, converted with ``small_e_jax.codec.convert``, and our Flax model must
give **identical codes** (fp32) and decoded audio within ``DECODE_ATOL``. Batches are compared
item by item with the PyTorch model run on each item alone (its own length, no padding). Short
clips keep this fast. Skipped when torch / encodec are not installed, except under CI
(``pip install --no-deps -r requirements-oracle.txt``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from . import torch_oracle

REF = torch_oracle.import_reference_encodec()
if REF is None and os.environ.get("CI"):
    raise ImportError("CI: the PyTorch EnCodec oracle failed to import; see requirements-oracle.txt")
if REF is None:
    pytest.skip("PyTorch EnCodec oracle not installed (pip install --no-deps -r requirements-oracle.txt)",
                allow_module_level=True)

import torch  # noqa: E402

from small_e_jax.codec import EncodecCodec, load_codec, num_params  # noqa: E402
from small_e_jax.cli.codec_convert import main  # noqa: E402
from small_e_jax.codec.convert import (convert, convert_encodec_state_dict, encodec_config_from_state_dict,  # noqa: E402
                                       load_checkpoint)
from small_e_jax.codec.weights import load_encodec  # noqa: E402

HOP = 320
SR = 24_000

# Decoded audio (no output activation; peak ~0.3 here) may differ by float rounding only:
# measured max |diff| ~3e-7 on these clips; 1e-5 leaves headroom.
DECODE_ATOL = 1e-5


def _clip(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    tone = 0.3 * np.sin(2 * np.pi * (180 + 37 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return np.clip(tone + 0.1 * rng.standard_normal(n), -1, 1).astype(np.float32)


def _batch(lengths: list[int], fill_seed: int | None = None) -> np.ndarray:
    """Items zero-padded (or, with ``fill_seed``, noise-padded: must not matter) to the longest."""
    out = np.zeros((len(lengths), max(lengths)), np.float32)
    if fill_seed is not None:
        out[:] = np.clip(np.random.default_rng(fill_seed).standard_normal(out.shape) * 0.5, -1, 1)
    for i, n in enumerate(lengths):
        out[i, :n] = _clip(n, i + n)
    return out


@pytest.fixture(scope="module")
def reference():
    return torch_oracle.build_reference_encodec(seed=0)


@pytest.fixture(scope="module")
def converted(reference, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("encodec")
    torch.save(reference.state_dict(), tmp / "encodec_24khz-test.th")  # bare state dict, as the official file
    assert main(["--from", str(tmp / "encodec_24khz-test.th"), "--to", str(tmp / "flax")]) == 0
    return tmp


@pytest.fixture(scope="module")
def codec(converted) -> EncodecCodec:
    return EncodecCodec.from_pretrained(str(converted / "flax"))


def test_conversion_detects_encodec_and_folds_weight_norm(converted, reference):
    meta = json.loads((converted / "flax" / "config.json").read_text())
    assert meta["format"] == "small_e_jax.codec.encodec"
    assert meta["config"]["n_q"] == 4 and meta["config"]["ratios"] == [8, 5, 4, 2] and meta["config"]["n_codebooks"] == 32
    assert len(meta["source"]["sha256"]) == 64
    model = load_encodec(converted / "flax")
    conv = reference.encoder.model[0].conv.conv  # SConv1d(1, 32, 7)
    folded = torch._weight_norm(conv.weight_v, conv.weight_g, 0).detach().numpy()
    np.testing.assert_allclose(np.asarray(model.encoder.conv_in.kernel[...]), folded.transpose(2, 1, 0),
                               rtol=1e-6, atol=1e-7)
    assert np.abs(folded - conv.weight_v.detach().numpy()).max() > 1e-3  # gains randomised: folding matters
    convtr = reference.decoder.model[3].convtr.convtr  # SConvTranspose1d(512, 256, 16, stride 8)
    folded_t = torch._weight_norm(convtr.weight_v, convtr.weight_g, 0).detach().numpy()  # [C_in, C_out, K]
    np.testing.assert_allclose(np.asarray(model.decoder.upsample[0].conv.kernel[...]), folded_t.transpose(2, 0, 1),
                               rtol=1e-6, atol=1e-7)
    lstm = reference.encoder.model[13].lstm
    np.testing.assert_array_equal(np.asarray(model.encoder.lstm.layers[1].kernel_hh[...]),
                                  lstm.weight_hh_l1.detach().numpy().T)
    np.testing.assert_allclose(np.asarray(model.encoder.lstm.layers[0].bias[...]),
                               (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(model.quantizer.codebook[5]),
                                  reference.quantizer.vq.layers[5]._codebook.embed.numpy())
    # Parameters: torch's minus the folded gains and the summed LSTM biases, plus the codebook buffers.
    torch_params = sum(p.numel() for p in reference.parameters())
    assert torch_params == 14_851_810  # "14.9M"
    gains = sum(p.numel() for n, p in reference.named_parameters() if n.endswith("weight_g"))
    assert num_params(model) == torch_params - gains - 4 * 2048 + 32 * 1024 * 128


@pytest.mark.parametrize("lengths", [[4000], [1], [2, 320, 321], [7000, 641, 5, 3333]])
def test_codes_identical_to_reference_at_3kbps(codec, reference, lengths):
    codes, frames = codec.encode_with_lengths(_batch(lengths, fill_seed=1), SR, lengths)
    assert codes.shape == (len(lengths), 4, -(-max(lengths) // HOP))
    for i, n in enumerate(lengths):
        ref = torch_oracle.reference_encodec_encode(reference, _clip(n, i + n), bandwidth=3.0)
        assert ref.shape == (4, -(-n // HOP)) and frames[i] == ref.shape[1]
        np.testing.assert_array_equal(codes[i, :, :frames[i]], ref, err_msg=f"item {i} (length {n})")
        assert np.all(codes[i, :, frames[i]:] == -1)
    if max(lengths) >= 3000:
        assert len(np.unique(codes[codes >= 0])) > 16, "degenerate codes would make the comparison vacuous"


def test_codes_identical_at_6kbps_and_prefix_of_more_codebooks(converted, codec, reference):
    six = EncodecCodec.from_pretrained(str(converted / "flax"), bandwidth=6.0)
    assert six.n_q == 8 and six.bandwidth == pytest.approx(6.0)
    lengths = [2900, 1000]
    codes, frames = six.encode_with_lengths(_batch(lengths), SR, lengths)
    for i, n in enumerate(lengths):
        ref = torch_oracle.reference_encodec_encode(reference, _clip(n, i + n), bandwidth=6.0)
        assert ref.shape == (8, -(-n // HOP))
        np.testing.assert_array_equal(codes[i, :, :frames[i]], ref, err_msg=f"item {i} (length {n})")
    # Residual quantisation: the 3 kbps codes are the first 4 of the 6 kbps ones.
    np.testing.assert_array_equal(codec.encode(_batch(lengths), SR, lengths), codes[:, :4])


def test_latents_match_reference(codec, reference):
    clip = _clip(3000, 3)
    z, _ = codec.model.encode_latents(np.asarray(clip)[None])
    ref = torch_oracle.reference_encodec_latents(reference, clip)
    assert np.asarray(z).shape[1:] == ref.shape == (10, 128)
    np.testing.assert_allclose(np.asarray(z)[0], ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("bandwidth,lengths", [(3.0, [4000]), (6.0, [2900, 700, 320])])
def test_decoded_audio_matches_reference(converted, reference, bandwidth, lengths):
    codec = EncodecCodec.from_pretrained(str(converted / "flax"), bandwidth=bandwidth)
    refs = [torch_oracle.reference_encodec_encode(reference, _clip(n, n), bandwidth) for n in lengths]
    f_max = max(r.shape[1] for r in refs)
    codes = np.full((len(refs), codec.n_q, f_max), -1, np.int32)
    for i, r in enumerate(refs):
        codes[i, :, :r.shape[1]] = r
    frames = [r.shape[1] for r in refs]
    wav = codec.decode(codes, frames)
    assert wav.shape == (len(refs), f_max * HOP)
    for i, r in enumerate(refs):
        expected = torch_oracle.reference_encodec_decode(reference, r)
        assert len(expected) == frames[i] * HOP and np.abs(expected).max() > 0.05
        np.testing.assert_allclose(wav[i, :len(expected)], expected, rtol=0, atol=DECODE_ATOL)
        assert np.all(wav[i, len(expected):] == 0)


def test_load_codec_by_preset_name(converted):
    codec = load_codec("encodec_24khz", str(converted / "flax"))
    assert isinstance(codec, EncodecCodec) and (codec.sample_rate, codec.frame_rate, codec.n_q) == (SR, 75.0, 4)
    assert load_codec("encodec_24khz", str(converted / "flax"), n_q=16).n_q == 16
    with pytest.raises(ValueError, match="holds an EnCodec model, not DAC"):
        load_codec("dac_24khz", str(converted / "flax"))


def test_convert_rejects_bad_encodec_checkpoints(converted, tmp_path, capsys):
    src = converted / "encodec_24khz-test.th"
    sd, _ = load_checkpoint(src)
    cfg = encodec_config_from_state_dict(sd)
    assert (cfg.hop_length, cfg.n_codebooks, cfg.codebook_size, cfg.lstm_layers) == (320, 32, 1024, 2)
    obj = torch.load(src, map_location="cpu", weights_only=True)
    obj["decoder.extra.weight"] = torch.zeros(3)
    torch.save(obj, tmp_path / "extra.th")
    with pytest.raises(ValueError, match="does not use.*decoder.extra.weight"):
        convert(tmp_path / "extra.th", tmp_path / "o")
    obj = torch.load(src, map_location="cpu", weights_only=True)
    del obj["decoder.model.1.lstm.bias_hh_l1"]
    torch.save(obj, tmp_path / "missing.th")
    with pytest.raises(ValueError, match="missing decoder.model.1.lstm.bias_hh_l1"):
        convert(tmp_path / "missing.th", tmp_path / "o")
    obj = torch.load(src, map_location="cpu", weights_only=True)
    obj["encoder.model.0.conv.conv.weight_v"] = torch.zeros(32, 2, 7)  # a stereo model (like the 48 kHz one)
    torch.save(obj, tmp_path / "stereo.th")
    with pytest.raises(ValueError, match="2 audio channels is not supported"):
        convert(tmp_path / "stereo.th", tmp_path / "o")
    # --model encodec on a checkpoint that is not EnCodec.
    torch.save({"state_dict": {"foo.weight": torch.zeros(2)}}, tmp_path / "foreign.pth")
    assert main(["--from", str(tmp_path / "foreign.pth"), "--to", str(tmp_path / "o"), "--model", "encodec"]) == 2
    assert "does not look like an EnCodec model" in capsys.readouterr().err
    # The converted arrays are exactly what the saved model holds (no silent changes on the way).
    arrays = convert_encodec_state_dict(sd, cfg)
    model = load_encodec(converted / "flax")
    np.testing.assert_array_equal(np.asarray(model.decoder.conv_out.kernel[...]), arrays["decoder.conv_out.kernel"])
