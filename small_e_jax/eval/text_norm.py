"""Whisper-style English text normalisation, so that WER compares words and not spelling.

Applied to the reference text and to the ASR transcript alike::

    "Mr. Smith paid $5.50 on the 3rd of May, didn't he?" -> "mister smith paid five dollars fifty
    cents on the third of may did not he"

Steps (in the spirit of OpenAI Whisper's ``EnglishTextNormalizer``, written from its
description, not its code): lower-case; drop text in brackets/parentheses (ASR annotations such
as "[music]"); expand common contractions and titles; spell out numbers with ``num2words``
(cardinals, ordinals "3rd", decimals, "%", "$"/"£"/"€" amounts, years stay cardinals); turn
hyphens/slashes into spaces; remove all other punctuation (apostrophes of possessives included);
collapse whitespace. Deterministic and idempotent (``normalize(normalize(x)) == normalize(x)``).
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

# Expanded before punctuation is stripped (word-bounded, case-insensitive input is lower-cased).
_CONTRACTIONS = [
    (r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"), (r"\bcannot\b", "can not"),
    (r"\bshan't\b", "shall not"), (r"\bain't\b", "is not"), (r"\blet's\b", "let us"),
    (r"n't\b", " not"), (r"'re\b", " are"), (r"'ve\b", " have"), (r"'ll\b", " will"),
    (r"'m\b", " am"), (r"'d\b", " would"),
    (r"\bit's\b", "it is"), (r"\bthat's\b", "that is"), (r"\bthere's\b", "there is"),
    (r"\bwhat's\b", "what is"), (r"\bhe's\b", "he is"), (r"\bshe's\b", "she is"),
    (r"\bwhere's\b", "where is"), (r"\bwho's\b", "who is"), (r"\bhere's\b", "here is"),
]
_TITLES = {"mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint",
           "prof": "professor", "jr": "junior", "sr": "senior", "vs": "versus", "etc": "et cetera"}
_SPELLINGS = {"ok": "okay", "colour": "color", "grey": "gray", "favourite": "favorite",
              "centre": "center", "theatre": "theater", "labour": "labor", "honour": "honor"}
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents")}

_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_MONEY = re.compile(r"([$£€])\s?(\d+(?:,\d{3})*)(?:\.(\d{1,2}))?\b")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_NUMBER = re.compile(r"\d+(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+")


def _cardinal(text: str) -> str:
    text = text.replace(",", "")
    if "." in text:
        whole, frac = text.split(".", 1)
        # "3.14" -> "three point one four" (digits read one by one, as people say them)
        return f"{num2words(int(whole))} point " + " ".join(num2words(int(d)) for d in frac)
    return num2words(int(text))


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
    whole = int(m.group(2).replace(",", ""))
    out = f"{num2words(whole)} {one if whole == 1 else many}"
    if m.group(3):
        cents = int(m.group(3).ljust(2, "0"))
        if cents:
            out += f" {num2words(cents)} {sub_one if cents == 1 else sub_many}"
    return f" {out} "


def normalize(text: str) -> str:
    """One string -> its normalised form: lower-case words separated by single spaces."""
    if not isinstance(text, str):
        raise TypeError(f"normalize expects a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[<\[][^>\]]*[>\]]", " ", text)  # [music], <unk>
    text = re.sub(r"\([^)]*\)", " ", text)  # (laughs)
    for pattern, repl in _CONTRACTIONS:
        text = re.sub(pattern, repl, text)
    text = re.sub(r"\b(" + "|".join(_TITLES) + r")\b\.?", lambda m: _TITLES[m.group(1)], text)
    text = _MONEY.sub(_money, text)
    text = _PERCENT.sub(lambda m: f" {_cardinal(m.group(1))} percent ", text)
    text = _ORDINAL.sub(lambda m: f" {num2words(int(m.group(1)), to='ordinal')} ", text)
    text = re.sub(r"(\d)([a-z])", r"\1 \2", text)  # "5pm" -> "5 pm"
    text = re.sub(r"([a-z])(\d)", r"\1 \2", text)
    text = _NUMBER.sub(lambda m: f" {_cardinal(m.group(0))} ", text)
    text = re.sub(r"[-/]", " ", text)  # num2words' "twenty-one" and "and/or" become two words
    text = re.sub(r"'s\b", "s", text)  # possessive: "john's" -> "johns"
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    words = [_SPELLINGS.get(w, w) for w in text.split()]
    return " ".join(words)
