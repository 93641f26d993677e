"""One flag style: hyphenated flags, with the older underscore spellings accepted as aliases."""

from __future__ import annotations

from small_e_jax.cli import ArgumentParser, hyphenate


def test_underscore_spelling_is_an_alias():
    p = ArgumentParser()
    p.add_argument("--data-dir")
    p.add_argument("--n-q", type=int, default=4)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--codec-weights")
    args = p.parse_args(["--data_dir", "d", "--n_q=8", "--codec_weights", "w"])
    assert (args.data_dir, args.n_q, args.codec_weights) == ("d", 8, "w")
    assert p.parse_args(["--data-dir", "e"]).data_dir == "e"


def test_values_and_subcommands():
    p = ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("pack")
    s.add_argument("--data-dir")
    s.add_argument("--text")
    args = p.parse_args(["pack", "--data_dir", "x", "--text=--data_dir"])
    assert (args.cmd, args.data_dir, args.text) == ("pack", "x", "--data_dir")  # a value is never rewritten
    assert hyphenate("model.d_model=3", {"--d-model"}) == "model.d_model=3"  # overrides are not flags
