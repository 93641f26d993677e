"""``python -m small_e_jax.text.build_tokenizer``: build a versioned BPE text tokenizer file (docs/model.md
§1). The library and the ``--help`` text: :mod:`small_e_jax.text.build_tokenizer`."""

from __future__ import annotations

import sys
from pathlib import Path

from small_e_jax.cli import ArgumentParser, entry_point
from small_e_jax.text import build_tokenizer
from small_e_jax.text.tokenizer import TEXT_DIR


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=build_tokenizer.__doc__.splitlines()[0])
    parser.add_argument("--version", default="bpe256_v1")
    parser.add_argument("--vocab-size", type=int, default=256)
    parser.add_argument("--corpus", type=Path, default=TEXT_DIR / "corpus_en.txt")
    parser.add_argument("--numbers", type=int, default=1000)
    parser.add_argument("--force", action="store_true", help="overwrite an existing version")
    args = parser.parse_args(argv)
    out = TEXT_DIR / f"{args.version}.json"
    if out.exists() and not args.force:
        print(f"error: {out} exists; released tokenizers are immutable (use a new --version)", file=sys.stderr)
        return 2
    build_tokenizer.build(args.corpus, out, args.vocab_size, args.numbers)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
