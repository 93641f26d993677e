"""Text tokenizer: our own versioned 256-entry BPE (docs/model.md §1, "Text").

Pipeline for ``encode(text)``:

1. Unicode NFC, then a small explicit map of typographic characters to plain ones (curly quotes,
   en dash, ellipsis, non-breaking space, ``&`` -> " and ", ``%`` -> " percent").
2. A check: every character must be encodable (in the tokenizer's alphabet after lowercasing, a
   digit, or whitespace); otherwise :class:`UnencodableCharacterError` (a ValueError) names the
   character and its position. Nothing is silently dropped.
3. Numbers are verbalised with ``num2words`` (``21st`` -> "twenty-first", ``1,500`` -> "one
   thousand, five hundred", ``3.5`` -> "three point five"); whitespace runs become one space;
   lowercase.
4. Pre-tokenisation: every punctuation character and every space is its own piece; BPE merges
   (in rank order) inside the other pieces.
5. ``[BOS] + ids + [EOS]`` with ``[PAD] = 0, [BOS] = 1, [EOS] = 2``.

The vocabulary file is a Hugging Face ``tokenizers`` JSON (BPE model, Lowercase normaliser,
punctuation/space pre-tokeniser), built by ``small_e_jax/text/build_tokenizer.py`` from
``corpus_en.txt`` (text written for this project). Encoding here is pure Python (no
``tokenizers`` needed at run time); the tests check it against ``tokenizers`` when installed.
A tokenizer file never changes once released: a new one gets a new version name.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Sequence

from num2words import num2words

TEXT_DIR = Path(__file__).parent
DEFAULT_VERSION = "bpe256_v1"
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIAL_TOKENS = ("[PAD]", "[BOS]", "[EOS]")

# Typographic characters mapped to what the alphabet has (applied before the encodability check).
CHAR_MAP = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "&": " and ", "%": " percent",
}

_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL = re.compile(r"\d+\.\d+")
_GROUPED = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_INTEGER = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


class UnencodableCharacterError(ValueError):
    """A character the tokenizer cannot encode; ``char`` and ``position`` (in the NFC text)."""

    def __init__(self, char: str, position: int, text: str):
        self.char, self.position = char, position
        name = unicodedata.name(char, "unnamed")
        super().__init__(f"cannot encode character {char!r} (U+{ord(char):04X} {name}) at position "
                         f"{position} of {text!r}")


def verbalize_numbers(text: str) -> str:
    """Write the digits of ``text`` out in English words (``num2words``)."""
    text = _ORDINAL.sub(lambda m: num2words(int(m.group(1)), to="ordinal"), text)
    text = _GROUPED.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _DECIMAL.sub(lambda m: num2words(Decimal(m.group(0))), text)
    return _INTEGER.sub(lambda m: num2words(int(m.group(0))), text)


def _is_punctuation(char: str) -> bool:
    # The pre-tokeniser's rule (HF ``Punctuation``): ASCII punctuation or Unicode category P*.
    return (char.isascii() and not char.isalnum() and char.isprintable() and not char.isspace()) \
        or unicodedata.category(char).startswith("P")


class TextTokenizer:
    """Encode text to ids ``[BOS] + BPE ids + [EOS]`` and back. Load with :func:`load_tokenizer`."""

    def __init__(self, vocab: dict[str, int], merges: Sequence[tuple[str, str]], version: str):
        self.version = version
        self.vocab = dict(vocab)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        if [self.vocab.get(t) for t in SPECIAL_TOKENS] != [PAD_ID, BOS_ID, EOS_ID]:
            raise ValueError(f"tokenizer {version}: special tokens must be {SPECIAL_TOKENS} = 0, 1, 2")
        self.alphabet = frozenset(t for t in self.vocab if len(t) == 1)
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @classmethod
    def from_file(cls, path: str | Path, version: str | None = None) -> "TextTokenizer":
        """Read a Hugging Face ``tokenizers`` BPE JSON file."""
        path = Path(path)
        model = json.loads(path.read_text(encoding="utf-8"))["model"]
        if model.get("type") != "BPE":
            raise ValueError(f"{path}: not a BPE tokenizer (model type {model.get('type')!r})")
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        return cls(model["vocab"], merges, version or path.stem)

    # ------------------------------------------------------------------ text -> pieces

    def normalize(self, text: str) -> str:
        """NFC, character map, encodability check, numbers in words, one space, lowercase."""
        text = unicodedata.normalize("NFC", text)
        for position, char in enumerate(text):
            if not self._encodable(char):
                raise UnencodableCharacterError(char, position, text)
        text = "".join(CHAR_MAP.get(char, char) for char in text)
        text = verbalize_numbers(text)
        return _SPACES.sub(" ", text).strip().lower()

    def _encodable(self, char: str) -> bool:
        if char.isspace() or char in "0123456789":
            return True
        mapped = CHAR_MAP.get(char, char)
        return all(c in self.alphabet or c == " " for c in mapped.lower())

    @staticmethod
    def pre_tokenize(text: str) -> list[str]:
        """Split into pieces: each punctuation character and each space alone, words between."""
        pieces, word = [], []
        for char in text:
            if char == " " or _is_punctuation(char):
                if word:
                    pieces.append("".join(word))
                    word = []
                pieces.append(char)
            else:
                word.append(char)
        if word:
            pieces.append("".join(word))
        return pieces

    @functools.lru_cache(maxsize=65536)
    def _bpe(self, piece: str) -> tuple[str, ...]:
        """Merge the lowest-ranked adjacent pair, all its occurrences left to right, until none."""
        parts = list(piece)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            ranked = [(rank, i) for rank, i in pairs if rank is not None]
            if not ranked:
                break
            best = min(ranked)[0]
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and self.ranks.get((parts[i], parts[i + 1])) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(parts)

    # ------------------------------------------------------------------ public

    def encode(self, text: str, *, add_special: bool = True) -> list[int]:
        """Text -> ids (``[BOS] + ids + [EOS]`` by default). ValueError for unencodable or empty text."""
        normalized = self.normalize(text)
        if not normalized:
            raise ValueError(f"empty text: {text!r} has nothing to encode")
        ids = [self.vocab[token] for piece in self.pre_tokenize(normalized) for token in self._bpe(piece)]
        return [BOS_ID, *ids, EOS_ID] if add_special else ids

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> normalised text (special tokens dropped)."""
        return "".join(self.id_to_token[int(i)] for i in ids if int(i) not in (PAD_ID, BOS_ID, EOS_ID))


def tokenizer_path(version: str = DEFAULT_VERSION) -> Path:
    return TEXT_DIR / f"{version}.json"


@functools.lru_cache(maxsize=8)
def load_tokenizer(version: str = DEFAULT_VERSION) -> TextTokenizer:
    """The shipped tokenizer ``version`` (default ``bpe256_v1``)."""
    path = tokenizer_path(version)
    if not path.exists():
        shipped = sorted(p.stem for p in TEXT_DIR.glob("bpe*.json"))
        raise ValueError(f"unknown tokenizer version {version!r}; shipped: {', '.join(shipped)}")
    return TextTokenizer.from_file(path, version)
