"""Bad config values and training arguments: one ``error:`` line, exit 2, before any work starts."""

from __future__ import annotations

import pytest

from small_e_jax.cli import config as config_cli

# (overrides, expected text of the error line)
BAD_CONFIGS = [
    (["optimizer.learning_rate=.nan"], r"optimizer\.learning_rate=nan must be a finite number"),
    (["optimizer.learning_rate=nan"], r"optimizer\.learning_rate=nan must be a finite number"),
    (["optimizer.learning_rate=.inf"], r"optimizer\.learning_rate=inf must be a finite number"),
    (["optimizer.learning_rate=1e400"], r"optimizer\.learning_rate=inf must be a finite number"),
    (["optimizer.learning_rate=0"], r"optimizer\.learning_rate=0(\.0)? must be > 0"),
    (["optimizer.learning_rate=-3e-4"], r"optimizer\.learning_rate=-0\.0003 must be > 0"),
    (["optimizer.eps=.nan"], r"optimizer\.eps=nan must be a finite number"),
    (["optimizer.b1=1.5"], r"optimizer\.b1=1\.5 must be in \[0, 1\)"),
    (["optimizer.grad_clip_norm=-1"], r"optimizer\.grad_clip_norm=-1(\.0)? must be >= 0"),
    (["model.heads=0"], r"model\.heads=0 must be > 0"),
    (["model.text_heads=0"], r"model\.text_heads=0 must be > 0"),
    (["model.heads=-2"], r"model\.heads=-2 must be > 0"),
    (["model.heads=3"], r"model\.d_model=64 is not divisible by model\.heads=3"),
    (["model.text_heads=5"], r"model\.d_context=\d+ is not divisible by model\.text_heads=5"),
    (["model.d_model=0"], r"model\.d_model=0 must be > 0"),
    (["model.expand_k=0"], r"model\.expand_k=0(\.0)? must be > 0"),
    (["model.codebook_size=-1"], r"model\.codebook_size=-1 must be > 0"),
    (["model.text_dropout=2"], r"model\.text_dropout=2(\.0)? must be in \[0, 1\]"),
    (["model.gate_logit_normalizer=.inf"], r"model\.gate_logit_normalizer=inf must be a finite number"),
    (["data.max_frames=0"], r"data\.max_frames=0 must be > 0"),
    (["data.frames_per_batch=-100"], r"data\.frames_per_batch=-100 must be > 0"),
    (["data.min_frames=50", "data.max_frames=10"], r"data\.min_frames=50 exceeds data\.max_frames=10"),
    (["trainer.steps=0"], r"trainer\.steps=0 must be > 0"),
    (["checkpoint.keep=0"], r"checkpoint\.keep=0 must be > 0"),
    (["checkpoint.save_every_minutes=.nan"], r"checkpoint\.save_every_minutes=nan must be a finite number"),
    (["mesh.data=0"], r"mesh\.data=0 must be a positive size or -1"),
    (["eval.temperature=-1"], r"eval\.temperature=-1(\.0)? must be >= 0"),
    (["model.heads=abc"], r"model\.heads.*Couldn't parse 'abc' into an int"),
    (["model.nosuch=1"], r"unknown config key 'model\.nosuch'"),
    (["model.heads"], r"bad override 'model\.heads': expected key\.sub=value"),
]


@pytest.mark.parametrize("overrides,pattern", BAD_CONFIGS, ids=[" ".join(o) for o, _ in BAD_CONFIGS])
def test_bad_config_value(expect_error, overrides, pattern):
    expect_error(config_cli.main, ["--config", "tiny", *overrides], 2, pattern)


def test_config_file_missing(expect_error, tmp_path):
    expect_error(config_cli.main, ["--config", str(tmp_path / "nope.yaml")], 2, r"config file '.*nope\.yaml' not found")


def test_config_file_not_yaml(expect_error, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    expect_error(config_cli.main, ["--config", str(bad)], 2, rf"{bad}: not valid YAML", keep=[bad])


def test_config_file_not_a_mapping(expect_error, tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    expect_error(config_cli.main, ["--config", str(bad)], 2, r"expected a mapping at the top level", keep=[bad])


# The training entry point refuses the same values before it imports JAX or opens any data.
TRAIN_ARGS = [
    (["--config", "tiny", "optimizer.learning_rate=.nan"], r"optimizer\.learning_rate=nan must be a finite number"),
    (["--config", "tiny", "model.heads=0"], r"model\.heads=0 must be > 0"),
    (["--data=nosuch", "--config", "tiny"], r"nosuch"),
    (["--data=synthetic", "--config", "tiny", "data.dataset=mini"], r"--data.*data\.dataset"),
]


@pytest.mark.parametrize("argv,pattern", TRAIN_ARGS, ids=[" ".join(a) for a, _ in TRAIN_ARGS])
def test_bad_training_arguments(expect_error, tmp_path, argv, pattern):
    from experiments.librilight_medium import main

    workdir = tmp_path / "run"
    expect_error(main, [*argv, f"trainer.workdir={workdir}"], 2, pattern)
    assert not workdir.exists()  # refused before anything was written
