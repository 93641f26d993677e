"""LibriLight: VAD segmentation (<= 25 s), transcripts from a manifest, missing ones reported."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from data_pipeline.segment import librilight_segments, merge_spans


def test_merge_spans_limits_length():
    spans = [(0.0, 4.0), (4.5, 12.0), (12.2, 24.0), (25.0, 30.0), (31.0, 90.0), (91.0, 92.0)]
    out = merge_spans(spans, 25.0)
    assert all(e - s <= 25.0 + 1e-9 for s, e in out)
    assert out[0] == (0.0, 24.0) and out[1] == (25.0, 30.0)
    assert len([1 for s, e in out if 31.0 <= s and e <= 90.0]) == 3  # 59 s span cut in 3
    assert out[-1] == (91.0, 92.0)
    assert merge_spans([(3.0, 3.0)]) == []


@pytest.fixture(scope="module")
def librilight(tmp_path_factory):
    root = tmp_path_factory.mktemp("librilight")
    book = root / "1234" / "some_book"
    book.mkdir(parents=True)
    rate = 16000
    t = np.arange(6 * rate) / rate
    sf.write(book / "chapter_01.flac", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate)
    (book / "chapter_01.json").write_text(json.dumps({"speaker": "1234",
                                                      "voice_activity": [[0.2, 1.4], [1.6, 2.6], [3.0, 5.5]]}))
    return root


def test_segments_and_builder(librilight, tmp_path, tiny_codec):
    segs = list(librilight_segments(librilight, max_seconds=2.5))
    assert [s.segment_id for s in segs] == [f"1234/some_book/chapter_01_{k:04d}" for k in range(2)]
    assert (segs[0].start, segs[0].end) == (0.2, 2.6) and segs[0].speaker == "1234"
    transcripts = tmp_path / "t.jsonl"
    transcripts.write_text(json.dumps({"id": segs[0].segment_id, "text": "hello there"}) + "\n")
    from data_pipeline.builders import LibrilightMedium
    b = LibrilightMedium(manual_dir=str(librilight), transcripts=str(transcripts), max_segment_seconds=2.5,
                         validation_fraction=0.0, codec="tiny", codec_obj=tiny_codec, data_dir=str(tmp_path / "tfds"))
    b.download_and_prepare()
    src = b.as_data_source()["train"]
    assert len(src) == 1 and abs(float(src[0]["duration"]) - 2.4) < 0.01
    assert src[0]["codes"].shape == (4, tiny_codec.num_frames(int(2.4 * 24000)))
    report = [json.loads(line) for line in open(tmp_path / "tfds" / "reports" / "librilight_medium_tiny_train.jsonl")]
    assert [r["source_id"] for r in report] == [segs[1].segment_id]
    assert report[0]["reason"] == "missing or empty transcript"


def test_builder_needs_transcripts(librilight, tmp_path, tiny_codec):
    from data_pipeline.builders import LibrilightMedium
    b = LibrilightMedium(manual_dir=str(librilight), codec="tiny", codec_obj=tiny_codec, data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="--transcripts"):
        b.download_and_prepare()


def test_transcribe_clear_error(librilight, tmp_path, capsys):
    from small_e_jax.cli import transcribe
    code = transcribe.main(["--manual_dir", str(librilight), "--model", str(tmp_path / "no_model"),
                            "--out", str(tmp_path / "t.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code in (2, 3) and err.count("\n") == 0  # 3: faster-whisper missing, 2: no model folder
    assert re.match(r"error: .*(faster-whisper|not a folder)", err)
