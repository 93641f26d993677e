"""``python -m data_pipeline.transcribe``: transcripts of LibriLight segments with a local faster-whisper model
(docs/data.md). The library and the ``--help`` text: :mod:`data_pipeline.transcribe`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from data_pipeline import transcribe
from small_e_jax.cli import ArgumentParser, entry_point


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(description=transcribe.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manual-dir", required=True, help="LibriLight folder (per-book FLAC + JSON)")
    p.add_argument("--model", required=True, help="local faster-whisper (CTranslate2) model folder")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--max-segment-seconds", type=float, default=25.0)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compute-type", default="int8")
    args = p.parse_args(argv)
    return transcribe.run(args)


if __name__ == "__main__":
    sys.exit(main())
