"""``python -m data_pipeline.make_mini_corpus``: regenerate the bundled mini corpus with espeak-ng and Festival
(README.md, Data). The library and the ``--help`` text: :mod:`data_pipeline.make_mini_corpus`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from data_pipeline import make_mini_corpus
from small_e_jax.cli import ArgumentParser, entry_point


@entry_point
def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(description=make_mini_corpus.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=make_mini_corpus.CORPUS_DIR)
    p.add_argument("--sentences", type=Path, default=make_mini_corpus.CORPUS_DIR / "harvard_sentences.txt")
    p.add_argument("--voices-per-sentence", type=int, default=2)
    p.add_argument("--validation-fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1969)
    p.add_argument("--limit", type=int, default=None, help="first N sentences only (quick checks)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    return make_mini_corpus.run(args)


if __name__ == "__main__":
    main()  # as before: the status is 0 unless main raises (bad usage, a missing tool)
