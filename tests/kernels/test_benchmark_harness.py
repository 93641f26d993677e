"""The kernel benchmark runs end to end on a CPU and writes well-formed records.

No timing is asserted: only that every figure is a positive number and the record carries its
environment (device, versions, commit, date, command)."""

from __future__ import annotations

import json

import pytest

from benchmarks.kernels import gla_bench
from benchmarks.record import append_records, invocation, make_record

FIELDS = {"name", "backend", "shape", "dtype", "fwd_tokens_per_s", "fwd_bwd_tokens_per_s",
          "baseline", "device", "jax_version", "commit", "date", "command", "extra"}


def test_benchmark_writes_one_record_per_backend(tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    assert gla_bench.main(["--shapes", "cpu", "--backends", "scan,chunked", "--iters", "1",
                           "--repeats", "1", "--no-fla", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["backend"] for r in records] == ["scan", "chunked"]
    for record in records:
        assert set(record) == FIELDS
        assert record["shape"] == {"B": 1, "T": 256, "H": 2, "Dk": 32, "Dv": 64}
        assert record["fwd_tokens_per_s"] > 0 and record["fwd_bwd_tokens_per_s"] > 0
        assert record["baseline"] is None  # FLA disabled: no made-up baseline
        assert record["device"].startswith("cpu")
        assert record["command"] == invocation()  # this process's command line (pytest or a worker)
    table = capsys.readouterr().out
    assert "| cpu_smoke | chunked |" in table


def test_records_append_and_keep_missing_figures_null(tmp_path):
    path = tmp_path / "sub" / "r.jsonl"
    first = make_record(name="x", backend="b", shape={"B": 1}, dtype="float32",
                        fwd_tokens_per_s=1.0, fwd_bwd_tokens_per_s=None,
                        baseline={"name": "fla", "fwd_tokens_per_s": 2.0})
    append_records([first], path)
    append_records([first], path)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["fwd_bwd_tokens_per_s"] is None
    assert json.loads(lines[1])["baseline"]["name"] == "fla"


def test_unknown_shape_set_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        gla_bench.main(["--shapes", "huge"])
    assert exit_.value.code == 2
    assert "unknown shape set(s) ['huge']" in capsys.readouterr().err


def test_missing_fla_is_reported_not_invented():
    from benchmarks.kernels.fla_baseline import main as fla_main
    from benchmarks.kernels.gla_bench import time_fla_subprocess
    from benchmarks.kernels.shapes import SHAPE_SETS

    times, reason = time_fla_subprocess(SHAPE_SETS["cpu"][0], "float32", repeats=1, timeout_s=120)
    assert times is None and reason  # no CUDA FLA on a CPU machine: a reason, never numbers
    assert fla_main(["--B", "1", "--T", "8", "--H", "1", "--Dk", "4", "--Dv", "4"]) == 1


def test_gla_profile_traces_both_passes_and_writes_json(tmp_path, capsys):
    """On a CPU the trace has no device plane: the profile says so and falls back to the host's
    XLA events, which must be there for both passes (the tracing itself worked)."""
    from benchmarks.kernels import gla_profile

    out = tmp_path / "profile.json"
    assert gla_profile.main(["--backends", "chunked", "--shape", "1,64,2,16,32", "--calls", "2",
                             "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["shape"] == {"B": 1, "T": 64, "H": 2, "Dk": 16, "Dv": 32}
    for name in ("fwd", "fwd_bwd"):
        p = data["profiles"]["chunked"][name]
        assert p["device_planes"] == [] and p["host_ms"], name
        assert all(ms >= 0 for ms in p["host_ms"].values())
    assert "no device plane" in capsys.readouterr().out


def test_gla_profile_formats_a_device_profile():
    """The GPU branch of the report (no GPU here: a profile as a GPU trace would give it)."""
    from benchmarks.kernels import gla_profile
    from benchmarks.kernels.trace_summary import timeline

    timeline_ns = timeline([(0, 400_000), (450_000, 1_000_000)])  # 0.95 ms busy, one 50 us gap
    prof = {"fwd": {"device_ms": 0.95, "by_kernel_ms": {"gla_out_fwd": 0.55, "gla_intra_fwd": 0.4},
                    "device_planes": ["/device:GPU:0"], "host_ms": {}, "timeline_per_call": timeline_ns}}
    lines = gla_profile.format_profile("pallas_gpu", gla_profile.Shape("small_e", 8, 4096, 4, 128, 256), prof, top=5)
    assert lines[0].startswith("pallas_gpu fwd: 0.950 ms of device time per call")
    assert "timeline per call: 2 kernels" in lines[1] and "idle 0.05 ms in 1 gaps" in lines[1]
    assert "57.9%  gla_out_fwd" in lines[2]


def test_gla_profile_rejects_bad_input(capsys):
    from benchmarks.kernels import gla_profile

    assert gla_profile.main(["--shape", "1,2"]) == 2
    assert gla_profile.main(["--backends", "nope", "--shape", "1,64,2,16,32"]) == 2
    err = capsys.readouterr().err
    assert "five integers" in err and "unknown backend" in err
