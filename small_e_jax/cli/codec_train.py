"""``python -m small_e_jax.codec.train``: train the compact DAC codec on the bundled mini corpus
(docs/codec_training.md); a flag per field of :class:`~small_e_jax.codec.training.config.CodecTrainConfig`.
The library and the ``--help`` text: :mod:`small_e_jax.codec.training.train`. Like it, this module needs
neither draccus nor grain/TFDS (the GPU image has neither)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Optional

from small_e_jax.cli import ArgumentParser, entry_point, error
from small_e_jax.codec.training import train as codec_train
from small_e_jax.codec.training.config import CodecTrainConfig


def parse_args(argv: Optional[list[str]] = None) -> CodecTrainConfig:
    """``--field-name value`` for every :class:`CodecTrainConfig` field."""
    parser = ArgumentParser(prog="python -m small_e_jax.codec.train", description=codec_train.__doc__.split("\n")[0])
    for f in dataclasses.fields(CodecTrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if f.type in ("bool",) or isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
            continue
        kind = {"int": int, "float": float, "str": str, "Optional[int]": int, "Optional[float]": float,
                "Optional[str]": str}[f.type]
        parser.add_argument(flag, type=kind, default=default, help=f"(default: {default})")
    return CodecTrainConfig(**vars(parser.parse_args(argv)))


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    try:
        cfg = parse_args(argv)
        cfg.validate()
    except ValueError as exc:
        return error(exc, 2)
    codec_train.train(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
