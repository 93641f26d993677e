"""The decode benchmark runs end to end at the tiny preset and writes records in the common format."""

from __future__ import annotations

import gzip
import json
import os

from benchmarks import bench_decode

from tests.inference.conftest import FakeCodec


def test_bench_decode_tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # recorded as run
    out = tmp_path / "results.jsonl"
    assert bench_decode.main(["--preset", "tiny", "--batch", "1", "--text-len", "16", "--frames", "6",
                              "--repeats", "1", "--first-chunk", "2", "--context-frames", "2", "--dtype", "float32", "--unroll", "2",
                              "--out", str(out), "--trace", "--hlo-dir", str(tmp_path / "hlo"), "model.text_layers=1"],
                             codec=FakeCodec(4, 1024)) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 1
    r = records[0]
    assert r["name"] == "decode/tiny" and r["backend"] == "while_loop" and r["fwd_tokens_per_s"] > 0
    assert r["shape"] == {"B": 1, "J": 16, "frames": 6, "Q": 4}
    assert r["extra"]["steps"] == 6 + 4 and r["extra"]["rtf"] > 0  # frames + Q: stops at the limit
    assert r["extra"]["first_audio_ms"] > 0
    assert r["extra"]["xla_flags"] == os.environ["XLA_FLAGS"]
    assert r["extra"]["decode_kernels"] == "auto" and r["extra"]["decode_kernel_options"] == ""  # the defaults
    assert r["extra"]["decode_kernels_used"] == "xla"  # auto on a CPU
    assert {"device", "commit", "jax_version", "command", "date"} <= set(r)
    # --trace on a CPU: no device plane, so no timeline (on a GPU: kernels, busy/idle per step)
    assert r["extra"]["trace_per_step"] == {}
    # --hlo-dir: the compiled loop's optimized HLO, to read a GPU trace's fusions against
    with gzip.open(tmp_path / "hlo" / "decode_loop_B1.hlo.txt.gz", "rt") as f:
        hlo = f.read()
    assert "HloModule" in hlo and " while(" in hlo and "decoder0" in hlo


def test_loop_kernel_origins_names_the_jax_ops():
    """--trace's origin table: every fusion of the compiled decode loop maps to the JAX op (and
    source line) it came from — checked on the CPU program, whose fusions carry the same metadata."""
    from small_e_jax.config import load_config
    from small_e_jax.inference import SamplingConfig

    config = load_config("tiny", ["model.dtype=float32", "model.text_layers=1"])
    bench = bench_decode.Bench(bench_decode.random_model(config, "float32"), SamplingConfig(greedy=True), 2)
    origins = bench_decode.loop_kernel_origins(bench, 1, 16, 6)
    assert len(origins) > 10
    assert any("fusion" in name for name in origins)
    assert sum(where.startswith("jit(_loop)/while/body") for where in origins.values()) > len(origins) / 2
    # the decode step's named scopes say which part of the model each kernel computes
    scopes = {"embed", "encoder0", "cross_attention", "decoder0", "heads", "sample"}
    found = {s for s in scopes if any(f"/{s}/" in where for where in origins.values())}
    assert found == scopes
