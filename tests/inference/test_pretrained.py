"""Shipping a model: export a checkpoint as bf16 params-only, load it by path; clear errors."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import nnx

from small_e_jax import pretrained
from small_e_jax.cli import pretrained as pretrained_cli
from small_e_jax.inference import Synthesizer
from small_e_jax.sampling import GREEDY
from tests.inference.conftest import save_checkpoint


def test_export_is_bf16_and_loads_with_the_same_output(tiny, tmp_path):
    model, config = tiny
    run = save_checkpoint(tmp_path / "run", model, config, step=7)
    out = pretrained.export(run, tmp_path / "shipped", card={"data": "test"})
    card = json.loads((out / "card.json").read_text())
    assert card["step"] == 7 and card["dtype"] == "bfloat16" and card["data"] == "test"
    assert card["parameters"] == sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    shipped = Synthesizer.from_pretrained(str(out))
    assert shipped.checkpoint_step == 7
    floats = {x.dtype for x in jax.tree.leaves(shipped.params) if jax.dtypes.issubdtype(x.dtype, jax.numpy.floating)}
    assert floats == {jax.numpy.dtype("bfloat16")}
    original = Synthesizer.from_checkpoint(run, param_dtype="bfloat16")
    a = shipped.generate(["Hello there."], sampling=GREEDY, max_frames=12)[0]
    b = original.generate(["Hello there."], sampling=GREEDY, max_frames=12)[0]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(FileExistsError):
        pretrained.export(run, out)


def test_unknown_model_and_cli_errors(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no shipped model named 'nope'"):
        pretrained.pretrained_path("nope")
    assert pretrained_cli.main(["export", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_reading_tools_end_bad_input_with_one_line(tmp_path, capsys):
    from experiments.small_e_reading import main as reading
    from small_e_jax.cli.transport import main as transport

    bad = tmp_path / "codes.npz"
    bad.write_bytes(b"not a zip")
    assert reading(["decode", "--codes", str(bad), "--corpus", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: decode:")
    assert transport(["unpack", str(bad), "--data_dir", str(tmp_path / "d")]) == 2
    assert capsys.readouterr().err.startswith("error:")
