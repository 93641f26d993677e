"""``python -m small_e_jax.pretrained export|list``: turn a training run into a model shipped with the
package, or list those shipped (no doc page yet: README.md, Status). The library and the ``--help``
text: :mod:`small_e_jax.pretrained`."""

from __future__ import annotations

import argparse
import json
from typing import Optional

from small_e_jax import pretrained
from small_e_jax.cli import ArgumentParser, entry_point, error


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(prog="python -m small_e_jax.pretrained", description=pretrained.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="a training checkpoint -> a shippable params-only checkpoint")
    e.add_argument("--checkpoint", required=True, help="a run's workdir, its checkpoints folder or one step's folder")
    e.add_argument("--step", type=int, default=None)
    e.add_argument("--out", required=True)
    e.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    e.add_argument("--card", default=None, help="JSON object of extra facts for card.json")
    sub.add_parser("list", help="the models shipped in the package")
    args = p.parse_args(argv)
    if args.cmd == "list":
        for name in pretrained.shipped_models():
            print(name, json.loads((pretrained.PRETRAINED_DIR / name / "card.json").read_text()))
        return 0
    from small_e_jax.checkpoint import CheckpointError

    try:
        card = json.loads(args.card) if args.card else None
        out = pretrained.export(args.checkpoint, args.out, step=args.step, dtype=args.dtype, card=card)
    except (CheckpointError, FileExistsError, ValueError, OSError) as exc:
        return error(exc, 2)
    print(f"exported {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
