"""Report pieces: TensorBoard reader, throughput records, plots, the Markdown report and the CLI."""

import json

import numpy as np
import pytest

from small_e_jax.eval.throughput_report import parse_record, read_jsonl, scaling_summary
from tests.eval.conftest import require_module

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_tensorboard_scalars_read_back(tmp_path):
    from tensorboardX import SummaryWriter

    from small_e_jax.eval.tb_reader import read_scalars
    w = SummaryWriter(str(tmp_path / "tb"))
    for step in range(1, 6):
        w.add_scalar("train/loss", 10.0 / step, step)
    w.add_scalar("eval/loss", 3.5, 5)
    w.close()
    s = read_scalars(tmp_path / "tb")
    assert s["train/loss"] == [(k, pytest.approx(10.0 / k)) for k in range(1, 6)]
    assert s["eval/loss"] == [(5, 3.5)]
    with pytest.raises(FileNotFoundError):
        read_scalars(tmp_path / "missing")


def test_throughput_records_flat_and_nested():
    flat = parse_record({"model": "gla", "T": 2048, "B": 4, "frames_per_s": 1e5, "step_ms": 81.92,
                         "peak_mem_gb": 3.5, "device": "cpu:cpu"})
    assert (flat.model, flat.T, flat.B, flat.peak_mem_gb) == ("gla", 2048, 4, 3.5)
    assert flat.us_per_frame == pytest.approx(10.0)
    nested = parse_record({"name": "train/transformer", "backend": "xla", "shape": {"B": 2, "T": 1024},
                           "fwd_tokens_per_s": None, "fwd_bwd_tokens_per_s": 5e4, "device": "gpu:H100",
                           "extra": {"peak_mem_gb": 1.25}})
    assert (nested.model, nested.T, nested.peak_mem_gb) == ("train/transformer (xla)", 1024, 1.25)
    assert nested.frames_per_s == 5e4
    from_step = parse_record({"model": "gla", "T": 1000, "B": 8, "step_ms": 100.0})
    assert from_step.frames_per_s == pytest.approx(80_000)
    assert parse_record({"model": "gla", "T": 1000}) is None  # no rate: skipped, not guessed


def throughput_file(tmp_path):
    lines = []
    for T in (1024, 2048, 4096, 8192, 16384):
        # GLA: constant time per frame; transformer: grows linearly with T (quadratic total).
        lines.append({"model": "gla", "T": T, "B": 2, "frames_per_s": 1e5, "device": "cpu:cpu"})
        lines.append({"model": "transformer", "T": T, "B": 2, "frames_per_s": 1e5 * 1024 / T, "device": "cpu:cpu"})
    path = tmp_path / "throughput.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n" + json.dumps({"model": "x"}) + "\n")
    return path


def test_scaling_summary(tmp_path):
    points, skipped = read_jsonl([throughput_file(tmp_path)])
    assert len(points) == 10 and len(skipped) == 2
    growth = {s["model"]: s["growth"] for s in scaling_summary(points)}
    assert growth == {"gla": pytest.approx(1.0), "transformer": pytest.approx(16.0)}


def diagonal(frames, tokens):
    att = np.full((2, frames, tokens), 0.01, np.float32)
    att[:, np.arange(frames), np.arange(frames) * tokens // frames] = 1.0
    return att / att.sum(-1, keepdims=True)


def test_report_end_to_end_through_the_cli(tmp_path):
    require_module("matplotlib")
    from tensorboardX import SummaryWriter

    from small_e_jax.evaluate import main
    for name in ("paca", "plain"):
        w = SummaryWriter(str(tmp_path / name / "tensorboard"))
        for step in (10, 20, 30):
            w.add_scalar("train/loss", 7.0 - step / 10, step)
        w.add_scalar("eval/loss", 4.2, 30)
        w.close()
        np.savez(tmp_path / f"{name}.npz", map_0=diagonal(40, 10), map_1=diagonal(30, 8))
    transcripts = tmp_path / "t.jsonl"
    transcripts.write_text("\n".join(json.dumps(r) for r in [
        {"text": "The birch canoe slid on the smooth planks.", "transcript": "the birch slid on on the smooth planks"},
        {"text": "Glue the sheet to the dark blue background.", "transcript": "Glue the sheet to the dark blue background"},
    ]) + "\n")
    assert main(["wer", "--transcripts", str(transcripts), "--label", "gt", "--out", str(tmp_path / "wer.json")]) == 0
    wer = json.loads((tmp_path / "wer.json").read_text())
    assert wer["skips"]["skipped_words"] == 1 and wer["skips"]["repeated_words"] == 1
    assert wer["wer"] == pytest.approx(2 / 16)
    ppl = {"kind": "perplexity", "label": "paca", "step": 30, "batches": 3, "loss": 4.0, "perplexity": float(np.exp(4)),
           "perplexity_per_codebook": [50.0, 60.0]}
    (tmp_path / "ppl.json").write_text(json.dumps(ppl))
    sim = {"kind": "similarity", "label": "paca vs real", "pairs": 70, "skipped": 2, "mean": 0.5, "std": 0.1,
           "min": 0.3}
    (tmp_path / "sim.json").write_text(json.dumps(sim))
    out = tmp_path / "report"
    assert main(["report", "--out-dir", str(out), "--run", f"paca={tmp_path / 'paca'}", "--run",
                 f"plain={tmp_path / 'plain'}", "--results", str(tmp_path / "wer.json"), str(tmp_path / "ppl.json"),
                 str(tmp_path / "sim.json"),
                 "--attention", f"PACA={tmp_path / 'paca.npz'}", "--attention", f"plain={tmp_path / 'plain.npz'}",
                 "--throughput", str(throughput_file(tmp_path))]) == 0
    md = (out / "report.md").read_text()
    for png in ("loss_curves.png", "alignment_maps.png", "throughput.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC and f"({png})" in md
    assert "| gt | given transcripts | 2 | 0.125 |" in md
    assert "| paca | 30 | 3 | 4 | 54.6 | 50 | 60 |" in md
    assert "| transformer | cpu:cpu | 1024–16384 | 16 |" in md
    assert "| plain | 30 | 4.2 | 30 | 4.2 |" not in md and "| plain | 30 | 4 | 30 | 4.2 |" in md
    assert "| jiwer | 4.0.0 |" in md
    assert "| paca vs real | 70 | 2 | 0.5 | 0.1 | 0.3 |" in md  # pairs without speech counted apart


def test_cli_errors(tmp_path, capsys):
    from small_e_jax.evaluate import main
    assert main(["wer", "--transcripts", str(tmp_path / "none.jsonl")]) == 2
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "a"}) + "\n")
    assert main(["wer", "--transcripts", str(tmp_path / "bad.jsonl")]) == 2
    assert "need 'text' and 'transcript'" in capsys.readouterr().err
    assert main(["report", "--out-dir", str(tmp_path / "r"), "--run", "no-equals-sign"]) == 2


def test_throughput_subcommand_filters_series(tmp_path):
    require_module("matplotlib")
    from small_e_jax.evaluate import main
    path = throughput_file(tmp_path)
    with path.open("a") as f:  # a kernel benchmark record in the same file
        f.write(json.dumps({"name": "gla/small_e", "shape": {"B": 8, "T": 4096}, "fwd_bwd_tokens_per_s": 8e6}) + "\n")
    assert main(["throughput", "--jsonl", str(path), "--out-dir", str(tmp_path / "t"), "--match", "transformer"]) == 0
    md = (tmp_path / "t" / "report.md").read_text()
    assert (tmp_path / "t" / "throughput.png").read_bytes()[:8] == PNG_MAGIC
    assert "| transformer | cpu:cpu | 2 | 16384 |" in md and "| gla |" not in md and "gla/small_e" not in md


def test_missing_dependency_skips_locally_and_fails_under_ci(monkeypatch):
    from tests.eval.conftest import require
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="missing dependency under CI=true"):
        require(False, "espeak-ng is not installed")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require(False, "espeak-ng is not installed")
    require(True, "never raised")
