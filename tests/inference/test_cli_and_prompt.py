"""The synthesize CLI's error paths and output, and voice-prompt checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from small_e_jax import synthesize
from small_e_jax.config import ConfigError
from small_e_jax.inference import Synthesizer


def test_cli_reports_a_bad_checkpoint(tmp_path, capsys):
    assert synthesize.main(["--checkpoint", str(tmp_path / "nope"), "--text", "Hi.", "--out",
                            str(tmp_path / "x.wav")]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --prompt-wav without its transcript
        synthesize.main(["--checkpoint", str(tmp_path), "--text", "Hi.", "--out", "x.wav",
                         "--prompt-wav", "p.wav"])


def test_cli_without_checkpoint_uses_the_shipped_model_or_says_none_ships(tmp_path, capsys, monkeypatch):
    from small_e_jax import shipped

    monkeypatch.setattr(shipped, "PRETRAINED_DIR", tmp_path / "pretrained")  # nothing shipped there
    assert synthesize.main(["--text", "Hi.", "--out", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no --checkpoint given and no shipped model named 'small_e_reading'")
    assert err.count("\n") == 1 and not (tmp_path / "x.wav").exists()


def tone(seconds, rate=80, amplitude=0.3):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 50 * t) * (1 + t)).astype(np.float32) / (1 + seconds)


def test_prompt_checks(synth):
    rate = synth.codec.sample_rate
    prompt = synth.make_prompt(tone(1.5), rate, "What the voice says.")
    assert prompt.codes.shape == (int(1.5 * rate) // synth.codec.hop_length, 4)
    assert prompt.text == "What the voice says."
    with pytest.raises(ValueError, match="too short"):
        synth.make_prompt(tone(0.3), rate, "Hi.")
    with pytest.raises(ValueError, match="too long"):
        synth.make_prompt(tone(20.0), rate, "Hi.")
    with pytest.raises(ValueError, match="silent"):
        synth.make_prompt(np.zeros(2 * rate, np.float32), rate, "Hi.")
    with pytest.raises(ValueError, match="transcript"):
        synth.make_prompt(tone(1.5), rate, "  ")


@pytest.mark.slow  # trains 2 steps, restores, compiles the decode loop and the DAC decoder
def test_cli_end_to_end(tmp_path, monkeypatch):
    from small_e_jax.train import run
    from tests.train.conftest import source, train_config

    config = train_config(tmp_path / "run", "trainer.steps=2", "optimizer.warmup_steps=1", "data.max_frames=30")
    run(config, source(config))
    out = tmp_path / "x.wav"
    assert synthesize.main(["--checkpoint", str(tmp_path / "run"), "--text", "Hello there.", "--out", str(out),
                            "--greedy", "--max-frames", "12"]) == 0
    wav, rate = soundfile.read(str(out))
    synth = Synthesizer.from_checkpoint(tmp_path / "run")
    # The default, auto: XLA on the CPU whatever the rows (the fused kernels are for GPUs).
    assert synth.model.config.decode_kernels == "auto" and synth.model.fused_decode_weights(1) is None
    fused = Synthesizer.from_checkpoint(tmp_path / "run", decode_kernels="pallas", min_rows=1)
    assert fused.model.config.decode_kernels == "pallas" and fused.model.fused_decode_weights() is not None
    with pytest.raises(ConfigError, match="decode_kernels"):
        Synthesizer.from_checkpoint(tmp_path / "run", decode_kernels="triton")
    codes = synth.generate(["Hello there."], max_frames=12, sampling=synth_greedy())[0]
    assert rate == 24000 and len(wav) == len(codes) * synth.codec.hop_length
    texts = tmp_path / "texts.txt"
    texts.write_text("One.\nTwo, three.\n")
    assert synthesize.main(["--checkpoint", str(tmp_path / "run"), "--texts-file", str(texts), "--out",
                            str(tmp_path / "many"), "--max-frames", "8", "--top-k", "5"]) == 0
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["0000.wav", "0001.wav", "manifest.jsonl"]
    manifest = [json.loads(line) for line in (tmp_path / "many" / "manifest.jsonl").read_text().splitlines()]
    assert manifest == [{"path": "0000.wav", "text": "One."}, {"path": "0001.wav", "text": "Two, three."}]
    streamed = tmp_path / "s.wav"
    assert synthesize.main(["--checkpoint", str(tmp_path / "run"), "--text", "Hello there.", "--out",
                            str(streamed), "--greedy", "--max-frames", "12", "--stream", "--chunk-frames", "4"]) == 0
    np.testing.assert_allclose(soundfile.read(str(streamed))[0], wav, atol=1e-3)
    # No --checkpoint: the model shipped in the package (here the same run, exported as one).
    from small_e_jax import pretrained, shipped

    pretrained.export(tmp_path / "run", tmp_path / "pretrained" / shipped.DEFAULT_MODEL, card={"data": "test"})
    monkeypatch.setattr(shipped, "PRETRAINED_DIR", tmp_path / "pretrained")
    default = tmp_path / "default.wav"
    assert synthesize.main(["--text", "Hello there.", "--out", str(default), "--greedy", "--max-frames", "12"]) == 0
    assert len(soundfile.read(str(default))[0]) == len(wav)


def synth_greedy():
    from small_e_jax.sampling import GREEDY

    return GREEDY
