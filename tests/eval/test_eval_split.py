"""``--split`` of the checkpoint evaluations: which split's batches the data source is asked for."""

import pytest

from small_e_jax import evaluate
from small_e_jax.data_source import LoaderSource


class _RecordingLoader:
    """Stands in for data_pipeline.loader: records the split each loader is made for."""

    def __init__(self, fail: bool = False):
        self.calls, self.fail = [], fail

    def make_loader(self, data_config, split, *, num_epochs=None, **kw):
        self.calls.append((split, num_epochs))
        if self.fail:
            raise FileNotFoundError(f"no split {split}")
        return [{"split": split}]


def _source(loader):
    source = object.__new__(LoaderSource)  # no dataset on disk: only eval_batches is exercised
    source.config, source.loader, source.kw = type("C", (), {"data": None})(), loader, {}
    return source


def test_eval_batches_reads_the_split_asked_for_once():
    loader = _RecordingLoader()
    source = _source(loader)
    assert list(source.eval_batches()) == [{"split": "validation"}]
    assert list(source.eval_batches("train")) == [{"split": "train"}]
    assert loader.calls == [("validation", 1), ("train", 1)]  # one pass, never an endless stream


def test_eval_batches_missing_split_warns_and_is_empty(capsys):
    assert list(_source(_RecordingLoader(fail=True)).eval_batches("train")) == []
    assert "no train batches" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["perplexity", "attention"])
def test_split_flag_parses_and_rejects_unknown_splits(command):
    parser = evaluate.build_parser()
    extra = ["--out-dir", "d"] if command == "attention" else []
    assert parser.parse_args([command, "--checkpoint", "c", *extra]).split == "validation"
    assert parser.parse_args([command, "--checkpoint", "c", "--split", "train", *extra]).split == "train"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([command, "--checkpoint", "c", "--split", "test", *extra])
    assert exit_info.value.code == 2
