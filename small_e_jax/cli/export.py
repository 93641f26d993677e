"""``small-e-export`` / ``python -m small_e_jax.export``: the decode step of a checkpoint as
serialized StableHLO (docs/inference.md). The library and the ``--help`` text: :mod:`small_e_jax.export`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from small_e_jax import export
from small_e_jax.cli import ArgumentParser, entry_point, error


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m small_e_jax.export", description=export.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a run's workdir, its checkpoints folder or one step's folder")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--text-len", type=int, default=64)
    p.add_argument("--platform", action="append", default=None, help="cpu / cuda / tpu (repeatable)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from small_e_jax.checkpoint import CheckpointError
    from small_e_jax.inference import load_model

    try:
        model, _, step = load_model(args.checkpoint)
    except CheckpointError as err:
        return error(err, 2)
    exported = export.export_decode_step(model, args.batch, args.text_len, args.platform)
    export.save(exported, args.out)
    print(f"wrote {args.out} (step {step}, B={args.batch}, J={args.text_len}, "
          f"platforms {exported.platforms})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
