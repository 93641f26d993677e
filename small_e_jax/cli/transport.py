"""``python -m data_pipeline.transport pack|unpack``: a built dataset as one small ``.npz`` file, to carry
it to another machine and back (docs/synthetic_corpus.md). The library and the ``--help`` text:
:mod:`data_pipeline.transport`."""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Optional

from data_pipeline import transport
from small_e_jax.cli import ArgumentParser, entry_point, error


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(description=transport.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="a built dataset -> one .npz")
    a.add_argument("--dataset", required=True)
    a.add_argument("--codec", required=True)
    a.add_argument("--n-q", type=int, default=4)
    a.add_argument("--data-dir", required=True)
    a.add_argument("--splits", default=None, help="comma-separated (default: all)")
    a.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("unpack", help="one .npz -> the built dataset under --data-dir")
    b.add_argument("path", type=Path)
    b.add_argument("--data-dir", required=True)
    args = p.parse_args(argv)
    try:
        if args.cmd == "pack":
            res = transport.pack(args.dataset, args.codec, args.data_dir, args.out, args.n_q,
                                 args.splits.split(",") if args.splits else None)
        else:
            res = transport.unpack(args.path, args.data_dir)
    except (ValueError, FileNotFoundError, FileExistsError, OSError, zipfile.BadZipFile, KeyError) as exc:
        return error(exc, 2)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
