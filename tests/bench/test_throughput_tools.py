"""The measurement tools: shape parsing, synthetic batches, profile scopes, the throughput run."""

import pytest

from small_e_jax.config import load_config
from benchmarks.profile_step import scope_of
from benchmarks.throughput import parse_shapes, shapes_for_budget, synthetic_batch


def test_parse_shapes():
    assert parse_shapes("16x1500,8X4096") == [(16, 1500), (8, 4096)]
    for bad in ("16", "16x", "axb", "0x100", "4x1"):
        with pytest.raises(ValueError):
            parse_shapes(bad)


def test_shapes_for_budget_keeps_frames_per_batch():
    assert shapes_for_budget(24576, [1024, 4096, 16384, 32768]) == [(24, 1024), (6, 4096), (1, 16384), (1, 32768)]


def test_synthetic_batch_is_a_full_delayed_batch():
    config = load_config("tiny")
    q = config.model.n_codebooks
    b = synthetic_batch(config, 3, 40, 7)
    assert b["audio"].shape == (3, 40, q) and b["text"].shape == (3, 7)
    assert b["audio_mask"].all() and b["text_mask"].all()
    # delay pattern: column 0 is BOA (1) everywhere, codebook k starts k columns later
    assert (b["audio"][:, 0] == 1).all()
    assert b["audio"].max() < config.model.audio_vocab_size and b["text"].min() >= 3
    with pytest.raises(ValueError, match="too short"):
        synthetic_batch(config, 1, q, 4)


def test_scope_of_drops_transformations_and_marks_backward():
    assert scope_of("jit(step)/jvp(SmallE)/decoder/3/mixer/dot_general", 3) == "decoder/3/mixer"
    assert scope_of("jit(step)/transpose(jvp(SmallE))/decoder/3/mixer/mul", 2) == "bwd:decoder/3"
    assert scope_of("", 3) == "(unscoped)"
    assert scope_of("jit(step)/while/body/decoder/0/x", 1) == "decoder"


def test_hlo_origins_maps_kernel_names_to_source():
    from benchmarks.profile_step import hlo_origins

    hlo = """
  %input_reduce_fusion.73 = f32[4,1027]{1,0} fusion(%p0, %p1), kind=kInput, calls=%fused_computation.73, metadata={op_name="jit(step)/transpose(jvp(SmallE))/head/reduce_sum" source_file="/x/small_e.py" source_line=180}
  ROOT %tuple.1 = (f32[2]) tuple(%a)
  %gemm_fusion_dot.1210 = bf16[8,512]{1,0} fusion(%x), kind=kCustom, metadata={op_name="jit(step)/dot_general"}
"""
    origins = hlo_origins(hlo)
    assert origins["input_reduce_fusion_73"] == "jit(step)/transpose(jvp(SmallE))/head/reduce_sum (small_e.py:180)"
    assert origins["gemm_fusion_dot_1210"] == "jit(step)/dot_general"
    assert "tuple_1" not in origins


def test_throughput_runs_the_train_step_and_records_both_timings(tmp_path):
    """The tiny preset end to end on the CPU: frames/s comes from the back-to-back timing (as
    the training loop runs), the per-step synchronised times are recorded beside it."""
    import json

    from benchmarks import throughput

    out = tmp_path / "r.jsonl"
    assert throughput.main(["--config", "tiny", "--shapes", "2x64", "--text-len", "8", "--steps", "2",
                            "--warmup", "1", "--out", str(out), "model.text_layers=1"]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    extra = record["extra"]
    assert extra["step_ms"] > 0 and extra["step_ms_sync"] > 0 and extra["step_ms_min"] > 0
    assert extra["step_ms_min"] <= extra["step_ms_sync"]
    assert record["fwd_bwd_tokens_per_s"] == pytest.approx(2 * 64 / (extra["step_ms"] / 1e3), rel=1e-3)


def test_timeline_counts_busy_idle_and_gaps():
    """Two streams overlapping, one short kernel, one launch-sized gap and one large gap."""
    from benchmarks.kernels.trace_summary import timeline, timeline_lines

    ns = 1_000  # one microsecond
    intervals = [(0, 50 * ns), (40 * ns, 60 * ns),  # overlap: busy 0..60 us
                 (65 * ns, 70 * ns),  # short kernel (5 us) after a 5 us gap
                 (270 * ns, 300 * ns)]  # after a 200 us gap
    t = timeline(intervals)
    assert t["kernels"] == 4
    assert t["span_ns"] == 300 * ns
    assert t["busy_ns"] == (60 + 5 + 30) * ns
    assert t["idle_ns"] == (5 + 200) * ns
    assert (t["gaps"], t["large_gaps"], t["large_gap_ns"]) == (2, 1, 200 * ns)
    assert (t["short_kernels"], t["short_kernel_ns"]) == (1, 5 * ns)
    assert timeline([])["kernels"] == 0
    line = next(iter(timeline_lines(t, steps=1)))
    assert "4 kernels" in line and "idle 0.20 ms in 2 gaps" in line
