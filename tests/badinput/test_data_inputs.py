"""Bad data-build input: bad manifest rows of every layout are reported (file, line, reason) and
skipped while the good rows are kept; bad audio is rejected with a reason; bad build arguments
and unusable manifests end the build CLI with one ``error:`` line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_pipeline.audio_io import AudioLimits, BadInput, load_audio
from data_pipeline.segment import read_transcripts
from data_pipeline.sources import read_folder

GOOD_JSONL = [b'{"path": "a.wav", "text": "one", "id": "a"}', b'{"path": "b.wav", "text": "two", "id": "b"}']
# name -> (the bad line placed third in manifest.jsonl, expected reason)
JSONL_ROWS = {
    "not_utf8": (b'{"path": "c.wav", "text": "caf\xe9", "id": "c"}', "not UTF-8: byte 0xe9"),
    "malformed_json": (b'{"path": "c.wav", "text": ', "malformed JSON: Expecting value"),
    "not_an_object": (b'["c.wav", "three"]', "malformed JSON: expected an object, got list"),
    "missing_path": (b'{"text": "three", "id": "c"}', "missing field: path"),
    "missing_text": (b'{"path": "c.wav", "id": "c"}', "missing field: text"),
    "path_not_text": (b'{"path": {"file": "c.wav"}, "text": "three"}', "bad field: field 'path' must be text"),
    "duplicate_id": (b'{"path": "c.wav", "text": "three", "id": "a"}', "duplicate row: id 'a' is already at line 1"),
}


@pytest.mark.parametrize("name", JSONL_ROWS)
def test_jsonl_manifest_row(expect_reported, tmp_path, name):
    bad, reason = JSONL_ROWS[name]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(b"\n".join([*GOOD_JSONL, bad]) + b"\n")
    issues: list = []
    utts = read_folder(tmp_path, issues=issues)
    assert [u.source_id for u in utts] == ["a", "b"]  # the good rows survive
    expect_reported(issues, manifest, 3, reason)


CSV_ROWS = {
    "not_utf8": (b"c.wav,caf\xe9", "not UTF-8"),
    "too_many_fields": (b"c.wav,three,extra", "malformed CSV: 3 fields, the header has 2"),
    "duplicate_path": (b"a.wav,again", "duplicate row: id 'a' is already at line 2"),
}


@pytest.mark.parametrize("name", CSV_ROWS)
def test_csv_manifest_row(expect_reported, tmp_path, name):
    bad, reason = CSV_ROWS[name]
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(b"path,text\na.wav,one\nb.wav,two\n" + bad + b"\n")
    issues: list = []
    assert [u.source_id for u in read_folder(tmp_path, issues=issues)] == ["a", "b"]
    expect_reported(issues, manifest, 4, reason)


LJSPEECH_ROWS = {
    "not_utf8": (b"LJ3|caf\xe9|cafe", "not UTF-8: byte 0xe9"),
    "no_separator": (b"LJ3 three", "malformed row: expected id|text|normalized_text"),
    "empty_id": (b"|three|three", "malformed row"),
    "duplicate_id": (b"LJ1|again|again", "duplicate row: id 'LJ1' is already at line 1"),
}


@pytest.mark.parametrize("name", LJSPEECH_ROWS)
def test_ljspeech_metadata_row(expect_reported, tmp_path, name):
    bad, reason = LJSPEECH_ROWS[name]
    metadata = tmp_path / "metadata.csv"
    metadata.write_bytes(b"LJ1|one|one\nLJ2|two|two\n" + bad + b"\n")
    issues: list = []
    assert [u.source_id for u in read_folder(tmp_path, issues=issues)] == ["LJ1", "LJ2"]
    expect_reported(issues, metadata, 3, reason)


def test_libritts_transcript_not_utf8(expect_reported, tmp_path):
    for stem, text in (("1_2_a", b"one"), ("1_2_b", b"caf\xe9")):
        sf.write(tmp_path / f"{stem}.wav", np.zeros(100, np.float32), 16000)
        (tmp_path / f"{stem}.normalized.txt").write_bytes(text)
    issues: list = []
    assert [u.source_id for u in read_folder(tmp_path, issues=issues)] == ["1_2_a"]
    expect_reported(issues, tmp_path / "1_2_b.normalized.txt", 1, "not UTF-8: byte 0xe9")


TRANSCRIPT_ROWS = {
    "malformed_json": (b'{"id": "s3", "text"', "malformed JSON"),
    "missing_id": (b'{"text": "three"}', "missing field: id"),
    "duplicate_id": (b'{"id": "s1", "text": "again"}', "duplicate row: id 's1' is already at line 1"),
}


@pytest.mark.parametrize("name", TRANSCRIPT_ROWS)
def test_librilight_transcript_row(expect_reported, tmp_path, name):
    bad, reason = TRANSCRIPT_ROWS[name]
    path = tmp_path / "transcripts.jsonl"
    path.write_bytes(b'{"id": "s1", "text": "one"}\n{"id": "s2", "text": "two"}\n' + bad + b"\n")
    issues: list = []
    assert read_transcripts(path, issues) == {"s1": "one", "s2": "two"}  # the first s1 is kept
    expect_reported(issues, path, 3, reason)


# Bad audio: rejected with a reason (the build reports it and goes on; tests/data builds it end to end).
def _tone(seconds: float, rate: int = 16000) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 200 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


AUDIO = {
    "missing": (None, "unreadable audio"),
    "not_audio": (b"this is a text file", "unreadable audio"),
    "truncated_header": (b"RIFF\x00\x00\x00\x00WAVEnot really", "unreadable audio"),
    "empty": (np.zeros(0, np.float32), "empty audio"),
    "silent": (np.zeros(16000, np.float32), "silent"),
    "too_short": (_tone(0.1), "too short"),
    "too_long": (_tone(31), "too long"),
    "nan_samples": (np.full(16000, np.nan, np.float32), "audio holds NaN or inf samples"),
}


@pytest.mark.parametrize("name", AUDIO)
def test_bad_audio_rejected_with_reason(record_property, tmp_path, name):
    content, reason = AUDIO[name]
    path = tmp_path / f"{name}.wav"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        sf.write(path, content, 16000, subtype="FLOAT")
    try:
        load_audio(str(path), 24000, AudioLimits())
        outcome, message = "silent", ""
    except BadInput as exc:
        message = str(exc)
        outcome = "clear" if message.startswith(reason) and "\n" not in message else "wrong"
    record_property("bad_input", outcome)
    assert outcome == "clear", message


# The build CLI: bad arguments and manifests with nothing usable end it with one line, exit 2.
def _build(tmp_path: Path, *argv: str) -> list[str]:
    return ["--data_dir", str(tmp_path / "tfds"), "--random_codec_weights", *argv]


def test_build_without_manual_dir(expect_error, tmp_path):
    from small_e_jax.cli.build_data import main
    expect_error(main, _build(tmp_path, "--dataset", "speech_folder"), 2, r"needs --manual-dir")


def test_build_manual_dir_missing(expect_error, tmp_path):
    from small_e_jax.cli.build_data import main
    expect_error(main, _build(tmp_path, "--dataset", "speech_folder", "--manual_dir", str(tmp_path / "nope")),
                 2, r"corpus folder .*nope does not exist")


def test_build_unknown_dataset(expect_error, tmp_path):
    from small_e_jax.cli.build_data import main
    expect_error(main, _build(tmp_path, "--dataset", "nosuch"), 2, r"--dataset: invalid choice: 'nosuch'")


def test_build_bad_number(expect_error, tmp_path):
    from small_e_jax.cli.build_data import main
    expect_error(main, _build(tmp_path, "--dataset", "mini", "--n_q", "four"), 2, r"--n-q: invalid int value")


def test_build_weights_not_a_directory(expect_error, tmp_path):
    from small_e_jax.cli.build_data import main
    expect_error(main, ["--dataset", "mini", "--data_dir", str(tmp_path), "--codec_weights", str(tmp_path / "w")],
                 2, r"--codec-weights .*w is not a directory")


def test_build_csv_header_without_columns(expect_error, tmp_path):
    from small_e_jax.cli.build_data import main
    manifest = tmp_path / "corpus.csv"
    manifest.write_text("file,words\na.wav,one\n")
    expect_error(main, _build(tmp_path, "--dataset", "speech_folder", "--manual_dir", str(manifest)),
                 2, r"corpus\.csv needs columns 'path' and 'text'; found \['file', 'words'\]", keep=[manifest])


def test_build_manifest_without_a_usable_row(expect_error, tmp_path):
    from small_e_jax.cli.build_data import main
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b'{"audio": "a.wav", "text": "one"}\n\xff\xfe\n')
    expect_error(main, _build(tmp_path, "--dataset", "speech_folder", "--manual_dir", str(manifest)),
                 2, r"m\.jsonl: no usable row \(2 bad; first: .*m\.jsonl:1: missing field: path\)", keep=[manifest])


def test_build_folder_of_no_known_layout(expect_error, tmp_path):
    from small_e_jax.cli.build_data import main
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.txt").write_text("nothing here")
    expect_error(main, _build(tmp_path, "--dataset", "speech_folder", "--manual_dir", str(corpus)),
                 2, r"no manifest\.jsonl/manifest\.csv, LJSpeech metadata\.csv or LibriTTS", keep=[corpus])


def test_build_synthetic_corpus_without_manifest(expect_error, tmp_path):
    from small_e_jax.cli.build_data import main
    expect_error(main, _build(tmp_path, "--dataset", "synthetic_corpus", "--manual_dir", str(tmp_path)),
                 2, r"manifest\.jsonl is missing")


def test_build_librilight_without_transcripts(expect_error, tmp_path):
    from small_e_jax.cli.build_data import main
    expect_error(main, _build(tmp_path, "--dataset", "librilight_medium", "--manual_dir", str(tmp_path)),
                 2, r"librilight_medium needs --transcripts")
