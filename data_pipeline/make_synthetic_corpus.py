"""Synthesize the reading corpus: ~30 h of many sentences read by 17 offline synthetic voices.

    python -m data_pipeline.make_synthetic_corpus --hours 32 --out DIR [--jobs N] [--seed 2406]
    python -m data_pipeline.make_synthetic_corpus --out DIR --engines-prefix P   # engines unpacked in P

Text: the sentence pool shipped in ``data_pipeline/synthetic_corpus/sentences.jsonl.gz``
(:mod:`data_pipeline.corpus_text`: Harvard sentences, WordNet usage examples, King James Bible
verses, *The Devil's Dictionary*; normalised so that the text is what is said). Voices:
:data:`data_pipeline.synthesizers.VOICES` (espeak-ng, flite, Festival).

Splits (deterministic from ``--seed``):

* ``train`` — one reading of each training sentence, by a training voice;
* ``validation`` — held-out sentences (never in ``train``), each read by a training voice, every
  training voice used: the test of reading unseen text;
* ``heldout_voices`` — held-out sentences read by the voices that never appear in ``train``
  (:data:`~data_pipeline.synthesizers.HELD_OUT_VOICES`): prompts and references for voice cloning.

Output (``DIR``): ``audio/<speaker>/<id>.<ext>`` (mono, ``--sample-rate``; Ogg Opus by default,
``--format wav`` for a machine that tokenizes right away), ``manifest.jsonl`` (``path``, ``text``,
``speaker``, ``split``, ``duration``, ``source``, ``id``: the layout of ``data_pipeline.build
--dataset synthetic_corpus`` and of the codec trainer's ``--corpus-dir``), ``failures.jsonl`` (every
utterance that did not synthesize, with the reason) and ``README.md`` (sources, licences, voices,
counts). Re-running the same command resumes: finished files are kept, the rest are made.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf
from tqdm import tqdm

from data_pipeline.audio_io import trim_and_normalize
from data_pipeline.corpus_text import read_pool
from data_pipeline.synthesizers import HELD_OUT_VOICES, VOICE_BY_SPEAKER, VOICES, Engines, SynthesisError

SOURCE_WEIGHTS = {"wordnet": 0.78, "kjv": 0.16, "devil": 0.04, "harvard": 0.02}
SECONDS_PER_WORD, SECONDS_PER_SENTENCE = 0.30, 0.37  # planning estimate (measured over 400 utterances); the README has the real hours
MIN_SECONDS, MAX_SECONDS = 0.5, 30.0
LONG_WORDS = 25  # "long" sentences: where skipping and repeating words are measured


@dataclass(frozen=True)
class Item:
    """One utterance to make: a sentence read by a voice (its file is ``audio/<speaker>/<id>.<ext>``)."""

    id: str
    text: str
    source: str
    speaker: str
    split: str


def plan(pool: list[dict], hours: float, seed: int, n_validation: int = 400, n_per_heldout_voice: int = 60,
         min_long_validation: int = 80, min_sentences: int = 0) -> list[Item]:
    """Sentences drawn from the pool by source weight until the estimated audio reaches ``hours``
    and there are at least ``min_sentences`` (distinct) sentences in all.

    Held-out sentences are chosen first (``min_long_validation`` of them with >= 25 words), so the
    training split never holds them; training voices are assigned round-robin over a shuffle.
    """
    rng = np.random.default_rng(seed)
    by_source = {s: [r for r in pool if r["source"] == s] for s in SOURCE_WEIGHTS}
    for rows in by_source.values():
        rng.shuffle(rows)
    cursor = dict.fromkeys(by_source, 0)

    def draw(source: str) -> Optional[dict]:
        rows = by_source[source]
        if cursor[source] >= len(rows):
            return None
        cursor[source] += 1
        return rows[cursor[source] - 1]

    def draw_weighted() -> Optional[dict]:
        names = [s for s in SOURCE_WEIGHTS if cursor[s] < len(by_source[s])]
        if not names:
            return None
        w = np.array([SOURCE_WEIGHTS[s] for s in names])
        return draw(names[int(rng.choice(len(names), p=w / w.sum()))])

    held: list[dict] = []
    long_rows = [r for s in ("kjv", "devil") for r in by_source[s] if r["words"] >= LONG_WORDS]
    rng.shuffle(long_rows)
    taken = {id(r) for r in long_rows[:min_long_validation]}
    held.extend(long_rows[:min_long_validation])
    for s in by_source:  # remove them from the pools
        by_source[s] = [r for r in by_source[s] if id(r) not in taken]
    while len(held) < n_validation:
        row = draw_weighted()
        if row is None:
            break
        held.append(row)
    heldout_voice_rows = []
    n_hv = n_per_heldout_voice * len(HELD_OUT_VOICES)
    while len(heldout_voice_rows) < n_hv:
        row = draw_weighted()
        if row is None:
            break
        heldout_voice_rows.append(row)

    train_voices = [v.speaker for v in VOICES if v.speaker not in HELD_OUT_VOICES]
    items: list[Item] = []
    for i, row in enumerate(held):
        items.append(Item(f"val{i:05d}", row["text"], row["source"], train_voices[i % len(train_voices)], "validation"))
    for i, row in enumerate(heldout_voice_rows):
        items.append(Item(f"hv{i:05d}", row["text"], row["source"], HELD_OUT_VOICES[i % len(HELD_OUT_VOICES)],
                          "heldout_voices"))
    budget = hours * 3600.0 - sum(SECONDS_PER_SENTENCE + SECONDS_PER_WORD * r["words"] for r in held + heldout_voice_rows)
    order = rng.permutation(len(train_voices))
    n = 0
    while budget > 0 or len(items) < min_sentences:
        row = draw_weighted()
        if row is None:
            break
        items.append(Item(f"tr{n:06d}", row["text"], row["source"], train_voices[order[n % len(order)]], "train"))
        budget -= SECONDS_PER_SENTENCE + SECONDS_PER_WORD * row["words"]
        n += 1
        if n % len(order) == 0:
            order = rng.permutation(len(train_voices))
    return items


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return audio
    import soxr

    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32)


_ENGINES: Optional[Engines] = None
_SETTINGS: dict = {}


def _init_worker(prefix: Optional[str], out: str, sample_rate: int, fmt: str) -> None:
    global _ENGINES, _SETTINGS
    _ENGINES = Engines(prefix)
    _SETTINGS = {"out": Path(out), "rate": sample_rate, "fmt": fmt}


def audio_path(item: Item, fmt: str) -> str:
    return f"audio/{item.speaker}/{item.id}.{'ogg' if fmt == 'opus' else fmt}"


def make_item(item: Item) -> tuple[Item, Optional[float], Optional[str]]:
    """Synthesize one item into its file; returns (item, seconds, None) or (item, None, reason)."""
    assert _ENGINES is not None
    out, rate, fmt = _SETTINGS["out"], _SETTINGS["rate"], _SETTINGS["fmt"]
    try:
        audio, native = _ENGINES.synthesize(VOICE_BY_SPEAKER[item.speaker], item.text)
    except SynthesisError as exc:
        return item, None, str(exc)
    audio = resample(trim_and_normalize(audio, native), native, rate)
    seconds = len(audio) / rate
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        return item, None, f"duration {seconds:.2f} s outside {MIN_SECONDS}-{MAX_SECONDS} s"
    path = out / audio_path(item, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    kwargs = dict(format="OGG", subtype="OPUS") if fmt == "opus" else dict(format=fmt.upper(), subtype="PCM_16")
    sf.write(tmp, np.clip(audio, -1, 1), rate, **kwargs)
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written file under the final name
    return item, seconds, None


def existing_seconds(out: Path, item: Item, fmt: str) -> Optional[float]:
    path = out / audio_path(item, fmt)
    if not path.exists():
        return None
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate
    except Exception:
        path.unlink()  # unreadable leftover: made again
        return None


def write_readme(out: Path, rows: list[dict], failures: list[dict], args: argparse.Namespace) -> None:
    by_split = Counter(r["split"] for r in rows)
    hours = {s: sum(r["duration"] for r in rows if r["split"] == s) / 3600 for s in by_split}
    by_voice = Counter(r["speaker"] for r in rows)
    by_source = Counter(r["source"] for r in rows)
    words = np.array([len(r["text"].split()) for r in rows]) if rows else np.zeros(1)
    lines = [
        "# Synthetic reading corpus",
        "",
        f"Made by `python -m data_pipeline.make_synthetic_corpus --hours {args.hours:g} --min-sentences "
        f"{args.min_sentences} --seed {args.seed}` "
        f"({len(rows)} utterances, {sum(hours.values()):.2f} h, {len(set(r['text'] for r in rows))} distinct "
        f"sentences, {len(by_voice)} voices; {len(failures)} failed to synthesize, listed in `failures.jsonl`).",
        "",
        "| split | utterances | hours |", "|---|---|---|",
        *[f"| {s} | {by_split[s]} | {hours[s]:.2f} |" for s in sorted(by_split)],
        "",
        f"Words per sentence: min {int(words.min())}, median {int(np.median(words))}, max {int(words.max())}; "
        f"{int((words >= LONG_WORDS).sum())} sentences of >= {LONG_WORDS} words "
        f"({sum(1 for r in rows if r['split'] == 'validation' and len(r['text'].split()) >= LONG_WORDS)} "
        "of them held out).",
        "",
        "## Text sources and licences",
        "",
        "| source | sentences | licence |", "|---|---|---|",
        f"| Harvard sentences (IEEE 1969) | {by_source['harvard']} | public domain |",
        f"| Princeton WordNet 3.0 usage examples (Debian `wordnet-base`) | {by_source['wordnet']} | WordNet 3.0 "
        "licence (permissive; copyright 2006 Princeton University, notice kept) |",
        f"| King James Bible verses (Debian `bible-kjv-text`) | {by_source['kjv']} | public domain (Crown patent "
        "in the United Kingdom) |",
        f"| Ambrose Bierce, *The Devil's Dictionary* (1911; Debian `dict-devil`) | {by_source['devil']} | "
        "public domain |",
        "",
        "The audio is made by free software: espeak-ng (GPL-3.0+), flite and its CMU voices (BSD-style), "
        "the Festival Speech Synthesis System (X11-style) with the kal and ked diphone voices and the "
        "CMU ARCTIC slt HTS voice (BSD-style). Synthesizer output carries no further restriction.",
        "",
        "## Voices",
        "",
        "| speaker | engine | voice | rate | pitch | utterances | held out |", "|---|---|---|---|---|---|---|",
        *[f"| {v.speaker} | {v.engine} | {v.name} | {v.rate:g} | {v.pitch:g} | {by_voice[v.speaker]} | "
          f"{'yes' if v.speaker in HELD_OUT_VOICES else ''} |" for v in VOICES],
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def run(args: argparse.Namespace) -> int:
    """Synthesize (or resume) the corpus the command line describes (:mod:`small_e_jax.cli.make_synthetic_corpus`)."""
    engines = Engines(args.engines_prefix)
    missing = engines.missing()
    if missing:
        print(f"error: synthesizers not found: {', '.join(missing)} (apt-get install espeak-ng flite festival "
              "festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts, or --engines-prefix)", file=sys.stderr)
        return 2
    if args.hours <= 0 or not math.isfinite(args.hours):
        print(f"error: --hours must be a positive number, got {args.hours}", file=sys.stderr)
        return 2
    if args.max_minutes is not None and not (math.isfinite(args.max_minutes) and args.max_minutes >= 0):
        print(f"error: --max-minutes must be a number >= 0, got {args.max_minutes}", file=sys.stderr)
        return 2
    try:
        pool = read_pool(args.sentences)
    except OSError as exc:
        print(f"error: cannot read the sentence pool {args.sentences}: {exc}", file=sys.stderr)
        return 2
    items = plan(pool, args.hours, args.seed, min_sentences=args.min_sentences)
    wanted = set(args.splits.split(","))
    items = [it for it in items if it.split in wanted]
    if args.limit is not None:
        per: Counter = Counter()
        kept = []
        for it in items:
            if per[it.split] < args.limit:
                kept.append(it)
                per[it.split] += 1
        items = kept
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"hours": args.hours, "min_sentences": args.min_sentences, "seed": args.seed, "sample_rate": args.sample_rate, "format": args.format}
    settings_path = args.out / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        print(f"error: {args.out} was made with other settings ({settings_path.read_text().strip()}); "
              "use another --out", file=sys.stderr)
        return 2
    settings_path.write_text(json.dumps(settings) + "\n")

    for stray in (args.out / "audio").glob("*/*.tmp*"):  # half-written by a killed run
        stray.unlink()
    seconds: dict[str, float] = {}
    todo = []
    for it in items:
        s = existing_seconds(args.out, it, args.format)
        if s is None:
            todo.append(it)
        else:
            seconds[it.id] = s
    if seconds:
        print(f"resuming: {len(seconds)} of {len(items)} utterances already made", flush=True)
    # Held-out splits first, then training items in a seeded random order: a run stopped by
    # --max-minutes leaves complete evaluation splits and a uniform sample of the training split.
    order = np.random.default_rng([args.seed, 1]).permutation(len(todo))
    todo = sorted((todo[i] for i in order), key=lambda it: it.split == "train")
    deadline = None if args.max_minutes is None else time.time() + 60 * args.max_minutes
    stopped = False
    failures: list[dict] = []
    start = time.time()
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(args.jobs, _init_worker, (args.engines_prefix, str(args.out), args.sample_rate, args.format)) as pool_:
        bar = tqdm(total=len(todo), desc="synthesize", unit="utt", disable=args.no_progress_bar, mininterval=2)
        made = 0.0
        for item, secs, reason in pool_.imap_unordered(make_item, todo, chunksize=8):
            if secs is None:
                failures.append({"id": item.id, "speaker": item.speaker, "text": item.text, "reason": reason})
            else:
                seconds[item.id] = secs
                made += secs
            bar.update(1)
            bar.set_postfix(hours=f"{made / 3600:.2f}", failed=len(failures), refresh=False)
            if deadline is not None and time.time() > deadline:
                stopped = True  # leaving the block terminates the workers; half-written files are .tmp
                break
        bar.close()
    rows = [{"id": it.id, "path": audio_path(it, args.format), "text": it.text, "speaker": it.speaker,
             "split": it.split, "duration": round(seconds[it.id], 3), "source": it.source}
            for it in items if it.id in seconds]
    with open(args.out / "manifest.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(args.out / "failures.jsonl", "w") as f:
        for r in failures:
            f.write(json.dumps(r) + "\n")
    write_readme(args.out, rows, failures, args)
    if stopped:
        with open(args.out / "README.md", "a") as f:
            f.write(f"\n**Partial corpus**: stopped by `--max-minutes {args.max_minutes:g}` with {len(rows)} of the "
                    f"{len(items)} planned utterances (every held-out one first, then a random part of the "
                    "training split). The same command again completes it.\n")
    hours = sum(r["duration"] for r in rows) / 3600
    print(f"{len(rows)} utterances, {hours:.2f} h ({len(failures)} failed: {args.out / 'failures.jsonl'}) "
          f"in {time.time() - start:.0f} s -> {args.out}", flush=True)
    if stopped:
        print(f"stopped after --max-minutes {args.max_minutes:g}: {len(rows)} of {len(items)} planned utterances "
              "are in the manifest; the same command again completes the corpus", flush=True)
    return 0


if __name__ == "__main__":  # the command line: small_e_jax/cli/make_synthetic_corpus.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.make_synthetic_corpus", run_name="__main__")
