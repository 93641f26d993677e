"""The README's main command runs end to end: tokenizer -> codec -> delay -> training -> greedy
recurrent decoding -> undelay -> codec decoder -> wav."""

from __future__ import annotations

import soundfile

from experiments import quickstart


def test_quickstart_writes_a_wav(tmp_path, capsys):
    assert quickstart.main(["--steps", "40", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "generated" in printed and "of codes equal the trained ones" in printed
    audio, rate = soundfile.read(tmp_path / "sample.wav")
    assert rate == 24000 and audio.ndim == 1 and len(audio) > 0


def test_quickstart_bad_config_is_one_line_error(capsys):
    assert quickstart.main(["model.nope=1"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown config key 'model.nope'")
