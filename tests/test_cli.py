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


def test_aliases_inside_the_error_wrapping_entry_point(capsys):
    """The one-line error wrapper and the alias parser work together: an old spelling parses,
    a bad flag is one ``error:`` line naming the hyphenated flag, exit 2."""
    import pytest

    from small_e_jax.cli import entry_point

    seen = {}

    @entry_point
    def main(argv=None):
        p = ArgumentParser(prog="demo")
        p.add_argument("--n-q", type=int, default=4)
        seen.update(vars(p.parse_args(argv)))
        return 0

    assert main(["--n_q", "8"]) == 0 and seen["n_q"] == 8
    assert main(["--n-q=6", "--debug"]) == 0 and seen["n_q"] == 6
    with pytest.raises(SystemExit) as exit_info:
        main(["--n_q", "four"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: demo: argument --n-q: invalid int value: 'four' (see --help)"]


def test_small_e_verbose_keeps_library_logs(monkeypatch):
    import logging

    from small_e_jax import cli

    logger = logging.getLogger("orbax.checkpoint")
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    monkeypatch.setenv("SMALL_E_VERBOSE", "1")
    cli.quiet_libraries()
    assert logger.level == logging.NOTSET
    monkeypatch.delenv("SMALL_E_VERBOSE")
    cli.quiet_libraries()
    assert logger.level == logging.ERROR
