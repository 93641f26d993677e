"""The decode-block benchmark's variant parser and the Triton IR capture behind
`triton_resources --decode-block` (the sm_90 compile itself needs a standalone Triton, not here)."""

from __future__ import annotations

import json

import pytest

from benchmarks.kernels import block_step_bench, triton_resources


def test_variants_parse():
    assert block_step_bench.parse_variants("xla=xla, five=, p=persistent+warps4:no_barriers+late_loads") == [
        ("xla", None, frozenset()), ("five", "", frozenset()),
        ("p", "persistent,warps4", frozenset({"no_barriers", "late_loads"}))]


def test_decode_block_triton_ir_is_captured(tmp_path):
    triton_resources.dump_decode_block("", "bfloat16", 1, tmp_path)
    meta = json.loads((tmp_path / "kernels.json").read_text())
    assert [k["name"] for k in meta] == ["gla_block_in_proj", "gla_block_recurrence", "gla_block_out_proj",
                                         "gla_block_mlp_in", "gla_block_mlp_out"]
    assert [k["num_warps"] for k in meta] == [4, 4, 8, 4, 4]  # W_o's kernel at 8 (kernel_warps)
    for k in meta:
        assert "tt.func" in (tmp_path / k["file"]).read_text()
    persistent = tmp_path / "persistent"
    persistent.mkdir()
    triton_resources.dump_decode_block("persistent", "bfloat16", 1, persistent)
    assert [k["name"] for k in json.loads((persistent / "kernels.json").read_text())] == ["gla_block_persistent"]


@pytest.mark.slow  # builds the tiny model and lowers two block shapes (~20 s)
def test_decode_kernels_of_a_preset_are_captured(tmp_path):
    """--preset tiny: the tiny model's two GLA block shapes (audio blocks, PosNet), 5 kernels each."""
    triton_resources.dump_decode_block("", "float32", 1, tmp_path, preset="tiny")
    meta = json.loads((tmp_path / "kernels.json").read_text())
    assert len(meta) == 10 and {k["name"] for k in meta} == {
        "gla_block_in_proj", "gla_block_recurrence", "gla_block_out_proj", "gla_block_mlp_in", "gla_block_mlp_out"}
