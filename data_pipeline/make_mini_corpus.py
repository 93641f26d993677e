"""Synthesize the bundled mini corpus: Harvard sentences read by espeak-ng and Festival voices.

    python -m data_pipeline.make_mini_corpus [--out data_pipeline/mini_corpus] [--voices-per-sentence 2]

Needs (Debian): ``apt-get install espeak-ng festival festvox-kallpc16k festvox-kdlpc16k
festvox-us-slt-hts``. Writes ``audio/<speaker>/<id>.ogg`` (Ogg Opus ~24 kbit/s, mono, 16 kHz) and
``manifest.jsonl`` (one JSON object a line: path (relative to the corpus folder), text, speaker,
split, duration in seconds). The split is by sentence: every reading of a validation sentence is
in ``validation``. Deterministic: same sentence → voice assignment and split for the same seed,
and the synthesizers are deterministic (Ogg stream serial numbers differ between runs, the audio
does not).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from data_pipeline.audio_io import trim_and_normalize

CORPUS_DIR = Path(__file__).parent / "mini_corpus"
SAMPLE_RATE = 16_000  # Festival diphone voices are 16 kHz; higher rates would only add bytes
MIN_SECONDS, MAX_SECONDS = 1.0, 8.0


@dataclass(frozen=True)
class Voice:
    """A speaker: ``engine`` is 'espeak' (``name`` = ``-v`` argument) or 'festival' (voice command)."""

    speaker: str
    engine: str
    name: str
    speed: int = 165  # espeak words per minute (varied a little per speaker)


VOICES: tuple[Voice, ...] = (
    Voice("espeak_en_us", "espeak", "en-us", 160),
    Voice("espeak_en_gb", "espeak", "en-gb", 165),
    Voice("espeak_en_us_m3", "espeak", "en-us+m3", 155),
    Voice("espeak_en_us_f3", "espeak", "en-us+f3", 170),
    Voice("espeak_en_gb_f4", "espeak", "en-gb+f4", 160),
    Voice("espeak_en_scotland_m1", "espeak", "en-gb-scotland+m1", 165),
    Voice("espeak_en_rp_f2", "espeak", "en-gb-x-rp+f2", 150),
    Voice("festival_kal", "festival", "voice_kal_diphone"),
    Voice("festival_ked", "festival", "voice_ked_diphone"),  # package festvox-kdlpc16k
    Voice("festival_slt", "festival", "voice_cmu_us_slt_arctic_hts"),
)


def read_sentences(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def synthesize(voice: Voice, text: str, tmpdir: str) -> tuple[np.ndarray, int]:
    """Run the synthesizer; returns (mono float32 waveform [S], its sample rate)."""
    wav = os.path.join(tmpdir, "out.wav")
    if voice.engine == "espeak":
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(voice.speed), "-w", wav, text]
    else:
        txt = os.path.join(tmpdir, "in.txt")
        Path(txt).write_text(text + "\n")
        cmd = ["text2wave", "-eval", f"({voice.name})", txt, "-o", wav]
    subprocess.run(cmd, check=True, capture_output=True)
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    return audio.mean(axis=1), rate


def plan(sentences: list[str], voices_per_sentence: int, validation_fraction: float, seed: int):
    """Deterministic (sentence index, voice, split) triples; the split is drawn per sentence."""
    rng = np.random.default_rng(seed)
    n_val = max(1, round(validation_fraction * len(sentences)))
    val = set(rng.permutation(len(sentences))[:n_val].tolist())
    items = []
    for i in range(len(sentences)):
        for v in rng.choice(len(VOICES), size=voices_per_sentence, replace=False):
            items.append((i, VOICES[int(v)], "validation" if i in val else "train"))
    return items


def make_item(out: Path, sentences: list[str], item) -> dict | None:
    i, voice, split = item
    rel = f"audio/{voice.speaker}/h{i:03d}_{voice.speaker}.ogg"
    with tempfile.TemporaryDirectory() as tmp:
        audio, rate = synthesize(voice, sentences[i], tmp)
    audio = trim_and_normalize(audio, rate)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    duration = len(audio) / SAMPLE_RATE
    if not MIN_SECONDS <= duration <= MAX_SECONDS:
        return None
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    # Opus at ~24 kbit/s: small headers (Vorbis spends ~4 kB per file on them), clean 16 kHz speech.
    sf.write(out / rel, np.clip(audio, -1, 1), SAMPLE_RATE, format="OGG", subtype="OPUS",
             compression_level=0.94)
    return {"path": rel, "text": sentences[i], "speaker": voice.speaker, "split": split,
            "duration": round(duration, 3)}


def run(args: argparse.Namespace) -> None:
    """Synthesize the corpus the command line describes (:mod:`small_e_jax.cli.make_mini_corpus`)."""
    for tool in ("espeak-ng", "text2wave"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install espeak-ng festival festvox-kallpc16k "
                             "festvox-kdlpc16k festvox-us-slt-hts")
    sentences = read_sentences(args.sentences)[: args.limit]
    items = plan(sentences, args.voices_per_sentence, args.validation_fraction, args.seed)
    shutil.rmtree(args.out / "audio", ignore_errors=True)
    with ThreadPoolExecutor(args.jobs) as pool:  # the work is in the synthesizer subprocesses
        rows = list(tqdm(pool.map(lambda it: make_item(args.out, sentences, it), items),
                         total=len(items), desc="synthesize"))
    kept = [r for r in rows if r is not None]
    with open(args.out / "manifest.jsonl", "w") as f:
        for r in kept:
            f.write(json.dumps(r) + "\n")
    hours = sum(r["duration"] for r in kept) / 3600
    print(f"{len(kept)} utterances ({len(rows) - len(kept)} outside {MIN_SECONDS}-{MAX_SECONDS} s dropped), "
          f"{hours * 60:.1f} min, {sum(r['split'] == 'validation' for r in kept)} validation")


if __name__ == "__main__":  # the command line: small_e_jax/cli/make_mini_corpus.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.make_mini_corpus", run_name="__main__")
