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

from pathlib import Path

from num2words import num2words

from small_e_jax.text.tokenizer import SPECIAL_TOKENS, TextTokenizer

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


if __name__ == "__main__":  # the command line: small_e_jax/cli/build_tokenizer.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.build_tokenizer", run_name="__main__")
