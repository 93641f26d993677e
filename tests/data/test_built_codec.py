"""The trainer takes the codec, its weights and n_q from the built dataset (data_pipeline.loader.resolve_codec)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_pipeline.loader import built_codecs, resolve_codec
from small_e_jax.config import DataConfig, ModelConfig, load_config


def _fake_build(data_dir: Path, dataset: str, folder: str, **meta) -> None:
    """What a finished build leaves that resolve_codec reads (no encoding); ``folder``: the codec's."""
    version = data_dir / dataset / folder / "1.0.0"
    version.mkdir(parents=True)
    (version / "dataset_info.json").write_text("{}")
    if meta:
        (version / "metadata.json").write_text(json.dumps(meta))


def test_built_codecs_lists_finished_builds(tmp_path):
    _fake_build(tmp_path, "mini", "dac_mini24", codec="dac_mini24", codec_weights="bundled", n_q=4)
    _fake_build(tmp_path, "mini", "old")  # before builds recorded their codec
    (tmp_path / "mini" / "half" / "1.0.0.incomplete").mkdir(parents=True)  # an interrupted build
    folder, built = built_codecs("mini", str(tmp_path))
    assert folder == tmp_path / "mini"
    assert built == {"dac_mini24": {"codec": "dac_mini24", "codec_weights": "bundled", "n_q": 4}, "old": {}}
    assert built_codecs("speech_folder", str(tmp_path))[1] == {}


def test_default_codec_takes_the_only_build(tmp_path):
    _fake_build(tmp_path, "mini", "dac_mini24", codec="dac_mini24", codec_weights="bundled", n_q=4)
    data, model = DataConfig(dataset="mini", data_dir=str(tmp_path)), ModelConfig()
    assert data.codec == DataConfig.codec and data.codec_weights is None
    notes = resolve_codec(data, model)
    assert data.codec == "dac_mini24" and data.codec_weights == "bundled" and model.n_codebooks == 4
    assert len(notes) == 2 and "data.codec=dac_mini24" in notes[0]
    # Already resolved: nothing more to say; weights the user gave are kept.
    assert resolve_codec(data, model) == []
    data = DataConfig(dataset="mini", data_dir=str(tmp_path), codec="dac_mini24", codec_weights="mine")
    assert resolve_codec(data, model) == [] and data.codec_weights == "mine"


def test_codec_not_built_names_the_built_ones(tmp_path):
    data = DataConfig(dataset="mini", data_dir=str(tmp_path), codec="dac_44khz")
    assert resolve_codec(data, ModelConfig()) == [] and data.codec == "dac_44khz"  # nothing built: open_source says
    _fake_build(tmp_path, "mini", "dac_mini24", n_q=4)
    with pytest.raises(FileNotFoundError, match="not built with codec dac_44khz .*built with dac_mini24: set data"):
        resolve_codec(data, ModelConfig())
    _fake_build(tmp_path, "mini", "dac_24khz_other", n_q=4)
    data = DataConfig(dataset="mini", data_dir=str(tmp_path))  # the default, but two builds: no guess
    with pytest.raises(FileNotFoundError, match="built with dac_24khz_other, dac_mini24"):
        resolve_codec(data, ModelConfig())


def test_n_q_from_the_build(tmp_path):
    # (a dac_24khz folder, the default codec's, would be read by TFDS itself: a fake one is not valid)
    _fake_build(tmp_path, "mini", "dac_44khz", codec="dac_44khz", codec_weights=None, n_q=8)
    data, model = DataConfig(dataset="mini", data_dir=str(tmp_path), codec="dac_44khz"), ModelConfig()
    assert resolve_codec(data, model) == ["model.n_codebooks=8: the codebooks mini/dac_44khz is built with"]
    assert model.n_codebooks == 8 and data.codec_weights is None
    with pytest.raises(ValueError, match="model.n_codebooks=6 but mini/dac_44khz is built with n_q=8"):
        resolve_codec(DataConfig(dataset="mini", data_dir=str(tmp_path), codec="dac_44khz"), ModelConfig(n_codebooks=6))


def test_trainer_source_reads_the_built_codec(folder_build, capsys):
    from small_e_jax.data_source import LoaderSource
    _, data_dir, _ = folder_build  # speech_folder built with the codec named "tiny"
    config = load_config("tiny", ["data.dataset=speech_folder", f"data.data_dir={data_dir}"])
    assert config.data.codec == DataConfig.codec
    source = LoaderSource(config)
    assert config.data.codec == "tiny" and "note: data.codec=tiny" in capsys.readouterr().err
    assert next(source.train_iterator())["audio"].shape[-1] == config.model.n_codebooks
