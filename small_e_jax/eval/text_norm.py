"""English text normalisation for WER: OpenAI Whisper's own ``EnglishTextNormalizer``.

Applied to the reference text and to the ASR transcript alike, so WER compares words and not
spelling::

    "Mr. Smith didn't pay $5.50." -> "mister smith did not pay $5.50"
    "I have two dogs."           -> "i have 2 dogs"

Why the library: published WERs (Whisper's paper and most TTS papers after it) are computed
after exactly this normaliser, so ours compare with theirs only if we use the same one. The
``whisper-normalizer`` package is Whisper's normaliser extracted without the model (no torch).
It writes spoken numbers as digits ("twenty-one" -> "21"), expands contractions and titles,
drops bracketed annotations ("[music]", "(laughs)") and punctuation, and maps British
spellings to American ones. This module keeps the name and signature the rest of the code uses.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable


@lru_cache(maxsize=1)
def _normalizer() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """One string -> its normalised form: lower-case words separated by single spaces."""
    if not isinstance(text, str):
        raise TypeError(f"normalize expects a str, got {type(text).__name__}")
    return " ".join(_normalizer()(text).split())
