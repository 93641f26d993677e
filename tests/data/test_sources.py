"""Corpus layouts (manifests, LJSpeech, LibriTTS) and the committed mini corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_pipeline.sources import read_folder, read_manifest

MINI = Path(__file__).resolve().parents[2] / "data_pipeline" / "mini_corpus"


def test_csv_manifest(tmp_path):
    (tmp_path / "m.csv").write_text("path,text,speaker\nx/a.wav,Hello there,bob\n/abs/b.wav,Hi,\n")
    a, b = read_manifest(tmp_path / "m.csv")
    assert a.path == str(tmp_path / "x" / "a.wav") and a.text == "Hello there" and a.speaker == "bob"
    assert b.path == "/abs/b.wav" and b.split in ("train", "validation")
    (tmp_path / "bad.csv").write_text("file,words\na.wav,hi\n")
    with pytest.raises(ValueError, match="'path' and 'text'"):
        read_manifest(tmp_path / "bad.csv")


def test_ljspeech_layout(tmp_path):
    (tmp_path / "metadata.csv").write_text("LJ001-0001|Printing, 1st|Printing, first\nLJ001-0002|in being|\n")
    a, b = read_folder(tmp_path)
    assert (a.source_id, a.text, a.path) == ("LJ001-0001", "Printing, first", str(tmp_path / "wavs" / "LJ001-0001.wav"))
    assert b.text == "in being"  # empty normalized text falls back to the raw text


def test_libritts_layout(tmp_path):
    d = tmp_path / "19" / "198"
    d.mkdir(parents=True)
    (d / "19_198_000000_000000.wav").write_bytes(b"")
    (d / "19_198_000000_000000.normalized.txt").write_text("Some words.\n")
    (d / "19_198_000000_000001.wav").write_bytes(b"")  # transcript missing: kept, reported at build time
    a, b = read_folder(tmp_path)
    assert (a.speaker, a.text) == ("19", "Some words.") and b.text == ""


def test_unknown_layout(tmp_path):
    with pytest.raises(ValueError, match="no manifest"):
        read_folder(tmp_path)


def test_committed_mini_corpus():
    rows = [json.loads(line) for line in (MINI / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) >= 1000 and sum(r["duration"] for r in rows) >= 30 * 60
    assert all(1.0 <= r["duration"] <= 8.0 and (MINI / r["path"]).exists() for r in rows)
    train = {r["text"] for r in rows if r["split"] == "train"}
    val = {r["text"] for r in rows if r["split"] == "validation"}
    assert val and not train & val  # split by sentence
    assert len({r["speaker"] for r in rows}) >= 8
    assert sum(f.stat().st_size for f in MINI.rglob("*") if f.is_file()) <= 20 * 2**20
