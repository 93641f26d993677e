"""The config tree: presets, YAML files, overrides, round trips and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from small_e_jax.config import (Config, ConfigError, config_from_dict, config_to_dict, config_to_json,
                                config_to_yaml, load_config, parse_cli, presets)

REPO = Path(__file__).resolve().parents[1]


def test_presets_exist_and_differ():
    assert {"tiny", "small_e_librilight_medium", "transformer_baseline"} <= set(presets())
    tiny = load_config("tiny")
    paper = load_config("small_e_librilight_medium")
    baseline = load_config("transformer_baseline")
    assert tiny.model.d_model == 64 and tiny.data.dataset == "mini"
    assert paper.model.d_model == 512 and paper.model.block == "gla"
    assert (paper.model.text_layers, paper.model.encoder_layers, paper.model.decoder_layers) == (9, 6, 6)
    assert paper.model.d_model * paper.model.expand_k // paper.model.heads == 128
    assert paper.model.d_model * paper.model.expand_v // paper.model.heads == 256
    assert baseline.model.block == "transformer"


def test_defaults_are_the_paper_model():
    assert load_config(None).model == load_config("small_e_librilight_medium").model


def test_overrides_are_typed_and_win_over_the_file():
    config = load_config("tiny", ["model.d_model=32", "optimizer.learning_rate=1e-3",
                                  "model.paca_rotary=false", "trainer.profile_steps=[3, 4]",
                                  "mesh.logical_axis_rules=[[batch, data], [embed, null]]"])
    assert config.model.d_model == 32
    assert config.optimizer.learning_rate == pytest.approx(1e-3)
    assert config.model.paca_rotary is False
    assert tuple(config.trainer.profile_steps) == (3, 4)
    assert config.mesh.logical_axis_rules == [("batch", "data"), ("embed", None)]
    assert config.model.text_layers == 2  # untouched values keep the preset's


def test_yaml_file_and_cli(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: mine\nmodel:\n  d_model: 128\n  heads: 2\n")
    config = parse_cli(["--config", str(path), "model.heads=4"])
    assert (config.name, config.model.d_model, config.model.heads) == ("mine", 128, 4)
    assert parse_cli([f"--config={path}", "--model.heads=8"]).model.heads == 8


@pytest.mark.parametrize("preset", ["tiny", "small_e_librilight_medium", "transformer_baseline"])
def test_round_trip_through_yaml_and_json(preset):
    config = load_config(preset)
    assert config_from_dict(yaml.safe_load(config_to_yaml(config))) == config
    assert config_from_dict(json.loads(config_to_json(config))) == config
    assert isinstance(config_to_dict(config)["model"], dict)


@pytest.mark.parametrize("overrides, message", [
    (["model.foo=1"], "unknown config key 'model.foo'; valid keys of 'model': text_vocab_size"),
    (["nosuch.x=1"], "unknown config key 'nosuch'; valid keys: name, model, data"),
    (["model.d_model=abc"], "model.d_model"),
    (["model.d_model=true"], "model.d_model: expected int, got boolean"),
    (["model.block=rnn"], "model.block"),
    (["model.heads=3"], "model.d_model=512 is not divisible by model.heads=3"),
    (["model.text_dropout=1.5"], "model.text_dropout=1.5 must be in [0, 1]"),
    (["data.min_frames=10", "data.max_frames=5"], "data.min_frames=10 exceeds data.max_frames=5"),
    (["mesh.data=-1", "mesh.fsdp=-1"], "at most one of data/fsdp/tensor may be -1"),
    (["mesh.logical_axis_rules=[[batch, model]]"], "unknown mesh axis 'model'"),
    (["model.d_model"], "bad override 'model.d_model': expected key.sub=value"),
    (["model=3"], "model: expected a mapping of keys"),
    (["model.d_model.x=3"], "'d_model' is a value, not a section"),
])
def test_bad_input_gives_one_clear_error(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config("tiny" if "heads=3" not in overrides[0] else None, overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file 'nope.yaml' not found .*presets: "):
        load_config("nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(listy)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "small_e_jax.config", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_prints_resolved_yaml():
    result = run_cli("--config", "tiny", "model.d_model=32")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["model"]["d_model"] == 32


@pytest.mark.parametrize("args", [("model.foo=1",), ("--config", "missing.yaml"), ("model.d_model=x",)])
def test_cli_bad_input_exits_non_zero_with_one_line(args):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_config_is_a_plain_dataclass_tree():
    config = Config()
    assert config.model.audio_vocab_size == 1027
    assert config.validate() is config
