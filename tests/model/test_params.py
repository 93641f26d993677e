"""Parameter counts (SPEC §5) and logical-axis metadata."""

from __future__ import annotations

import jax
import pytest
from flax import nnx

from small_e_jax.config import ConfigError, MeshConfig, load_config
from small_e_jax.model import SmallE
from small_e_jax.model.params import count_params, format_report, param_report

AXIS_NAMES = {"embed", "heads", "mlp", "vocab", "kv", None}


def test_gla_preset_is_the_papers_64m_model():
    counts = param_report(load_config("small_e_librilight_medium"), depth=2)
    # SPEC §5's formula, less the 416 frozen rotary numbers the authors count (we compute rotary).
    assert counts["total"] == 62_839_256 - 9 * 32 - 128
    assert counts["total"] == pytest.approx(64e6, rel=0.02)
    assert counts["text_encoder.embed"] == 256 * 512
    assert counts["audio_embed"] == counts["head"] == 4 * 1027 * 512
    assert counts["encoder.0"] == 3_165_780  # GLA block at d = 512 (SPEC §5)
    assert counts["cross_attention.pos_net"] == 3_165_780  # PACA's PosNet: GLA block at d_b = 512


def test_transformer_baseline_is_86m():
    counts = param_report(load_config("transformer_baseline"))
    assert counts["total"] == pytest.approx(86e6, rel=0.02)
    assert set(counts) == {"text_encoder", "audio_embed", "encoder", "cross_attention", "decoder", "head", "total"}


def test_authors_230m_config():
    counts = param_report(load_config("small_e_librilight_medium",
                                      ["model.d_model=1024", "model.d_context=1024"]))
    assert counts["total"] == 232_634_758 - 9 * 64 - 256  # SPEC §5 d=1024 column, less rotary


def test_count_matches_concrete_model_and_report_formats(kit):
    model = kit.model()
    counts = count_params(model)
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert counts["total"] == sum(x.size for x in leaves)
    assert "total" in format_report(counts)


@pytest.mark.parametrize("block", ["gla", "simple_gla", "transformer"])
def test_every_parameter_has_logical_axes(block):
    config = load_config("tiny", [f"model.block={block}", "model.cross_attention=plain"])
    model = nnx.eval_shape(lambda: SmallE(config, rngs=nnx.Rngs(0)))
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        axes = var.get_metadata().get("out_sharding")
        assert axes is not None, path
        assert len(axes) == len(var.get_value().shape), (path, axes)
        assert set(axes) <= AXIS_NAMES, (path, axes)
    # The config's rules map every name to a mesh axis (or None).
    with nnx.logical_axis_rules(MeshConfig().logical_axis_rules):
        specs = nnx.get_partition_spec(nnx.state(model, nnx.Param))
    mesh_axes = {a for spec in jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
                 for a in spec}
    assert mesh_axes <= {"data", "fsdp", "tensor", None}
    assert "tensor" in mesh_axes and "fsdp" in mesh_axes


@pytest.mark.parametrize("overrides, message", [
    (["model.pos_net_heads=3"], "pos_net_heads"),  # d_b = 32 over 3 GLA heads
    (["model.d_blind=31"], "d_blind.*even"),
    (["model.d_context=72", "model.text_heads=4"], "multiple of 4"),  # heads of 18: no half-head rotary
    (["model.cross_attention=plain", "model.cross_attention_heads=3"], "cross_attention_heads"),
])
def test_model_config_checks(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", overrides)
    load_config("tiny", ["model.pos_net_heads=4", "model.d_context=64", "model.text_heads=4"])  # valid
