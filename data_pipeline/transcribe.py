"""Transcribe LibriLight VAD segments with faster-whisper (a local model folder; no download).

    python -m data_pipeline.transcribe --manual-dir /data/librilight/medium \\
        --model /models/whisper-small.en-ct2 --out transcripts.jsonl [--limit N]

Writes JSONL rows ``{"id": <segment id>, "text": ...}`` for the ``librilight_medium`` builder's
``--transcripts``. Appends and skips ids already in ``--out`` (resumable). A segment whose
transcription fails or comes back empty is written to ``<out>.failed.jsonl``, not guessed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from data_pipeline.audio_io import AudioLimits, BadInput, load_audio
from data_pipeline.segment import librilight_segments
from small_e_jax.cli import UserError

WHISPER_RATE = 16_000


def load_model(path: str, device: str = "cpu", compute_type: str = "int8"):
    """A faster-whisper model from a local CTranslate2 folder; clear errors if unavailable."""
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise ImportError("faster-whisper is not installed: pip install faster-whisper "
                          "(and give --model a local CTranslate2 Whisper folder)") from None
    if not Path(path).is_dir():
        raise UserError(f"--model {path} is not a folder holding a CTranslate2 Whisper model (model.bin)")
    return WhisperModel(path, device=device, compute_type=compute_type)


def run(args: argparse.Namespace) -> int:
    """Transcribe the segments the command line names (:mod:`small_e_jax.cli.transcribe`); resumes ``--out``."""
    model = load_model(args.model, args.device, args.compute_type)
    done = set()
    if args.out.exists():
        done = {json.loads(line)["id"] for line in args.out.read_text().splitlines() if line.strip()}
    segments = [s for s in librilight_segments(args.manual_dir, args.max_segment_seconds) if s.segment_id not in done]
    segments = segments[: args.limit]
    limits = AudioLimits(min_seconds=0.1, max_seconds=args.max_segment_seconds + 1)
    failed = Path(f"{args.out}.failed.jsonl")
    with open(args.out, "a") as out, open(failed, "a") as bad:
        for s in tqdm(segments, desc="transcribe", unit="seg"):
            try:
                audio = load_audio(s.path, WHISPER_RATE, limits, s.start, s.end)
                parts, _ = model.transcribe(audio, language="en", beam_size=1, vad_filter=False)
                text = " ".join(part.text.strip() for part in parts).strip()
                if not text:
                    raise BadInput("empty transcription")
            except BadInput as exc:
                bad.write(json.dumps({"id": s.segment_id, "path": s.path, "reason": str(exc)}) + "\n")
                continue
            out.write(json.dumps({"id": s.segment_id, "text": text}) + "\n")
            out.flush()
    print(f"transcribed {len(segments)} segments into {args.out} (failures: {failed})")
    return 0


if __name__ == "__main__":  # the command line: small_e_jax/cli/transcribe.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.transcribe", run_name="__main__")
