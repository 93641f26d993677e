"""The versioned BPE text tokenizer (SPEC §1, "Text")."""

from __future__ import annotations

import hashlib

import pytest

from small_e_jax.text import (BOS_ID, EOS_ID, PAD_ID, UnencodableCharacterError, load_tokenizer,
                              verbalize_numbers)
from small_e_jax.text.tokenizer import TEXT_DIR, tokenizer_path

# A released tokenizer file never changes (checkpoints depend on its ids): a new file gets a new
# version name, and its hash is added here.
RELEASED = {"bpe256_v1": "f62611ff1c8f8247ab196d3a8626327ba88538f17114c74fc2e94319999e913f"}

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "\"Where are you going?\" she asked; he said: (nothing) [really] {at all}!",
    "It costs 3.5 pounds, on the 21st of May, for 1,500 people & 20% more.",
    "Café, naïve, œuvre, señor — and   extra   spaces\tand\nnewlines.",
    "‘Curly’ “quotes” – dashes… ok",
]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def test_released_file_is_unchanged():
    for version, digest in RELEASED.items():
        assert hashlib.sha256(tokenizer_path(version).read_bytes()).hexdigest() == digest, version


def test_vocabulary_layout(tok):
    assert tok.version == "bpe256_v1" and tok.vocab_size == 256
    assert [tok.id_to_token[i] for i in (PAD_ID, BOS_ID, EOS_ID)] == ["[PAD]", "[BOS]", "[EOS]"]
    assert set("abcdefghijklmnopqrstuvwxyz .,?!'\"-") <= tok.alphabet
    assert not set("0123456789") & tok.alphabet  # numbers are verbalised


@pytest.mark.parametrize("text", SENTENCES)
def test_encode_wraps_and_round_trips(tok, text):
    ids = tok.encode(text)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert all(3 <= i < 256 for i in ids[1:-1])
    assert tok.decode(ids) == tok.normalize(text)
    assert len(ids) - 2 < len(tok.normalize(text))  # merges happen


def test_normalisation(tok):
    assert tok.normalize("  Hello,\n  WORLD  ") == "hello, world"
    assert tok.normalize("21st") == "twenty-first"
    assert tok.normalize("1,500 and 3.5") == "one thousand, five hundred and three point five"
    assert tok.normalize("A & B: 20%") == "a and b: twenty percent"
    assert tok.normalize("‘it’s’ “so” – …") == "'it's' \"so\" - ..."
    assert verbalize_numbers("7 cats") == "seven cats"


@pytest.mark.parametrize("text, char, position", [
    ("price: $5", "$", 7),
    ("hello 世界", "世", 6),
    ("a#b", "#", 1),
    ("emoji 🙂 here", "🙂", 6),
])
def test_unencodable_character_is_an_error_naming_it(tok, text, char, position):
    with pytest.raises(UnencodableCharacterError) as info:
        tok.encode(text)
    assert isinstance(info.value, ValueError)
    assert (info.value.char, info.value.position) == (char, position)
    assert repr(char) in str(info.value) and f"position {position}" in str(info.value)


def test_empty_text_is_an_error(tok):
    with pytest.raises(ValueError, match="empty"):
        tok.encode("   ")


def test_every_alphabet_character_encodes_to_itself(tok):
    for char in sorted(tok.alphabet - {" "}):  # a lone space normalises to nothing
        assert tok.encode(char, add_special=False) == [tok.vocab[char]], char
    assert tok.encode("a b", add_special=False) == [tok.vocab["a"], tok.vocab[" "], tok.vocab["b"]]


def test_unknown_version(tok):
    with pytest.raises(ValueError, match="bpe256_v1"):
        load_tokenizer("bpe999_v9")


def test_matches_hugging_face_tokenizers(tok):
    """Our pure-Python encoder gives the ids the `tokenizers` library gives for the same file."""
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer.from_file(str(tokenizer_path()))
    lines = (TEXT_DIR / "corpus_en.txt").read_text(encoding="utf-8").splitlines()[:60] + SENTENCES
    for line in lines:
        normalized = tok.normalize(line)
        assert hf.encode(normalized).ids == tok.encode(line, add_special=False), line
