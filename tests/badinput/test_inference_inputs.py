"""Bad inference and evaluation input: texts, prompts, sampling values, checkpoints, manifests.
Each ends the CLI with one ``error:`` line and exit 2 before the model is restored or an ASR
model is loaded (so these cases are cheap), and writes no output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from small_e_jax import evaluate, synthesize


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint folder that is never reached: every case fails before the restore."""
    path = tmp_path / "ckpt"
    path.mkdir()
    return path


def _synth(checkpoint, out, *argv):
    return ["--checkpoint", str(checkpoint), "--out", str(out), *argv]


SYNTH = {
    "empty_text": (["--text", "  "], r"--text is empty"),
    "temperature_negative": (["--text", "Hi.", "--temperature", "-1"], r"temperature must be > 0"),
    "temperature_nan": (["--text", "Hi.", "--temperature", "nan"], r"temperature must be a finite number"),
    "top_k_negative": (["--text", "Hi.", "--top-k", "-5"], r"top_k must be >= 0"),
    "top_p_above_one": (["--text", "Hi.", "--top-p", "2"], r"top_p must be in \(0, 1\]"),
    "repetition_penalty_below_one": (["--text", "Hi.", "--repetition-penalty", "0.5"], r"repetition_penalty must be >= 1"),
    "repetition_penalty_inf": (["--text", "Hi.", "--repetition-penalty", "inf"], r"repetition_penalty must be a finite"),
    "cfg_scale_nan": (["--text", "Hi.", "--cfg-scale", "nan"], r"cfg_scale must be a finite number"),
    "max_frames_zero": (["--text", "Hi.", "--max-frames", "0"], r"--max-frames must be > 0"),
    "top_k_not_a_number": (["--text", "Hi.", "--top-k", "many"], r"--top-k: invalid int value"),
    "prompt_without_text": (["--text", "Hi.", "--prompt-wav", "p.wav"], r"--prompt-wav and --prompt-text go together"),
    "stream_with_file": (["--texts-file", "t.txt", "--stream"], r"--stream takes one --text"),
}


@pytest.mark.parametrize("name", SYNTH)
def test_synthesize_bad_argument(expect_error, checkpoint, tmp_path, name):
    argv, pattern = SYNTH[name]
    out = tmp_path / "out.wav"
    expect_error(synthesize.main, _synth(checkpoint, out, *argv), 2, pattern, keep=[checkpoint])
    assert not out.exists()


def test_synthesize_prompt_file_missing(expect_error, checkpoint, tmp_path):
    expect_error(synthesize.main, _synth(checkpoint, tmp_path / "o.wav", "--text", "Hi.", "--prompt-wav",
                                         str(tmp_path / "voice.wav"), "--prompt-text", "Hello."),
                 2, r"--prompt-wav .*voice\.wav does not exist")


def test_synthesize_prompt_not_audio(expect_error, checkpoint, tmp_path):
    prompt = tmp_path / "voice.wav"
    prompt.write_text("not audio at all")
    expect_error(synthesize.main, _synth(checkpoint, tmp_path / "o.wav", "--text", "Hi.", "--prompt-wav",
                                         str(prompt), "--prompt-text", "Hello."),
                 2, r"--prompt-wav .*voice\.wav is not readable audio", keep=[prompt])


def test_synthesize_texts_file_missing(expect_error, checkpoint, tmp_path):
    expect_error(synthesize.main, _synth(checkpoint, tmp_path / "o", "--texts-file", str(tmp_path / "t.txt")),
                 2, r"--texts-file .*t\.txt does not exist")


def test_synthesize_texts_file_not_utf8(expect_error, checkpoint, tmp_path):
    texts = tmp_path / "t.txt"
    texts.write_bytes(b"Hello.\n\xff\xfe bad\n")
    expect_error(synthesize.main, _synth(checkpoint, tmp_path / "o", "--texts-file", str(texts)),
                 2, r"--texts-file .*t\.txt is not UTF-8", keep=[texts])


def test_synthesize_ist_file_missing(expect_error, checkpoint, tmp_path):
    expect_error(synthesize.main, _synth(checkpoint, tmp_path / "o.wav", "--text", "Hi.", "--ist",
                                         str(tmp_path / "voice.npz")), 2, r"--ist .*voice\.npz does not exist")


def test_synthesize_checkpoint_missing(expect_error, tmp_path):
    expect_error(synthesize.main, _synth(tmp_path / "nope", tmp_path / "o.wav", "--text", "Hi."),
                 2, r"nope")


def test_synthesize_checkpoint_without_steps(expect_error, checkpoint, tmp_path):
    expect_error(synthesize.main, _synth(checkpoint, tmp_path / "o.wav", "--text", "Hi."), 2, r"ckpt",
                 keep=[checkpoint])


# Evaluation: manifests and audio are checked before an ASR or speaker model is loaded.
def _manifest(tmp_path, rows: list, raw: bytes = b"") -> str:
    path = tmp_path / "eval.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + raw)
    return str(path)


def _audio(tmp_path, name="a.wav"):
    sf.write(tmp_path / name, np.zeros(1600, np.float32), 16000)
    return name


EVAL = {
    "manifest_missing": (lambda t: ["wer", "--manifest", str(t / "nope.jsonl")], r"nope\.jsonl does not exist"),
    "manifest_not_json": (lambda t: ["wer", "--manifest", _manifest(t, [], b"{oops\n")], r"eval\.jsonl:1: not JSON"),
    "manifest_not_utf8": (lambda t: ["wer", "--manifest", _manifest(t, [], b'{"path": "\xff"}\n')],
                          r"eval\.jsonl:1: not UTF-8"),
    "manifest_row_not_object": (lambda t: ["wer", "--manifest", _manifest(t, [[1, 2]])],
                                r"eval\.jsonl:1: expected a JSON object, got list"),
    "manifest_row_without_text": (lambda t: ["wer", "--manifest", _manifest(t, [{"path": "a.wav"}])],
                                  r"needs 'path' \(or 'audio'\) and 'text'"),
    "manifest_empty": (lambda t: ["wer", "--manifest", _manifest(t, [])], r"eval\.jsonl: no rows"),
    "audio_missing": (lambda t: ["wer", "--manifest", _manifest(t, [{"path": "gone.wav", "text": "hi"}])],
                      r"audio file .*gone\.wav does not exist"),
    "audio_not_audio": (lambda t: ["wer", "--manifest", _manifest(t, [{"path": _audio(t), "text": "hi"},
                                                                       {"path": "eval.jsonl", "text": "hi"}])],
                        r"audio file .*eval\.jsonl is not readable audio"),
    "transcripts_missing_field": (lambda t: ["wer", "--transcripts", _manifest(t, [{"text": "hi"}])],
                                  r"need 'text' and 'transcript'"),
    "unknown_command": (lambda t: ["score"], r"invalid choice: 'score'"),
    "report_bad_run": (lambda t: ["report", "--out-dir", str(t / "r"), "--run", "nameonly"],
                       r"--run 'nameonly': expected NAME=PATH"),
    "perplexity_checkpoint_missing": (lambda t: ["perplexity", "--checkpoint", str(t / "nope")],
                                      r"checkpoint directory .*nope does not exist"),
}


@pytest.mark.parametrize("name", EVAL)
def test_evaluate_bad_input(expect_error, tmp_path, name):
    make_argv, pattern = EVAL[name]
    argv = make_argv(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    expect_error(evaluate.main, argv, 2, pattern, keep=[tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no result file written
