"""Generation with a real (tiny, random-weight) Small-E: batching, streaming, CFG, sampling."""

from __future__ import annotations

import numpy as np
import pytest

from small_e_jax.sampling import GREEDY, SamplingConfig

TEXTS = ["Hello there.", "A much longer second sentence, with a comma."]


def test_batched_equals_one_by_one(synth):
    batched = synth.generate(TEXTS, sampling=GREEDY, max_frames=24)
    for text, codes in zip(TEXTS, batched):
        alone = synth.generate([text], sampling=GREEDY, max_frames=24)[0]
        np.testing.assert_array_equal(codes, alone)
        assert codes.ndim == 2 and codes.shape[1] == 4 and 1 <= len(codes) <= 24
        assert codes.min() >= 0 and codes.max() < synth.model_config.codebook_size
    # The items differ (their texts do), so batching did not mix them up.
    assert not (len(batched[0]) == len(batched[1]) and (batched[0] == batched[1]).all())


@pytest.mark.slow  # one more loop compilation (~10 s on a loaded CPU)
def test_sampling_is_seeded_per_item(synth):
    sampling = SamplingConfig(temperature=1.0, top_k=20, top_p=0.95, repetition_penalty=1.2)
    a = synth.generate(TEXTS, sampling=sampling, seed=3, max_frames=24)
    b = synth.generate(TEXTS, sampling=sampling, seed=3, max_frames=24)
    c = synth.generate(TEXTS, sampling=sampling, seed=4, max_frames=24)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(len(x) != len(z) or (x != z).any() for x, z in zip(a, c))


def test_cfg_scale_one_equals_conditional(synth):
    plain = synth.generate(TEXTS, sampling=GREEDY, max_frames=24)
    guided = synth.generate(TEXTS, sampling=SamplingConfig(greedy=True, cfg_scale=1.0, force_guidance=True),
                            max_frames=24)
    for x, y in zip(plain, guided):
        np.testing.assert_array_equal(x, y)
    other = synth.generate(TEXTS, sampling=SamplingConfig(greedy=True, cfg_scale=3.0), max_frames=24)
    assert any(len(x) != len(z) or (x != z).any() for x, z in zip(plain, other))


def test_stream_concatenates_to_one_shot(synth):
    codes = synth.generate([TEXTS[1]], sampling=GREEDY, max_frames=24)[0]
    audio = synth.decode_audio([codes])[0]
    chunks = list(synth.stream(TEXTS[1], sampling=GREEDY, max_frames=24, chunk_frames=5, context_frames=3))
    assert len(chunks) >= 3
    np.testing.assert_array_equal(np.concatenate([c.codes for c in chunks]), codes)
    np.testing.assert_allclose(np.concatenate([c.audio for c in chunks]), audio, atol=1e-6)
    assert synth.last_timing["first_audio_s"] > 0


@pytest.mark.parametrize("texts, message", [
    ([""], "empty"), (["   "], "empty"), (["snow \u2603 man"], "cannot encode"),
    (["word " * 400], "max_text_tokens"), ("a string", "list"),
])
def test_bad_text(synth, texts, message):
    with pytest.raises(ValueError, match=message):
        synth.generate(texts, sampling=GREEDY, max_frames=4)


def test_long_form_carries_the_state(synth):
    pieces = synth.generate_long("Hello there. A much longer second sentence, with a comma.",
                                 sampling=GREEDY, max_frames=24)
    assert len(pieces) == 2
    first, second = (synth.generate([t], sampling=GREEDY, max_frames=24)[0] for t in TEXTS)
    np.testing.assert_array_equal(pieces[0], first)  # the first sentence starts from zero states
    # The second starts from the first's final states, not from zero.
    assert len(pieces[1]) != len(second) or (pieces[1] != second).any()

def test_long_form_stream_matches_long_form(synth):
    """stream_long: the same codes as generate_long, sentence by sentence, and each sentence's
    chunks concatenate to its one-shot decode."""
    text = "Hello there. A much longer second sentence, with a comma."
    pieces = synth.generate_long(text, sampling=GREEDY, max_frames=24)
    chunks = list(synth.stream_long(text, sampling=GREEDY, max_frames=24, chunk_frames=5, context_frames=3))
    assert [n for n, _ in chunks] == sorted(n for n, _ in chunks) and {n for n, _ in chunks} == {0, 1}
    for n, codes in enumerate(pieces):
        mine = [c for k, c in chunks if k == n]
        np.testing.assert_array_equal(np.concatenate([c.codes for c in mine]), codes)
        np.testing.assert_allclose(np.concatenate([c.audio for c in mine]), synth.decode_audio([codes])[0],
                                   atol=1e-6)


@pytest.mark.slow  # another model to compile
def test_transformer_baseline_generates():
    from small_e_jax.inference import Synthesizer
    from tests.inference.conftest import FakeCodec, random_model, tiny_config

    config = tiny_config("model.block=transformer")
    synth = Synthesizer(random_model(config), config, codec=FakeCodec(4, 1024))
    batched = synth.generate(TEXTS, sampling=GREEDY, max_frames=10)  # KV cache sized to the steps
    np.testing.assert_array_equal(batched[0], synth.generate(TEXTS[:1], sampling=GREEDY, max_frames=10)[0])


def test_min_rows_pads_without_changing_the_codes(tiny):
    """A lone text decoded as 4 rows (the GPU default, GPU_MIN_ROWS): the same codes, greedy
    and sampled, in generate, stream and long-form; the copies never lengthen the loop."""
    from small_e_jax.decoding import NO_STOP
    from small_e_jax.delay import PAD
    from small_e_jax.inference import Synthesizer
    from tests.inference.conftest import FakeCodec

    model, config = tiny
    codec = FakeCodec(config.model.n_codebooks, config.model.codebook_size)
    one, four = (Synthesizer(model, config, codec=codec, min_rows=r) for r in (1, 4))
    sampled = SamplingConfig(temperature=1.0, top_k=20)
    for sampling in (GREEDY, sampled):
        a = one.generate([TEXTS[1]], sampling=sampling, seed=5, max_frames=24)
        b, carry = four.generate([TEXTS[1]], sampling=sampling, seed=5, max_frames=24, return_carry=True)
        assert len(b) == 1 and carry.outputs.shape[0] == 4
        np.testing.assert_array_equal(a[0], b[0])
        # the copies were finished from the start: PAD in every step the loop ran, no stop of
        # their own; the loop ran as long as the text's own row needed (its stop or the limit)
        steps = int(carry.i)
        assert (np.asarray(carry.outputs[1:, :steps]) == PAD).all()
        assert (np.asarray(carry.eoa_col[1:]) == NO_STOP).all()
        assert steps == one.last_timing["steps"]
    two = [TEXTS[0], TEXTS[1]]
    for x, y in zip(one.generate(two, sampling=GREEDY, max_frames=24),
                    four.generate(two, sampling=GREEDY, max_frames=24)):
        np.testing.assert_array_equal(x, y)
    streamed = [c.codes for c in four.stream(TEXTS[1], sampling=GREEDY, max_frames=24, chunk_frames=5)]
    np.testing.assert_array_equal(np.concatenate(streamed),
                                  one.generate([TEXTS[1]], sampling=GREEDY, max_frames=24)[0])
    long_text = "Hello there. A much longer second sentence, with a comma."
    for x, y in zip(one.generate_long(long_text, sampling=GREEDY, max_frames=24),
                    four.generate_long(long_text, sampling=GREEDY, max_frames=24)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="min_rows"):
        Synthesizer(model, config, codec=codec, min_rows=0)


def test_split_sentences_keeps_abbreviations_prices_and_times():
    from small_e_jax.inference import split_sentences

    text = "Mr. Smith paid $3.50 at 5 p.m. on Jan. 3rd. Then he left! Did he?"
    assert split_sentences(text) == ["Mr. Smith paid $3.50 at 5 p.m. on Jan. 3rd.", "Then he left!", "Did he?"]
    pieces = split_sentences("word " * 100, max_chars=50)  # one over-long sentence: cut at spaces
    assert all(len(p) <= 50 for p in pieces) and " ".join(pieces).split() == ["word"] * 100
    assert split_sentences("   ") == []
