"""The synthetic reading corpus: sentence pool, normalisation, plan and splits, the synthesizers,
generation (resume, failure report), the ``synthetic_corpus`` builder and the transport packing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from data_pipeline import corpus_text, make_synthetic_corpus as msc
from data_pipeline.synthesizers import HELD_OUT_VOICES, VOICES, Engines, SynthesisError
from small_e_jax.cli import make_synthetic_corpus as msc_cli


@pytest.mark.parametrize("raw, spoken", [
    ("Mr. Smith paid 3 dollars on the 21st.", "Mister Smith paid three dollars on the twenty-first."),
    ("He ran (quickly) home", "He ran, quickly, home."),
    ("\u201cYes,\u201d she said \u2014 twice", "Yes, she said, twice."),
    ("Salt & pepper, 50% off", "Salt and pepper, fifty percent off."),
    ("caf\u00e9 au lait", "Cafe au lait."),
])
def test_normalize_writes_out_what_is_spoken(raw, spoken):
    assert corpus_text.normalize(raw) == spoken


@pytest.mark.parametrize("raw", ["", "   ", "x \u4e2d y", "a/b test"])
def test_normalize_refuses_what_it_cannot_write(raw):
    assert corpus_text.normalize(raw) is None


def test_collect_dedups_filters_and_counts():
    rows, dropped = corpus_text.collect({
        "wordnet": ["The dam burst.", "the dam burst", "Go.", "one two three four"],
        "kjv": ["And Aaron and Moses and Pharaoh and Egypt went down to the sea."],
    })
    assert [r["text"] for r in rows] == ["The dam burst.", "One two three four."]
    assert dropped["wordnet: duplicate"] == 1 and dropped["wordnet: fewer than 3 words"] == 1
    assert dropped["kjv: more than two proper names"] == 1


@pytest.fixture(scope="module")
def pool():
    return corpus_text.read_pool()


def test_shipped_pool_is_large_clean_and_encodable(pool):
    from small_e_jax.text import load_tokenizer

    assert len(pool) > 60_000
    assert {r["source"] for r in pool} == {"harvard", "wordnet", "kjv", "devil"}
    texts = [r["text"] for r in pool]
    assert len(set(texts)) == len(texts)
    assert all(corpus_text.ALLOWED.match(t) for t in texts)
    words = np.array([r["words"] for r in pool])
    assert words.min() >= 3 and words.max() >= 40 and (words >= 25).sum() > 5_000
    tok = load_tokenizer()
    for t in texts[::97]:  # a spread-out sample (the whole pool takes minutes in pure Python)
        tok.encode(t)


def test_plan_is_deterministic_and_holds_out_sentences_and_voices(pool):
    items = msc.plan(pool, 32.0, 2406, min_sentences=30_500)
    assert items == msc.plan(pool, 32.0, 2406, min_sentences=30_500)
    assert items != msc.plan(pool, 32.0, 7, min_sentences=30_500)
    by = {s: [i for i in items if i.split == s] for s in ("train", "validation", "heldout_voices")}
    assert len(items) >= 30_500 and len({i.text for i in items}) == len(items)
    train_texts = {i.text for i in by["train"]}
    assert not train_texts & {i.text for i in by["validation"] + by["heldout_voices"]}
    assert len(by["validation"]) >= 300
    assert sum(len(i.text.split()) >= msc.LONG_WORDS for i in by["validation"]) >= 80
    train_voices = {v.speaker for v in VOICES} - set(HELD_OUT_VOICES)
    assert {i.speaker for i in by["train"]} == train_voices
    assert {i.speaker for i in by["validation"]} == train_voices
    assert {i.speaker for i in by["heldout_voices"]} == set(HELD_OUT_VOICES)
    assert len(train_voices) >= 12 and len(HELD_OUT_VOICES) >= 2


ENGINES = Engines()
MISSING = ENGINES.missing()


@pytest.mark.parametrize("voice", VOICES, ids=lambda v: v.speaker)
def test_every_voice_speaks(voice):
    prog = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival"}[voice.engine]
    if prog in MISSING:
        pytest.skip(f"{prog} is not installed (apt-get install espeak-ng flite festival festvox-kallpc16k "
                    "festvox-kdlpc16k festvox-us-slt-hts)")
    audio, rate = ENGINES.synthesize(voice, "He had a change of heart.")
    assert rate >= 16_000 and 0.8 < len(audio) / rate < 5.0
    assert np.abs(audio).max() > 0.05


def test_festival_failure_is_a_synthesis_error(monkeypatch):
    engines = Engines(prefix="/nonexistent")
    with pytest.raises(SynthesisError):
        engines.synthesize(VOICES[0], "Hello there.")


needs_engines = pytest.mark.skipif(bool(MISSING), reason=f"synthesizers not installed: {MISSING}")


@needs_engines
def test_generation_resumes_and_reports(tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    args = ["--out", str(out), "--limit", "2", "--jobs", "2", "--no-progress-bar", "--format", "wav"]
    assert msc_cli.main(args) == 0
    rows = [json.loads(line) for line in open(out / "manifest.jsonl")]
    assert {r["split"] for r in rows} == {"train", "validation", "heldout_voices"} and len(rows) == 6
    for r in rows:
        assert (out / r["path"]).is_file() and r["duration"] > 0.5 and r["text"]
    readme = (out / "README.md").read_text()
    assert "WordNet" in readme and "public domain" in readme and "flite_awb" in readme
    # A rerun makes nothing again; a lost file is made again.
    first = rows[0]
    stamp = (out / rows[1]["path"]).stat().st_mtime_ns
    (out / first["path"]).unlink()
    stray = out / f"{first['path']}.tmp123"  # what a killed run leaves
    stray.write_bytes(b"half")
    assert msc_cli.main(args) == 0
    assert not stray.exists()
    assert (out / first["path"]).is_file() and (out / rows[1]["path"]).stat().st_mtime_ns == stamp
    # Other settings in the same folder are refused.
    assert msc_cli.main(args + ["--seed", "5"]) == 2


@needs_engines
def test_max_minutes_leaves_held_out_splits_first_and_completes_on_rerun(tmp_path, capsys):
    out = tmp_path / "corpus"
    args = ["--out", str(out), "--limit", "3", "--jobs", "1", "--no-progress-bar", "--format", "wav"]
    assert msc_cli.main(args + ["--max-minutes", "0"]) == 0  # stops after the first finished item
    rows = [json.loads(line) for line in open(out / "manifest.jsonl")]
    assert 1 <= len(rows) < 9 and all(r["split"] != "train" for r in rows)
    assert "Partial corpus" in (out / "README.md").read_text() and "the same command again" in capsys.readouterr().out
    assert msc_cli.main(args) == 0
    rows = [json.loads(line) for line in open(out / "manifest.jsonl")]
    assert len(rows) == 9 and "Partial corpus" not in (out / "README.md").read_text()


@needs_engines
@pytest.mark.parametrize("minutes", ["-1", "nan", "inf"])
def test_max_minutes_must_be_a_non_negative_number(tmp_path, capsys, minutes):
    assert msc_cli.main(["--out", str(tmp_path / "c"), "--max-minutes", minutes]) == 2
    assert "error: --max-minutes must be a number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # refused before anything is written


def test_a_failed_item_is_reported_not_raised(tmp_path, monkeypatch):
    msc._init_worker(None, str(tmp_path), 16_000, "wav")
    monkeypatch.setattr(msc._ENGINES, "synthesize", lambda v, t: (_ for _ in ()).throw(SynthesisError("boom")))
    item = msc.Item("tr000000", "Hello.", "wordnet", VOICES[0].speaker, "train")
    assert msc.make_item(item) == (item, None, "boom")
    monkeypatch.setattr(msc._ENGINES, "synthesize", lambda v, t: (np.zeros(800, np.float32) + 0.1, 16_000))
    _, secs, reason = msc.make_item(item)
    assert secs is None and reason.startswith("duration")


def test_missing_engines_end_with_one_line(tmp_path, capsys):
    assert msc_cli.main(["--out", str(tmp_path / "c"), "--engines-prefix", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: synthesizers not found")


@pytest.fixture(scope="module")
def synthetic_build(tmp_path_factory):
    """A 3-split corpus of generated tones in the synthetic corpus layout, built with a tiny codec."""
    import soundfile as sf

    from data_pipeline.build import make_builder
    from small_e_jax.codec import DACCodec, DACConfig

    root = tmp_path_factory.mktemp("synth")
    corpus = root / "corpus"
    (corpus / "audio").mkdir(parents=True)
    rows = []
    for i, split in enumerate(["train"] * 5 + ["validation"] * 2 + ["heldout_voices"] * 2):
        path = f"audio/{split}_{i}.wav"
        t = np.arange(int((1.0 + 0.1 * i) * 24_000)) / 24_000
        sf.write(corpus / path, (0.3 * np.sin(2 * np.pi * (200 + 30 * i) * t)).astype(np.float32), 24_000)
        rows.append({"id": f"u{i}", "path": path, "text": f"number {i} is here.", "speaker": f"v{i % 3}",
                     "split": split, "duration": float(t[-1]), "source": "wordnet"})
    (corpus / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    codec = DACCodec.random_init(DACConfig(encoder_dim=4, decoder_dim=16, n_codebooks=4, n_q=4))
    builder = make_builder("synthetic_corpus", data_dir=str(root / "tfds"), manual_dir=str(corpus), codec="tiny",
                           codec_obj=codec)
    builder.download_and_prepare()
    return builder, root


def test_builder_keeps_the_three_splits(synthetic_build):
    builder, _ = synthetic_build
    src = builder.as_data_source()
    assert {k: len(v) for k, v in src.items()} == {"train": 5, "validation": 2, "heldout_voices": 2}


def test_builder_needs_the_corpus_folder(tmp_path):
    from small_e_jax.cli.build_data import main

    assert main(["--dataset", "synthetic_corpus", "--data_dir", str(tmp_path)]) == 2


@pytest.mark.parametrize("bits", [1, 3, 10, 11, 15])
def test_bit_packing_round_trips(bits):
    from data_pipeline.transport import pack_bits, unpack_bits

    rng = np.random.default_rng(bits)
    v = rng.integers(0, 1 << bits, size=1001)
    packed = pack_bits(v, bits)
    assert packed.size == -(-v.size * bits // 8)
    np.testing.assert_array_equal(unpack_bits(packed, bits, v.size), v)
    with pytest.raises(ValueError):
        pack_bits(np.array([1 << bits]), bits)


def test_transport_unpacks_the_same_records(synthetic_build, tmp_path):
    from data_pipeline.builders import BUILDERS
    from small_e_jax.cli.transport import main

    builder, root = synthetic_build
    packed = tmp_path / "x.npz"
    assert main(["pack", "--dataset", "synthetic_corpus", "--codec", "tiny", "--data_dir", str(root / "tfds"),
                 "--out", str(packed)]) == 0
    assert main(["unpack", str(packed), "--data_dir", str(tmp_path / "d2")]) == 0
    assert main(["unpack", str(packed), "--data_dir", str(tmp_path / "d2")]) == 2  # never over a dataset
    a = builder.as_data_source()
    b = BUILDERS["synthetic_corpus"](codec="tiny", n_q=4, data_dir=str(tmp_path / "d2")).as_data_source()
    for split in a:
        assert len(a[split]) == len(b[split])
        for i in range(len(a[split])):
            x, y = a[split][i], b[split][i]
            assert x.keys() == y.keys()
            for k in x:
                assert np.array_equal(x[k], y[k]) if isinstance(x[k], np.ndarray) else x[k] == y[k]
    shutil.rmtree(tmp_path / "d2")


def test_trim_and_normalize_cuts_silence_and_sets_the_peak():
    from data_pipeline.audio_io import trim_and_normalize

    rate = 16_000
    tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
    audio = np.concatenate([np.zeros(rate, np.float32), tone, np.zeros(2 * rate, np.float32)])
    out = trim_and_normalize(audio, rate, pad_s=0.1)
    assert abs(len(out) - (rate + 2 * 1_600)) <= 2  # the tone and 0.1 s on each side
    assert np.isclose(np.abs(out).max(), 0.9, atol=1e-3)
