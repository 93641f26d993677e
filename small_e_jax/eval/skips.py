"""Skipped and repeated words from a word alignment of the ASR transcript against the input text.

Alignment: a minimum-edit-distance word alignment of the *normalised* texts (the same edit cost
as jiwer's WER) that, among the alignments of least cost, keeps the most matched words. The
tie-break matters: "the birch slid on on the" against "the birch canoe slid on the" costs two
edits either as two substitutions or as one deletion plus one insertion; the second keeps one
more word matched and is what happened (plain Levenshtein back-traces may pick the first).
Then, per utterance:

* **skipped** = reference words the alignment deletes (the model never said them);
* **repeated** = inserted transcript words that re-say nearby input: an inserted word counts as
  a repeat when it equals a reference word within ``window`` words of the point where it was
  inserted (TTS repeats re-read text around the current position; the default window of 3
  covers a repeated phrase of up to 3 words). Other insertions count as ``inserted`` (babble);
* **substituted** words are reported apart (mostly ASR errors, not TTS alignment failures).

A transcript with exactly one word left out and one word said twice gives ``skipped == 1`` and
``repeated == 1``. Corpus figures are reported per 100 utterances, as in the paper (Small-E
Table 3: skips/repeats per 100 sentences), both as word counts and as the number of utterances
with at least one skip/repeat.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

from small_e_jax.eval.text_norm import normalize


@dataclasses.dataclass
class SkipRepeat:
    """Counts for one utterance (words of the normalised texts)."""

    skipped: int
    repeated: int
    inserted: int
    substituted: int
    reference_words: int


def count_skips_repeats(reference: str, hypothesis: str, *, window: int = 3,
                        normalizer: Optional[Callable[[str], str]] = normalize) -> SkipRepeat:
    """Skip/repeat counts of one transcript (see module doc). ``window`` >= 1 (words)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    norm = normalizer or (lambda s: s)
    ref, hyp = norm(reference), norm(hypothesis)
    ref_words, hyp_words = ref.split(), hyp.split()
    if not ref_words:
        raise ValueError(f"reference {reference!r} is empty after normalisation")
    if not hyp_words:
        return SkipRepeat(len(ref_words), 0, 0, 0, len(ref_words))
    skipped = repeated = inserted = substituted = 0
    for op, i, j in align_words(ref_words, hyp_words):
        if op == "delete":
            skipped += 1
        elif op == "substitute":
            substituted += 1
        elif op == "insert":
            # Inserted between reference words i - 1 and i.
            if hyp_words[j] in ref_words[max(0, i - window): i + window]:
                repeated += 1
            else:
                inserted += 1
    return SkipRepeat(skipped, repeated, inserted, substituted, len(ref_words))


def align_words(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[str, int, int]]:
    """Word alignment: ``[(op, ref_index, hyp_index)]`` with op in equal/substitute/delete/insert.

    Least edits (unit costs), ties broken by most ``equal`` pairs (see module doc). For an
    insert, ``ref_index`` is the reference position it precedes; for a delete, ``hyp_index``
    is the hypothesis position it precedes. O(len(ref) * len(hyp)).
    """
    n, m = len(ref), len(hyp)
    # cost[i][j] = (edits, -matches) of aligning ref[:i] with hyp[:j]; tuples compare lexicographically.
    cost = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = (i, 0)
    for j in range(1, m + 1):
        cost[0][j] = (j, 0)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            e, h = cost[i - 1][j - 1]
            diag = (e, h - 1) if ref[i - 1] == hyp[j - 1] else (e + 1, h)
            up, left = cost[i - 1][j], cost[i][j - 1]
            cost[i][j] = min(diag, (up[0] + 1, up[1]), (left[0] + 1, left[1]))
    ops = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            e, h = cost[i - 1][j - 1]
            same = ref[i - 1] == hyp[j - 1]
            if cost[i][j] == ((e, h - 1) if same else (e + 1, h)):
                ops.append(("equal" if same else "substitute", i - 1, j - 1))
                i, j = i - 1, j - 1
                continue
        if i > 0 and cost[i][j] == (cost[i - 1][j][0] + 1, cost[i - 1][j][1]):
            ops.append(("delete", i - 1, j))
            i -= 1
        else:
            ops.append(("insert", i, j - 1))
            j -= 1
    return ops[::-1]


def summarize(counts: Sequence[SkipRepeat]) -> dict[str, float]:
    """Corpus totals and rates per 100 utterances (word counts and utterances affected)."""
    n = len(counts)
    if n == 0:
        raise ValueError("no utterances to summarize")
    total = lambda field: sum(getattr(c, field) for c in counts)
    per100 = 100.0 / n
    return {
        "utterances": n,
        "skipped_words": total("skipped"),
        "repeated_words": total("repeated"),
        "inserted_words": total("inserted"),
        "substituted_words": total("substituted"),
        "skipped_words_per_100": total("skipped") * per100,
        "repeated_words_per_100": total("repeated") * per100,
        "utterances_with_skip_per_100": sum(c.skipped > 0 for c in counts) * per100,
        "utterances_with_repeat_per_100": sum(c.repeated > 0 for c in counts) * per100,
    }
