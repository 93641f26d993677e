"""A build over a manifest with bad and repeated rows: the rows are reported (file, line, reason)
and counted, the build goes on; a build interrupted midway resumes without duplicates or losses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from data_pipeline.builders import SpeechFolder
from data_pipeline.encode import Encoder

GOOD = ["a", "b", "c", "d", "e"]


class Killed(Exception):
    """Stands for the process being killed midway (KeyboardInterrupt would stop pytest itself)."""


@pytest.fixture
def corpus(tmp_path):
    """Five good clips (same length: one encoder shape) and a manifest with three bad rows."""
    lines = []
    for i, name in enumerate(GOOD):
        t = np.arange(16000) / 16000
        sf.write(tmp_path / f"{name}.wav", (0.3 * np.sin(2 * np.pi * (150 + 30 * i) * t)).astype(np.float32), 16000)
        lines.append(json.dumps({"path": f"{name}.wav", "text": f"clip {name}", "id": name, "split": "train"}).encode())
    lines.insert(2, b'{"path": "x.wav", "text": "caf\xe9"}')  # line 3: not UTF-8
    lines.insert(4, b'{"path": "y.wav", "text": ')  # line 5: malformed JSON
    lines.append(b'{"path": "a.wav", "text": "again", "id": "a"}')  # line 8: repeats id a
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    return manifest


def _builder(manifest, data_dir, codec):
    return SpeechFolder(manual_dir=str(manifest), data_dir=str(data_dir), codec="tiny", codec_obj=codec, chunk_size=2)


def test_bad_rows_reported_and_interrupted_build_resumes(corpus, tmp_path, tiny_codec, monkeypatch):
    data_dir = tmp_path / "tfds"
    real = Encoder.encode_chunk
    calls = []

    killed = []

    def dies_on_second_chunk(self, utts, *args, **kwargs):
        calls.append([u.source_id for u in utts])
        if len(calls) == 2 and not killed:
            killed.append(True)
            raise Killed  # the build killed midway, after the first chunk was cached
        return real(self, utts, *args, **kwargs)

    monkeypatch.setattr(Encoder, "encode_chunk", dies_on_second_chunk)
    with pytest.raises(Killed):
        _builder(corpus, data_dir, tiny_codec).download_and_prepare()
    first_chunk = calls[0]

    calls.clear()
    builder = _builder(corpus, data_dir, tiny_codec)
    builder.download_and_prepare()
    assert first_chunk not in calls  # the cached chunk was not encoded again
    src = builder.as_data_source()["train"]
    ids = sorted(src[i]["source_id"].decode() for i in range(len(src)))
    assert ids == GOOD  # each good row once: nothing lost, nothing twice, the repeat of "a" dropped
    texts = {src[i]["source_id"].decode(): src[i]["text"].decode() for i in range(len(src))}
    assert texts["a"] == "clip a"  # the first row with an id is the one kept

    stem = data_dir / "reports" / "speech_folder_tiny_rows"
    rows = [json.loads(line) for line in open(f"{stem}.jsonl")]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rows] == [
        (3, "not UTF-8"), (5, "malformed JSON"), (8, "duplicate row")]
    assert all(r["path"] == str(corpus) for r in rows)
    summary = json.loads(open(f"{stem}.summary.json").read())
    assert summary["kept"] == len(GOOD) and summary["skipped"] == 3
    assert summary["skipped_by_reason"] == {"not UTF-8": 1, "malformed JSON": 1, "duplicate row": 1}
