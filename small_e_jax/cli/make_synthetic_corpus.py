"""``python -m data_pipeline.make_synthetic_corpus``: synthesize the reading corpus with 17 offline voices
(docs/synthetic_corpus.md). The library and the ``--help`` text: :mod:`data_pipeline.make_synthetic_corpus`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional

from data_pipeline import make_synthetic_corpus
from data_pipeline.corpus_text import POOL_PATH
from small_e_jax.cli import ArgumentParser, entry_point


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(description=make_synthetic_corpus.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--hours", type=float, default=32.0, help="planned hours of audio (all splits)")
    p.add_argument("--min-sentences", type=int, default=30_500, help="at least this many distinct sentences")
    p.add_argument("--seed", type=int, default=2406)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--sample-rate", type=int, default=16_000)
    p.add_argument("--format", choices=("opus", "wav", "flac"), default="opus",
                   help="opus (~3 kB/s, for keeping) or wav/flac (lossless, for tokenizing right away)")
    p.add_argument("--engines-prefix", default=None,
                   help="a folder where scripts/bundle_tts_engines.sh's tarball was unpacked (default: the system's)")
    p.add_argument("--sentences", type=Path, default=POOL_PATH)
    p.add_argument("--splits", default="train,validation,heldout_voices", help="make only these splits")
    p.add_argument("--limit", type=int, default=None, help="first N items of each split (quick checks)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this many minutes with a usable partial corpus (held-out splits first, "
                        "then a random part of the training split); the same command again completes it")
    p.add_argument("--no-progress-bar", action="store_true")
    args = p.parse_args(argv)
    return make_synthetic_corpus.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
