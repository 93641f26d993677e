"""Write a small corpus in the LJSpeech layout from the bundled mini corpus: clips to try the
own-data recipe (``docs/data.md``) before arranging your own recordings the same way.

    python -m data_pipeline.example_clips --out my_voice [--clips 20]

Writes ``<out>/wavs/<id>.wav`` and ``<out>/metadata.csv`` (``id|text|normalized text``), one
speaker's first ``--clips`` utterances, and ``<out>/lines.txt``: ``--lines`` of their sentences,
one a line, for ``python -m small_e_jax.synthesize --texts-file``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import soundfile

from small_e_jax.cli import ArgumentParser, entry_point

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


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(prog="python -m data_pipeline.example_clips", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="folder to write (LJSpeech layout)")
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--lines", type=int, default=3, help="sentences written to lines.txt")
    p.add_argument("--speaker", default=None, help="a mini-corpus speaker (default: the first)")
    args = p.parse_args(argv)
    try:
        ids = write_example(args.out, args.clips, args.speaker, args.lines)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(ids)} clips to {args.out}/wavs and {args.out}/metadata.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
