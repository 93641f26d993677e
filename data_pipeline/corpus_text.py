"""The sentence pool of the synthetic reading corpus, from offline, freely licensed English text.

    python -m data_pipeline.corpus_text [--out data_pipeline/synthetic_corpus/sentences.jsonl.gz]

Sources (each row keeps its ``source``; licences in ``data_pipeline/synthetic_corpus/README.md``):

* ``harvard`` — the Harvard sentences shipped with the mini corpus (public domain).
* ``wordnet`` — the usage examples of Princeton WordNet 3.0 (Debian ``wordnet-base``; WordNet 3.0
  licence, permissive: use, copy and distribution allowed with the notice kept).
* ``kjv`` — verses of the King James Bible (Debian ``bible-kjv-text``, read through the ``bible``
  program of ``bible-kjv``; the translation's copyright has expired, Crown patent in the UK only).
* ``devil`` — sentences of Ambrose Bierce's *The Devil's Dictionary* (1911; Debian ``dict-devil``;
  public domain).

Every sentence is normalised so that its text is exactly what the synthesizers are asked to say:
numbers, ordinals and a few symbols written out in words, common abbreviations expanded,
brackets and quotes removed, only letters, spaces and ``, . ; : ? ! ' -`` kept; rows that still
hold anything else are dropped (counted). The pool ships in the repository, so building the
corpus needs only the synthesizers, not these packages.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from small_e_jax.text.tokenizer import verbalize_numbers

POOL_DIR = Path(__file__).resolve().parent / "synthetic_corpus"
POOL_PATH = POOL_DIR / "sentences.jsonl.gz"
HARVARD = Path(__file__).resolve().parent / "mini_corpus" / "harvard_sentences.txt"
WORDNET_DIR = Path("/usr/share/wordnet")
DEVIL_DICT = Path("/usr/share/dictd/devil.dict.dz")
MIN_WORDS, MAX_WORDS = 3, 60

# Expanded before anything else; keys are matched as whole words (case-sensitive).
ABBREVIATIONS = {
    "Mr.": "Mister", "Mrs.": "Missus", "Dr.": "Doctor", "St.": "Saint", "Jr.": "Junior",
    "Sr.": "Senior", "Prof.": "Professor", "Gen.": "General", "Col.": "Colonel", "Capt.": "Captain",
    "Lt.": "Lieutenant", "Gov.": "Governor", "Rev.": "Reverend", "Mt.": "Mount", "vs.": "versus",
    "etc.": "et cetera", "e.g.": "for example", "i.e.": "that is", "U.S.": "United States",
    "a.m.": "A M", "p.m.": "P M", "No.": "Number", "Co.": "Company", "Inc.": "Incorporated",
}
SYMBOLS = {"&": " and ", "%": " percent", "$": " dollars ", "+": " plus ", "=": " equals ",
           "@": " at ", "#": " number "}
ALLOWED = re.compile(r"^[A-Za-z ,.;:?!'\-]+$")
_WORD = re.compile(r"[A-Za-z']+")


def normalize(text: str) -> str | None:
    """The spoken form of ``text``, or None when it cannot be written in the allowed alphabet."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))  # café -> cafe
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("\u2014", ", ").replace("--", ", ").replace("\u2013", "-")
    for short, long in ABBREVIATIONS.items():
        text = re.sub(rf"(?<![A-Za-z]){re.escape(short)}", long, text)
    for sym, word in SYMBOLS.items():
        text = text.replace(sym, word)
    if re.search(r"\d", text):
        text = verbalize_numbers(text)
    text = re.sub(r"[\"`_*]", "", text)  # quotes and emphasis marks are not spoken
    text = re.sub(r"\s*[(\[{]\s*", ", ", text)
    text = re.sub(r"\s*[)\]}]\s*", ", ", text)
    text = re.sub(r"\s+", " ", text).strip(" ,;:-")
    text = re.sub(r"\s+([,.;:?!])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)  # ", ," left by removed brackets
    if not text or not ALLOWED.match(text):
        return None
    if text[-1] not in ".?!":
        text += "."
    return text[0].upper() + text[1:]


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of running prose: cut after . ? ! followed by a capital (abbreviations expanded first)."""
    for short, long in ABBREVIATIONS.items():
        paragraph = re.sub(rf"(?<![A-Za-z]){re.escape(short)}", long, paragraph)
    return [s.strip() for s in re.split(r"(?<=[.?!])[\"']?\s+(?=[\"']?[A-Z])", paragraph) if s.strip()]


def harvard_sentences(path: Path = HARVARD) -> Iterator[str]:
    yield from (line.strip() for line in path.read_text().splitlines() if line.strip())


def wordnet_examples(root: Path = WORDNET_DIR) -> Iterator[str]:
    """The quoted usage examples of WordNet's glosses (``data.noun`` ... ``data.adv``)."""
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (root / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # the licence header
            yield from re.findall(r'"([^"]+)"', line.split("|", 1)[1])


def kjv_verses(runner: str = "bible") -> Iterator[str]:
    """Every verse of the King James Bible through the ``bible`` program (Debian bible-kjv)."""
    out = subprocess.run([runner, "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"^\S+\d+:\d+ (.*)$", line)
        if m:
            yield m.group(1).replace("LORD", "Lord").replace("GOD", "God")


def devil_sentences(path: Path = DEVIL_DICT) -> Iterator[str]:
    """Sentences of the definitions' prose in *The Devil's Dictionary* (verse lines are skipped)."""
    raw = gzip.decompress(path.read_bytes()).decode("latin-1")
    for para in re.split(r"\n\s*\n", raw):
        lines = [ln.strip() for ln in para.splitlines()]
        if len(lines) < 1 or sum(len(ln) < 45 for ln in lines) > len(lines) / 2:
            continue  # verse, headers, attributions
        text = " ".join(lines)
        text = re.sub(r"^[A-Z][A-Z' -]+,\s*(?:[a-z]+\.\s*)+", "", text)  # "HEADWORD, n." prefix
        yield from split_sentences(text)


_NAME_OK = {"I", "God", "Lord", "O", "Jesus", "Christ", "Israel", "Amen", "Spirit", "Holy", "Ghost"}


def few_names(sentence: str, limit: int = 2) -> bool:
    """At most ``limit`` capitalised words after the first (keeps the Bible's name lists out)."""
    words = _WORD.findall(sentence)[1:]
    return sum(w[0].isupper() and w not in _NAME_OK for w in words) <= limit


def collect(sources: dict[str, Iterable[str]]) -> tuple[list[dict], Counter]:
    """Normalised, de-duplicated rows ``{"text", "source", "words"}`` and the reasons rows were dropped."""
    seen: set[str] = set()
    rows, dropped = [], Counter()
    for name, texts in sources.items():
        for raw in texts:
            text = normalize(raw)
            if text is None:
                dropped[f"{name}: characters outside the alphabet"] += 1
                continue
            n = word_count(text)
            if not MIN_WORDS <= n <= MAX_WORDS:
                dropped[f"{name}: more than {MAX_WORDS} words" if n > MAX_WORDS
                        else f"{name}: fewer than {MIN_WORDS} words"] += 1
                continue
            if name in ("kjv", "devil") and not few_names(text):
                dropped[f"{name}: more than two proper names"] += 1
                continue
            key = re.sub(r"[^a-z ]", "", text.lower())
            if key in seen:
                dropped[f"{name}: duplicate"] += 1
                continue
            seen.add(key)
            rows.append({"text": text, "source": name, "words": n})
    return rows, dropped


def write_pool(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def read_pool(path: Path = POOL_PATH) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


if __name__ == "__main__":  # the command line: small_e_jax/cli/corpus_text.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.corpus_text", run_name="__main__")
