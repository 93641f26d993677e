"""The training entry points' data choice: every builder of the registry, and overrides win."""

from __future__ import annotations

import pytest

from experiments import small_e_reading
from small_e_jax.cli.train import data_choices, parse_args
from small_e_jax.config import ConfigError


def test_every_registry_dataset_is_accepted():
    from data_pipeline.builders import BUILDERS
    assert set(data_choices()) == {"synthetic", *BUILDERS}
    for name in BUILDERS:
        data, config = parse_args([f"--data={name}"], "tiny")
        assert data == name and config.data.dataset == name
        data, config = parse_args(["--data", name], "tiny")
        assert data == name and config.data.dataset == name
    data, config = parse_args(["--data=synthetic"], "tiny")
    assert data == "synthetic" and config.data.dataset == "mini"  # the preset's, untouched


def test_unknown_dataset_refused_with_the_list():
    from data_pipeline.builders import BUILDERS
    for argv in (["--data=nope"], ["data.dataset=nope"]):
        with pytest.raises(ConfigError, match="'nope': expected one of synthetic") as err:
            parse_args(argv, "tiny")
        assert all(name in str(err.value) for name in BUILDERS)


def test_explicit_dataset_override_wins():
    data, config = parse_args(["data.dataset=speech_folder", "data.data_dir=d"], "tiny")
    assert data == "speech_folder" and config.data.dataset == "speech_folder" and config.data.data_dir == "d"
    data, config = parse_args(["--data=speech_folder", "data.dataset=speech_folder"], "tiny")
    assert data == "speech_folder" and config.data.dataset == "speech_folder"
    data, config = parse_args([], "small_e_librilight_medium")  # no choice: the default, mini
    assert data == "mini" and config.data.dataset == "mini"
    # --data applies before the user's overrides: a data.* override is not undone by it.
    _, config = parse_args(["data.codec=dac_mini24", "--data=speech_folder"], "tiny")
    assert config.data.codec == "dac_mini24"


def test_conflicting_data_choices_refused():
    with pytest.raises(ConfigError, match=r"^--data=mini and data.dataset=speech_folder name different datasets"):
        parse_args(["--data=mini", "data.dataset=speech_folder"], "tiny")


def test_small_e_reading_defaults_to_its_corpus(monkeypatch):
    seen = {}

    def fake_main(argv, **kwargs):
        seen["data"], seen["config"] = parse_args(argv, kwargs["default_preset"], kwargs["fixed"],
                                                   kwargs["default_data"])
        return 0

    monkeypatch.setattr(small_e_reading, "train_main", fake_main)
    assert small_e_reading.main(["trainer.steps=1000"]) == 0
    assert seen["data"] == "synthetic_corpus" and seen["config"].data.dataset == "synthetic_corpus"
    assert small_e_reading.main(["--plain", "data.dataset=speech_folder"]) == 0
    assert seen["data"] == "speech_folder" and seen["config"].model.cross_attention == "plain"
