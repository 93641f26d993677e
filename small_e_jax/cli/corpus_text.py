"""``python -m data_pipeline.corpus_text``: rebuild the synthetic corpus's sentence pool from the Debian text
packages (docs/synthetic_corpus.md). The library and the ``--help`` text: :mod:`data_pipeline.corpus_text`."""

from __future__ import annotations

import argparse
import subprocess
from collections import Counter
from pathlib import Path

from data_pipeline import corpus_text as text
from small_e_jax.cli import ArgumentParser, entry_point


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=text.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=text.POOL_PATH)
    args = p.parse_args(argv)
    missing = [str(x) for x in (text.WORDNET_DIR / "data.noun", text.DEVIL_DICT) if not x.exists()]
    if missing or subprocess.run(["sh", "-c", "command -v bible"], capture_output=True).returncode:
        print("error: needs the Debian packages wordnet-base, bible-kjv (with bible-kjv-text) and dict-devil "
              f"(apt-get install wordnet-base bible-kjv dict-devil); missing: {missing or ['bible']}")
        return 2
    rows, dropped = text.collect({"harvard": text.harvard_sentences(), "wordnet": text.wordnet_examples(),
                                  "kjv": text.kjv_verses(), "devil": text.devil_sentences()})
    text.write_pool(rows, args.out)
    by_source = Counter(r["source"] for r in rows)
    print(f"{len(rows)} sentences -> {args.out}: " + ", ".join(f"{k} {v}" for k, v in by_source.items()))
    for reason, n in sorted(dropped.items()):
        print(f"  dropped {n:6d}  {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
