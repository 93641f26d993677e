"""Write a small corpus in the LJSpeech layout from the bundled mini corpus: clips to try the
own-data recipe (``docs/data.md``) before arranging your own recordings the same way.

    python -m data_pipeline.example_clips --out my_voice [--clips 20]

Writes ``<out>/wavs/<id>.wav`` and ``<out>/metadata.csv`` (``id|text|normalized text``), one
speaker's first ``--clips`` utterances, and ``<out>/lines.txt``: ``--lines`` of their sentences,
one a line, for ``python -m small_e_jax.synthesize --texts-file``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import soundfile


MINI = Path(__file__).parent / "mini_corpus"


def write_example(out: Path, clips: int = 20, speaker: Optional[str] = None, lines: int = 3) -> list[str]:
    """Write ``clips`` utterances of one speaker (default: the manifest's first) as LJSpeech and
    ``lines`` of their sentences to ``lines.txt``; returns the clip ids."""
    rows = [json.loads(line) for line in (MINI / "manifest.jsonl").read_text().splitlines() if line.strip()]
    speaker = speaker or rows[0]["speaker"]
    rows = [r for r in rows if r["speaker"] == speaker][:clips]
    if len(rows) < clips:
        raise ValueError(f"speaker {speaker!r} has only {len(rows)} clips in the mini corpus")
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    ids, rows_out = [], []
    for i, row in enumerate(rows):
        audio, rate = soundfile.read(MINI / row["path"], dtype="float32")
        clip = f"clip{i:03d}"
        soundfile.write(out / "wavs" / f"{clip}.wav", audio, rate)
        ids.append(clip)
        rows_out.append(f"{clip}|{row['text']}|{row['text']}")
    (out / "metadata.csv").write_text("\n".join(rows_out) + "\n", encoding="utf-8")
    (out / "lines.txt").write_text("".join(r["text"] + "\n" for r in rows[:lines]), encoding="utf-8")
    return ids


if __name__ == "__main__":  # the command line: small_e_jax/cli/example_clips.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.example_clips", run_name="__main__")
