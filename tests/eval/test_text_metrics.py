"""Text normalisation, WER/CER and ASR-alignment skip/repeat counts on constructed cases."""

import pytest

from small_e_jax.eval.intelligibility import score_transcripts
from small_e_jax.eval.skips import count_skips_repeats, summarize
from small_e_jax.eval.text_norm import normalize
from small_e_jax.eval.wer import error_rates

SENTENCES = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
             "It's easy to tell the depth of a well.", "These days a chicken leg is a rare dish."]


# Whisper's EnglishTextNormalizer, as published WERs use it: numbers become digits, contractions
# and titles are expanded, annotations and punctuation dropped, British spellings Americanised.
@pytest.mark.parametrize("raw, expected", [
    ("Hello, World!", "hello world"),
    ("Mr. Smith didn't pay $5.50.", "mister smith did not pay $5.50"),
    ("It's twenty-five percent of 1,000 cars", "it is 25% of 1000 cars"),
    ("the third and twenty first time", "the 3rd and 21st time"),
    ("pi is three point one four", "pi is 3.14"),
    ("[Music] colour-blind (laughs) grey", "color blind gray"),
    ("  spaced\tout\n", "spaced out"),
    ("John's well-known “quote”", "john is well known quote"),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_normalize_is_idempotent_and_digits_match_words():
    for text in SENTENCES + ["Call 911 at 5pm on the 4th, it's $1.01!"]:
        assert normalize(normalize(text)) == normalize(text)
    assert normalize("I have 2 dogs") == normalize("i have two dogs.")


def test_wer_of_the_reference_is_zero():
    rates = error_rates(SENTENCES, SENTENCES)
    assert rates.wer == 0.0 and rates.cer == 0.0 and rates.reference_words == 35  # 8 + 8 + 10 ("it is") + 9
    # Punctuation and case alone are not errors after normalisation.
    assert error_rates(SENTENCES, [s.upper().replace(".", "") for s in SENTENCES]).wer == 0.0


def test_wer_counts_edits_over_reference_words():
    rates = error_rates(["the birch canoe slid"], ["the perch canoe slid away"])
    assert (rates.substitutions, rates.deletions, rates.insertions) == (1, 0, 1)
    assert rates.wer == pytest.approx(2 / 4)
    assert error_rates(["hello world"], [""]).wer == 1.0  # empty transcript: all deletions


def test_wer_rejects_bad_input():
    with pytest.raises(ValueError, match="2 references but 1"):
        error_rates(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty after normalisation"):
        error_rates(["?!"], ["a"])


def test_one_skipped_and_one_repeated_word():
    ref = "The birch canoe slid on the smooth planks."
    hyp = "the birch slid on on the smooth planks"  # "canoe" skipped, "on" said twice
    c = count_skips_repeats(ref, hyp)
    assert (c.skipped, c.repeated, c.inserted, c.substituted) == (1, 1, 0, 0)


def test_repeated_phrase_and_babble():
    c = count_skips_repeats("a b c d e f", "a b c b c d e f")
    assert (c.skipped, c.repeated, c.inserted) == (0, 2, 0)
    c = count_skips_repeats("glue the sheet", "glue the zebra sheet")  # a new word is not a repeat
    assert (c.skipped, c.repeated, c.inserted) == (0, 0, 1)
    # (not number words: Whisper's normaliser turns "one two three" into "123")
    c = count_skips_repeats("red green blue cyan pink gray gold teal", "red green blue cyan pink gray gold teal red")
    assert (c.repeated, c.inserted) == (0, 1)  # outside the window: babble, not a repeat
    assert count_skips_repeats("a b", "").skipped == 2
    assert count_skips_repeats(SENTENCES[0], SENTENCES[0]).skipped == 0


def test_summary_per_100_utterances():
    refs = SENTENCES
    hyps = [SENTENCES[0].replace("canoe ", ""), SENTENCES[1], SENTENCES[2] + " well", SENTENCES[3]]
    counts = [count_skips_repeats(r, h) for r, h in zip(refs, hyps)]
    s = summarize(counts)
    assert s["skipped_words"] == 1 and s["repeated_words"] == 1
    assert s["skipped_words_per_100"] == 25.0 and s["utterances_with_repeat_per_100"] == 25.0
    scores = score_transcripts(refs, hyps)
    assert scores["skips"] == s and scores["wer"] == pytest.approx(2 / 35)
    assert [u["skipped"] for u in scores["per_utterance"]] == [1, 0, 0, 0]


def test_alignment_keeps_most_matches_at_equal_cost():
    from small_e_jax.eval.skips import align_words
    ops = align_words("a b c d".split(), "a c c d".split())  # one substitution, nothing else
    assert [o[0] for o in ops] == ["equal", "substitute", "equal", "equal"]
    ops = align_words("x b c".split(), "b c c".split())  # 2 edits: delete x + insert c (2 matches kept)
    assert sorted(o[0] for o in ops) == ["delete", "equal", "equal", "insert"]
    assert align_words([], ["a"]) == [("insert", 0, 0)] and align_words(["a"], []) == [("delete", 0, 0)]


def test_alignment_edit_count_matches_jiwer():
    """Parity with jiwer: the tie-break never changes the number of edits (the WER numerator)."""
    import jiwer
    import numpy as np
    from small_e_jax.eval.skips import align_words
    rng = np.random.default_rng(0)
    for _ in range(200):
        ref = [str(w) for w in rng.integers(0, 4, rng.integers(1, 9))]
        hyp = [str(w) for w in rng.integers(0, 4, rng.integers(1, 9))]
        ops = align_words(ref, hyp)
        out = jiwer.process_words(" ".join(ref), " ".join(hyp))
        assert sum(o[0] != "equal" for o in ops) == out.substitutions + out.deletions + out.insertions
        assert [ref[i] for o, i, _ in ops if o != "insert"] == ref
        assert [hyp[j] for o, _, j in ops if o != "delete"] == hyp


def test_synthesizer_and_cloning_plumbing_with_stand_ins():
    """The synthesize(texts, prompt) hook, batching and the score layout, with stand-in ASR and
    speaker encoder (the real ones are in the slow tests)."""
    import numpy as np

    from small_e_jax.eval.intelligibility import evaluate_cloning, evaluate_synthesizer
    said = {}

    def synthesize(texts, prompt):
        assert prompt == "spk" and len(texts) <= 2
        out = []
        for t in texts:
            wav = np.full(100 + len(said), 0.1, np.float32)  # distinct lengths identify the texts
            said[wav.size] = t.replace("canoe ", "")  # this "model" skips "canoe"
            out.append(wav)
        return out

    class ASR:
        def transcribe(self, wavs, rate):
            assert rate == 16_000
            return [said[w.size] for w in wavs]

    class Encoder:
        def similarity(self, a, ra, b, rb):
            return 0.5 if ra == 8_000 and rb == 16_000 else -1.0

    scores, wavs = evaluate_synthesizer(synthesize, 16_000, SENTENCES, ASR(), prompt="spk", batch_size=2)
    assert len(wavs) == 4 and scores["skips"]["skipped_words"] == 1 and scores["utterances"] == 4
    said.clear()
    scores, _ = evaluate_cloning(synthesize, 16_000, SENTENCES[:3], ASR(), Encoder(), "spk", np.zeros(10), 8_000,
                                 batch_size=2)
    assert scores["similarity_mean"] == 0.5 and [u["similarity"] for u in scores["per_utterance"]] == [0.5] * 3
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_synthesizer(synthesize, 16_000, SENTENCES, ASR(), prompt="spk", batch_size=0)


def test_cloning_with_an_empty_output():
    import numpy as np

    from small_e_jax.eval.intelligibility import evaluate_cloning

    class ASR:
        def transcribe(self, wavs, rate):
            return ["" if w.size == 0 else "glue the sheet" for w in wavs]

    class Encoder:
        def similarity(self, a, ra, b, rb):
            if b.size == 0:
                raise ValueError("no speech")
            return 0.75

    scores, _ = evaluate_cloning(lambda texts, p: [np.zeros(0, np.float32), np.ones(50, np.float32)], 16_000,
                                 ["glue the sheet", "glue the sheet"], ASR(), Encoder(), None, np.ones(9), 16_000)
    assert scores["similarity_failed"] == 1 and scores["similarity_mean"] == 0.75
    assert scores["skips"]["skipped_words"] == 3 and scores["wer"] == 0.5
