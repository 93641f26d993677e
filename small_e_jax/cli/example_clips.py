"""``python -m data_pipeline.example_clips``: a few clips of the bundled mini corpus in the LJSpeech layout,
to try the own-data recipe on (docs/data.md). The library and the ``--help`` text: :mod:`data_pipeline.example_clips`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from data_pipeline import example_clips
from small_e_jax.cli import ArgumentParser, entry_point, error


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(prog="python -m data_pipeline.example_clips", description=example_clips.__doc__)
    p.add_argument("--out", type=Path, required=True, help="folder to write (LJSpeech layout)")
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--lines", type=int, default=3, help="sentences written to lines.txt")
    p.add_argument("--speaker", default=None, help="a mini-corpus speaker (default: the first)")
    args = p.parse_args(argv)
    try:
        ids = example_clips.write_example(args.out, args.clips, args.speaker, args.lines)
    except ValueError as err:
        return error(err, 2)
    print(f"wrote {len(ids)} clips to {args.out}/wavs and {args.out}/metadata.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
