"""Build a versioned BPE text tokenizer file (docs/model.md §1): ``python -m small_e_jax.text.build_tokenizer``.

Trains a Hugging Face ``tokenizers`` BPE of ``--vocab-size`` entries (default 256) on
``corpus_en.txt`` (English text written for this project, Apache-2.0) plus every number from 0 to
``--numbers`` in words (numbers are verbalised before encoding, so their words must merge well).
The alphabet is fixed (``ALPHABET``), so every listed character is encodable even when the corpus
lacks it. Output: ``small_e_jax/text/<version>.json``. A released file is never rewritten: pick a
new ``--version`` to change anything (checkpoints depend on the ids).

Needs ``tokenizers`` (build time only; encoding at run time is pure Python).
"""

from __future__ import annotations

import sys
from pathlib import Path

from num2words import num2words

from small_e_jax.text.tokenizer import SPECIAL_TOKENS, TEXT_DIR, TextTokenizer
from small_e_jax.cli import ArgumentParser, entry_point

LETTERS = "abcdefghijklmnopqrstuvwxyz"
ACCENTED = "àâäæçèéêëîïñôöœùûü"
PUNCTUATION = "!\"'(),-./:;?[]{}\u2014"  # \u2014 = em dash
ALPHABET = " " + PUNCTUATION + LETTERS + ACCENTED


def training_lines(corpus: Path, numbers: int) -> list[str]:
    tok = TextTokenizer({t: i for i, t in enumerate([*SPECIAL_TOKENS, *ALPHABET])}, [], "build")
    lines = [tok.normalize(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines += [num2words(n) for n in range(numbers + 1)]
    lines += [num2words(n, to="ordinal") for n in range(1, 101)]
    return lines


def build(corpus: Path, out: Path, vocab_size: int, numbers: int) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())  # no unk token: our encoder rejects unknown characters
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Punctuation(behavior="isolated"),
        pre_tokenizers.Split(" ", behavior="isolated"),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=list(ALPHABET), limit_alphabet=len(ALPHABET),
                                  show_progress=False)
    tokenizer.train_from_iterator(training_lines(corpus, numbers), trainer=trainer)
    extra = sorted(t for t in tokenizer.get_vocab() if len(t) == 1 and t not in ALPHABET)
    if extra:
        raise SystemExit(f"corpus has characters outside the alphabet: {extra}")
    if tokenizer.get_vocab_size() != vocab_size:
        raise SystemExit(f"got {tokenizer.get_vocab_size()} entries, wanted {vocab_size} (corpus too small?)")
    out.write_text(tokenizer.to_str(pretty=True) + "\n", encoding="utf-8")


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
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
    build(args.corpus, out, args.vocab_size, args.numbers)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
