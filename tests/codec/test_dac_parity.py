"""Parity with the PyTorch reference DAC (the oracle) through the official checkpoint format.

A random PyTorch DAC (descript-audio-codec, weight norm and all) is saved exactly like the
official release files, converted with ``small_e_jax.codec.convert``, and our Flax model must then
give **identical codes** (fp32) and decoded audio within ``DECODE_ATOL`` for several lengths and
batch sizes. Skipped when torch / descript-audio-codec are not installed, except under CI
(``pip install --no-deps -r requirements-oracle.txt``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from . import torch_oracle

REF = torch_oracle.import_reference_dac()
if REF is None and os.environ.get("CI"):
    # CI installs the oracle (the README's test command); a broken install must fail, not skip.
    raise ImportError("CI: the PyTorch DAC oracle failed to import; see requirements-oracle.txt")
if REF is None:
    pytest.skip("PyTorch DAC oracle not installed (pip install --no-deps -r requirements-oracle.txt)",
                allow_module_level=True)

import torch  # noqa: E402

from small_e_jax.codec import DACCodec  # noqa: E402
from small_e_jax.cli.codec_convert import main  # noqa: E402
from small_e_jax.codec.convert import config_from_state_dict, convert, convert_state_dict, load_checkpoint  # noqa: E402
from small_e_jax.codec.weights import load_dac  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

# Decoded audio (tanh output in [-1, 1]) may differ by float rounding only: measured max |diff|
# ~1e-6 on the small config and ~1e-6 on the full 24 kHz model; 2e-5 leaves headroom.
DECODE_ATOL = 2e-5

# Same architecture as the official models, small: hop 40 with an odd stride (5), 6 codebooks.
SMALL_KWARGS = dict(encoder_dim=8, encoder_rates=[2, 4, 5], decoder_dim=32, decoder_rates=[5, 4, 2],
                    n_codebooks=6, codebook_size=64, codebook_dim=4, sample_rate=16_000)
HOP = 40


def _clip(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16_000
    tone = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.clip(tone + 0.1 * rng.standard_normal(n), -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def reference():
    return torch_oracle.build_reference(SMALL_KWARGS, seed=0)


@pytest.fixture(scope="module")
def converted(reference, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("dac")
    torch_oracle.save_official(reference, tmp / "weights.pth")
    assert main(["--from", str(tmp / "weights.pth"), "--to", str(tmp / "flax"), "--n-q", "6"]) == 0
    return tmp


@pytest.fixture(scope="module")
def codec(converted) -> DACCodec:
    return DACCodec.from_pretrained(str(converted / "flax"))


def test_checkpoint_is_in_the_official_format(converted):
    obj = torch.load(converted / "weights.pth", map_location="cpu", weights_only=True)
    assert set(obj) == {"state_dict", "metadata"} and obj["metadata"]["kwargs"]["encoder_rates"] == [2, 4, 5]
    assert any(k.endswith("weight_g") for k in obj["state_dict"])


def test_conversion_writes_config_and_folds_weight_norm(converted, reference):
    meta = json.loads((converted / "flax" / "config.json").read_text())
    assert meta["config"]["n_q"] == 6 and meta["config"]["decoder_rates"] == [5, 4, 2]
    assert len(meta["source"]["sha256"]) == 64
    model = load_dac(converted / "flax")
    conv = reference.encoder.block[0]  # WNConv1d(1, 8, 7)
    folded = torch._weight_norm(conv.weight_v, conv.weight_g, 0).detach().numpy()  # [C_out, C_in, K]
    np.testing.assert_allclose(np.asarray(model.encoder.conv_in.kernel[...]), folded.transpose(2, 1, 0),
                               rtol=1e-6, atol=1e-7)
    conv_t = reference.decoder.model[1].block[1]  # WNConvTranspose1d(32, 16, 10, stride 5)
    folded_t = torch._weight_norm(conv_t.weight_v, conv_t.weight_g, 0).detach().numpy()  # [C_in, C_out, K]
    np.testing.assert_allclose(np.asarray(model.decoder.blocks[0].conv_t.kernel[...]), folded_t.transpose(2, 0, 1),
                               rtol=1e-6, atol=1e-7)
    # The gains were randomised, so folding is not the identity.
    assert np.abs(folded - conv.weight_v.detach().numpy()).max() > 1e-3


@pytest.mark.parametrize("lengths", [[40], [1], [1000], [4000, 1333], [517, 2777, 40, 1999]])
def test_codes_identical_to_reference(codec, reference, lengths):
    batch = np.zeros((len(lengths), max(lengths)), np.float32)
    for i, n in enumerate(lengths):
        batch[i, :n] = _clip(n, i + n)
    codes, frames = codec.encode_with_lengths(batch, 16_000, lengths)
    for i, n in enumerate(lengths):
        ref = torch_oracle.reference_encode(reference, batch[i, :n], n_q=6)
        assert ref.shape == (6, -(-n // HOP)) and frames[i] == ref.shape[1]
        np.testing.assert_array_equal(codes[i, :, :frames[i]], ref, err_msg=f"item {i} (length {n})")
    if max(lengths) >= 1000:
        assert len(np.unique(codes[codes >= 0])) > 8, "degenerate codes would make the comparison vacuous"


def test_fewer_codebooks_are_a_prefix(codec, reference, converted):
    clip = _clip(1200, 7)
    four = DACCodec.from_pretrained(str(converted / "flax"), n_q=4).encode(clip[None], 16_000)[0]
    np.testing.assert_array_equal(four, torch_oracle.reference_encode(reference, clip, n_q=4))
    np.testing.assert_array_equal(four, codec.encode(clip[None], 16_000)[0, :4])


def test_latents_match_reference(codec, reference):
    clip = _clip(2000, 3)
    z, _ = codec.model.encode_latents(np.asarray(clip)[None])
    ref = torch_oracle.reference_latents(reference, clip)
    np.testing.assert_allclose(np.asarray(z)[0], ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("lengths", [[1000], [4000, 1333, 40]])
def test_decoded_audio_matches_reference(codec, reference, lengths):
    refs = [torch_oracle.reference_encode(reference, _clip(n, n), n_q=6) for n in lengths]
    f_max = max(r.shape[1] for r in refs)
    codes = np.full((len(refs), 6, f_max), -1, np.int32)
    for i, r in enumerate(refs):
        codes[i, :, :r.shape[1]] = r
    frames = [r.shape[1] for r in refs]
    wav = codec.decode(codes, frames)
    for i, r in enumerate(refs):
        expected = torch_oracle.reference_decode(reference, r)
        # DAC's decoder makes F*hop - 8 samples here (stride 5 loses one, x4 and x2 make it 8): we zero-pad.
        assert len(expected) <= frames[i] * HOP
        np.testing.assert_allclose(wav[i, :len(expected)], expected, rtol=0, atol=DECODE_ATOL)
        assert np.all(wav[i, len(expected):] == 0)
        assert np.abs(expected).max() > 0.05


def test_parametrization_style_weight_norm_keys_convert_identically(converted):
    sd, kwargs = load_checkpoint(converted / "weights.pth")
    renamed = {}
    for k, v in sd.items():
        k = k.replace(".weight_g", ".parametrizations.weight.original0").replace(
            ".weight_v", ".parametrizations.weight.original1")
        renamed[k] = v
    cfg = config_from_state_dict(sd, kwargs)
    a, b = convert_state_dict(sd, cfg), convert_state_dict(renamed, cfg)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_bare_state_dict_needs_sample_rate(converted, tmp_path, reference):
    torch.save(reference.state_dict(), tmp_path / "bare.pth")
    with pytest.raises(ValueError, match="pass --sample-rate"):
        convert(tmp_path / "bare.pth", tmp_path / "out")
    cfg = convert(tmp_path / "bare.pth", tmp_path / "out", sample_rate=16_000)
    assert cfg.encoder_rates == (2, 4, 5) and cfg.n_codebooks == 6 and cfg.latent_dim is None


def test_convert_rejects_bad_inputs(converted, tmp_path, reference, capsys):
    # Missing file, through the real entry point (exit status 2, one-line error).
    proc = subprocess.run([sys.executable, "-m", "small_e_jax.codec.convert", "--from", str(tmp_path / "nope.pth"),
                           "--to", str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr, proc.stderr
    # Corrupt / truncated files.
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all" * 100)
    assert main(["--from", str(tmp_path / "junk.pth"), "--to", str(tmp_path / "o")]) == 2
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err
    data = (converted / "weights.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        convert(tmp_path / "cut.pth", tmp_path / "o")
    # A state dict with a tensor our architecture does not have, or metadata that contradicts it.
    obj = torch.load(converted / "weights.pth", map_location="cpu", weights_only=True)
    obj["state_dict"]["encoder.extra.weight"] = torch.zeros(3)
    torch.save(obj, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="does not use.*encoder.extra.weight"):
        convert(tmp_path / "extra.pth", tmp_path / "o")
    obj = torch.load(converted / "weights.pth", map_location="cpu", weights_only=True)
    obj["metadata"]["kwargs"]["codebook_size"] = 1024
    torch.save(obj, tmp_path / "meta.pth")
    with pytest.raises(ValueError, match="metadata says codebook_size=1024 but the tensors say 64"):
        convert(tmp_path / "meta.pth", tmp_path / "o")
    obj = torch.load(converted / "weights.pth", map_location="cpu", weights_only=True)
    del obj["state_dict"]["decoder.model.2.block.3.block.1.bias"]
    torch.save(obj, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="missing decoder.model.2.block.3.block.1.bias"):
        convert(tmp_path / "missing.pth", tmp_path / "o")
    torch.save({"state_dict": {"foo.weight": torch.zeros(2)}}, tmp_path / "foreign.pth")
    with pytest.raises(ValueError, match="does not look like a DAC model"):
        convert(tmp_path / "foreign.pth", tmp_path / "o")
    # Existing output is not overwritten silently.
    assert main(["--from", str(converted / "weights.pth"), "--to", str(converted / "flax")]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.slow
def test_full_24khz_model_parity(tmp_path):
    """The official 24 kHz architecture (random weights): parameter count, codes and audio on 0.5 s."""
    kwargs = dict(encoder_dim=64, encoder_rates=[2, 4, 5, 8], decoder_dim=1536, decoder_rates=[8, 5, 4, 2],
                  n_codebooks=32, codebook_size=1024, codebook_dim=8, sample_rate=24_000)
    ref = torch_oracle.build_reference(kwargs, seed=0)
    torch_params = sum(p.numel() for p in ref.parameters())
    gains = sum(p.numel() for n, p in ref.named_parameters() if n.endswith("weight_g"))
    assert torch_params == 74_708_706  # "74.7M"
    torch_oracle.save_official(ref, tmp_path / "weights_24khz.pth")
    cfg = convert(tmp_path / "weights_24khz.pth", tmp_path / "flax")
    assert (cfg.hop_length, cfg.frame_rate, cfg.num_quantizers, cfg.bitrate) == (320, 75.0, 4, 3000.0)
    codec = DACCodec.from_pretrained(str(tmp_path / "flax"))
    from small_e_jax.codec import num_params
    assert num_params(codec.model) == torch_params - gains
    clip = np.clip(np.random.default_rng(0).standard_normal(12_000) * 0.3, -1, 1).astype(np.float32)
    codes = codec.encode(clip[None], 24_000)
    expected = torch_oracle.reference_encode(ref, clip, n_q=4)
    assert codes.shape == (1, 4, 38)
    np.testing.assert_array_equal(codes[0], expected)
    wav = codec.decode(codes)
    ref_wav = torch_oracle.reference_decode(ref, expected)
    assert len(ref_wav) == 38 * 320 - 8
    np.testing.assert_allclose(wav[0, :len(ref_wav)], ref_wav, rtol=0, atol=DECODE_ATOL)
