"""Builders: examples, bad-input reports, resume; CLI argument errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.data.conftest import BAD_CASES, GOOD


def test_examples_round_trip(folder_build, tiny_codec):
    builder, _, _ = folder_build
    src = builder.as_data_source()
    assert len(src["train"]) == GOOD - 3 and len(src["validation"]) == 3
    for i in range(len(src["train"])):
        ex = src["train"][i]
        assert ex["codes"].dtype == np.int16 and ex["codes"].shape[0] == tiny_codec.n_q
        assert 0 <= ex["codes"].min() and ex["codes"].max() < tiny_codec.codebook_size
        assert ex["codes"].shape[1] == tiny_codec.num_frames(int(round(float(ex["duration"]) * tiny_codec.sample_rate)))
        assert ex["text_tokens"].dtype == np.int32 and ex["text_tokens"][0] == 1 and ex["text_tokens"][-1] == 2
        assert ex["text"].decode().startswith("number ") and ex["speaker"].decode().startswith("spk")


def test_bad_inputs_reported_and_counted(folder_build):
    _, data_dir, _ = folder_build
    stem = data_dir / "reports" / "speech_folder_tiny_train"
    rows = [json.loads(line) for line in open(f"{stem}.jsonl")]
    by_id = {r["source_id"]: r for r in rows}
    assert set(by_id) == set(BAD_CASES)
    for name, reason in BAD_CASES.items():
        assert by_id[name]["reason"].startswith(reason), by_id[name]
        assert by_id[name]["path"]
    summary = json.loads(open(f"{stem}.summary.json").read())
    assert summary["kept"] == GOOD - 3 and summary["skipped"] == len(BAD_CASES)


def test_rerun_resumes_without_duplicates(folder_build, tiny_codec, monkeypatch):
    from data_pipeline.build import make_builder
    from data_pipeline.encode import Encoder
    builder, data_dir, manifest = folder_build
    # A finished build is not redone; a rebuild (files gone) re-uses the cached encoded chunks.
    monkeypatch.setattr(Encoder, "encode_chunk", lambda *a, **k: pytest.fail("re-encoded a cached chunk"))
    again = make_builder("speech_folder", data_dir=str(data_dir), manual_dir=str(manifest), codec="tiny",
                         codec_obj=tiny_codec)
    again.download_and_prepare()
    assert len(again.as_data_source()["train"]) == GOOD - 3
    import shutil
    shutil.rmtree(again.data_dir)
    rebuilt = make_builder("speech_folder", data_dir=str(data_dir), manual_dir=str(manifest), codec="tiny",
                           codec_obj=tiny_codec)
    rebuilt.download_and_prepare()
    ids = sorted(rebuilt.as_data_source()["train"][i]["source_id"] for i in range(GOOD - 3))
    assert len(ids) == len(set(ids)) == GOOD - 3


def test_mini_builds(tmp_path, tiny_codec):
    from data_pipeline.build import make_builder
    b = make_builder("mini", data_dir=str(tmp_path), codec="tiny", codec_obj=tiny_codec, max_examples=3)
    b.download_and_prepare()
    src = b.as_data_source()
    assert len(src["train"]) == 3 and len(src["validation"]) == 3
    assert src["train"][0]["codes"].shape[0] == 4


def test_cli_errors(tmp_path, capsys):
    from small_e_jax.cli.build_data import main
    assert main(["--dataset", "speech_folder", "--data_dir", str(tmp_path)]) == 2
    assert "needs --manual-dir" in capsys.readouterr().err
    assert main(["--dataset", "speech_folder", "--manual_dir", str(tmp_path / "nope"),
                 "--data_dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--dataset", "mini", "--codec_weights", str(tmp_path / "nope")]) == 2


def test_codec_failure_is_reported_not_fatal(tmp_path, tiny_codec):
    from data_pipeline.encode import BuildReport, Encoder, generate_examples
    from data_pipeline.sources import read_manifest
    from small_e_jax.text import load_tokenizer
    from tests.data.conftest import write_corpus

    class Flaky:  # rejects any batch holding a clip longer than 1.5 s
        def __getattr__(self, name):
            return getattr(tiny_codec, name)

        def encode_with_lengths(self, wav, rate, lengths):
            if max(lengths) > 1.5 * rate:
                raise RuntimeError("boom")
            return tiny_codec.encode_with_lengths(wav, rate, lengths)

    utts = [u for u in read_manifest(write_corpus(tmp_path)) if u.source_id.startswith("a")][:GOOD]
    report = BuildReport()
    out = list(generate_examples(utts, Encoder(Flaky(), load_tokenizer()), report))
    assert len(out) + len(report.skipped) == GOOD and report.skipped
    assert all(s["reason"].startswith("codec error (RuntimeError: boom)") for s in report.skipped)


def _captured_build(monkeypatch) -> dict:
    """Replace the build itself: record the builder main() would prepare."""
    from data_pipeline.builders import CodecBuilder
    seen: dict = {}
    monkeypatch.setattr(CodecBuilder, "download_and_prepare", lambda self, *a, **k: seen.setdefault("builder", self))
    return seen


def test_cli_defaults_to_the_shipped_codec_and_weights(tmp_path, monkeypatch, capsys):
    from small_e_jax.cli.build_data import main
    from small_e_jax.codec import bundled_weights
    seen = _captured_build(monkeypatch)
    assert main(["--dataset", "mini", "--data_dir", str(tmp_path)]) == 0
    b = seen["builder"]
    assert b._codec_name == "dac_mini24" and b.builder_config.name == "dac_mini24"
    assert b._codec_weights == bundled_weights("dac_mini24") is not None
    assert b.weights_label() == "bundled" and "random" not in capsys.readouterr().err
    # Another codec has no shipped weights: a clear error, not random weights.
    assert main(["--dataset", "mini", "--data_dir", str(tmp_path), "--codec", "dac_24khz"]) == 2
    assert "no weights ship for codec 'dac_24khz'" in capsys.readouterr().err


def test_cli_random_weights_only_on_request(tmp_path, monkeypatch, capsys):
    from small_e_jax.cli.build_data import main
    seen = _captured_build(monkeypatch)
    assert main(["--dataset", "mini", "--data_dir", str(tmp_path), "--codec", "dac_24khz",
                 "--random_codec_weights"]) == 0
    b = seen["builder"]
    assert b._codec_name == "dac_24khz" and b._codec_weights is None and b.weights_label() is None
    assert "random codec weights" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # weights and random weights: one or the other
        main(["--dataset", "mini", "--codec_weights", "bundled", "--random_codec_weights"])


def test_build_records_its_codec(tmp_path, tiny_codec):
    from data_pipeline.build import make_builder
    b = make_builder("mini", data_dir=str(tmp_path), codec="tiny", codec_obj=tiny_codec, max_examples=2)
    b.download_and_prepare()
    meta = json.loads((__import__("pathlib").Path(b.data_dir) / "metadata.json").read_text())
    assert meta == {"codec": "tiny", "codec_weights": None, "n_q": tiny_codec.n_q}
