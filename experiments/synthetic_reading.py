"""Can the model learn to read? PACA vs plain cross-attention on a synthetic reading task (CPU).

    python -m experiments.synthetic_reading [--steps 1500] [--arms paca,plain]
        [--workdir runs/synthetic_reading] [--config tiny] [--out R.json] [key=value ...]

The bundled speech corpus (0.9 h) is small enough to memorise: a model reproduces its training
utterances from the text's identity without ever aligning audio to text, and says nothing on
unseen text (benchmarks/RESULTS.md, seventh GPU session). This task cannot be memorised: every
example is new (``SyntheticSpec.n_train`` = 2^20 random texts, each seen about once); its
codes are a fixed function of the text token under each frame (``small_e_jax.synthetic_data``
with ``codes_follow_time=False``: frame t of an n-token text over T frames reads token ⌊t·n/T⌋,
random durations, and its codes are ``(7 * token + 31 * k) % codebook_size``). Most codes can be
had without the text (within a token the first codebook's code repeats; the other codebooks
follow from the first), so the held-out loss falls far below chance without any reading; the first code of each new token cannot: ``switch acc`` (argmax
accuracy at those frames, teacher-forced, held out) is the reading score: ~0 untrained, about
1/n for a model that picks any of the n tokens of the text, 1 for one that reads in order
and knows when each token starts. ``next token`` is the same with the "same token" code ruled
out: it asks only whether the model knows which token comes next, not when.

Per arm (same preset, data, seed and steps; ``plain`` = ``model.cross_attention=plain`` with 4
heads, as ``experiments.paca_ablation``): the held-out loss, ``switch acc``, and from the teacher-forced
attention on held-out texts of >= 4 tokens the share of frames whose argmax text position is
within one token of the true one (``aligned``; the untrained model's value is printed beside it
as the chance level), plus the skip/repeat/stall rates of
``small_e_jax.eval.attention_alignment``. Prints a table and writes JSON (``--out``, default
``WORKDIR/results.json``). Runs resume from their checkpoints; a finished arm is only evaluated.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from small_e_jax.cli import ArgumentParser, entry_point

MIN_SCORED_TOKENS = 4  # alignment is scored on held-out texts at least this long
ARMS = {"paca": (), "plain": ("model.cross_attention=plain", "model.cross_attention_heads=4")}


def true_positions(text_len: int, frames: int) -> np.ndarray:
    """The text token each query column c = 0…frames-1 must read: the one under frame c
    (``synthetic_data``: ⌊c·n/T⌋), since column c predicts frame c's first codebook."""
    c = np.arange(frames)
    return np.minimum(c * text_len // frames, text_len - 1)


def aligned_share(path: np.ndarray, text_len: int, frames: int, tolerance: int = 1) -> float:
    """Share of the first ``frames`` columns of an argmax path [L] within ``tolerance`` tokens
    of :func:`true_positions`."""
    want = true_positions(text_len, frames)
    got = np.asarray(path)[:frames]
    return float(np.mean(np.abs(got - want[:got.size]) <= tolerance))


def switch_frames(text_len: int, frames: int) -> np.ndarray:
    """Frames t >= 1 whose token differs from frame t-1's: the only first-codebook codes that
    cannot be had by copying the previous frame's (a token's codes are the same on all its
    frames), so predicting them needs the text."""
    src = true_positions(text_len, frames)
    return np.nonzero(src[1:] != src[:-1])[0] + 1


def _first_codebook_logits(trainer: Any):
    """Jitted (params, rngs, text, text_mask, audio [B, L, Q]) -> the first codebook's logits at
    each input column [B, L, V] (column c predicts column c + 1)."""
    import jax
    from flax import nnx

    graphdef = trainer.eval_graphdef

    def logits(params, rngs, text, text_mask, audio):
        return nnx.merge(graphdef, params, rngs)(text, text_mask, audio)[:, :, 0]

    return jax.jit(logits)


def evaluate_arm(trainer: Any, state: Any, source: Any) -> dict[str, Any]:
    """Held-out loss, accuracy where reading is needed, and attention alignment of one arm."""
    from small_e_jax.eval.attention_alignment import alignment_events, alignment_path, summarize_alignment
    from small_e_jax.eval.model_eval import _attention_fn, attention_maps, perplexity

    ppl = perplexity(trainer, state, source.eval_batches(), progress=False)
    fn, first_logits = _attention_fn(trainer), _first_codebook_logits(trainer)
    shares, events, hits, next_hits = [], [], [], []
    for batch in source.eval_batches():
        maps = attention_maps(trainer, state, batch, fn)
        frames = np.asarray(batch["audio_mask"]).sum(axis=1) - trainer.config.model.n_codebooks - 1
        sharded = trainer.shard_batch(batch)
        logits = np.asarray(first_logits(state.params, state.rngs, sharded["text"], sharded["text_mask"],
                                         sharded["audio"][:, :-1]))
        audio = np.asarray(batch["audio"])
        for i, n_frames in enumerate(frames):
            t = switch_frames(int(np.asarray(batch["text_mask"])[i].sum()), int(n_frames))
            # frame t's first code is column t + 1, predicted at column t (whose token is frame
            # t-1's code): the argmax, and the argmax without the "same token" code (frame t-1's
            # code again), which separates knowing the next token from knowing when it starts.
            target, row = audio[i, t + 1, 0], logits[i, t].copy()
            hits.extend(row.argmax(-1) == target)
            same = audio[i, t, 0]
            row[np.arange(len(t)), same] = -np.inf
            next_hits.extend(row.argmax(-1) == target)
        for att, n_frames in zip(maps, frames):
            text_len = att.shape[-1]
            if text_len < MIN_SCORED_TOKENS:  # any path is "aligned" over 1-3 tokens
                continue
            path = alignment_path(att)
            shares.append(aligned_share(path, text_len, int(n_frames)))
            events.append(alignment_events(path, text_len))
    if not shares:
        raise ValueError(f"no held-out text has >= {MIN_SCORED_TOKENS} tokens: raise --text-len")
    return {"heldout_loss": ppl["loss"], "heldout_accuracy_per_codebook": ppl["accuracy_per_codebook"],
            "switch_accuracy": float(np.mean(hits)) if hits else float("nan"),
            "next_token_accuracy": float(np.mean(next_hits)) if next_hits else float("nan"),
            "switch_frames": len(hits),
            "aligned": float(np.mean(shares)), "utterances": len(shares),
            "attention": summarize_alignment(events)}


def run_arm(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from small_e_jax import train
    from small_e_jax.config import load_config
    from small_e_jax.synthetic_data import SyntheticSource, SyntheticSpec

    overrides = [f"trainer.workdir={Path(args.workdir) / name}", f"trainer.steps={args.steps}",
                 "trainer.progress_bar=false", f"trainer.log_every={max(args.steps // 10, 1)}",
                 f"trainer.eval_every={max(args.steps // 3, 1)}", "trainer.eval_batches=4",
                 f"checkpoint.save_every_steps={args.steps}", "checkpoint.save_every_minutes=0",
                 "checkpoint.async_save=false", *ARMS[name], *args.overrides]
    config = load_config(args.config, overrides)
    spec = SyntheticSpec(batch_size=args.batch, text_len=args.text_len, frames=args.frames,
                         n_train=1 << 20, n_eval=args.eval_examples, seed=config.data.shuffle_seed,
                         codes_follow_time=False)
    source = SyntheticSource(config.model, spec)
    trainer = train.Trainer(config)
    untrained = evaluate_arm(trainer, trainer.init_state(), source)  # the baseline: chance alignment
    result = train.run(config, source, trainer=trainer)
    out = evaluate_arm(trainer, result.state, source)
    out["untrained"] = {k: untrained[k] for k in ("heldout_loss", "switch_accuracy", "next_token_accuracy", "aligned",
                                                  "attention")}
    out.update(arm=name, step=result.step, chance_loss=math.log(config.model.codebook_size),
               final_train_loss=result.losses.get(max(result.losses)) if result.losses else None)
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m experiments.synthetic_reading", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--arms", default="paca,plain", help=f"comma-separated, of {', '.join(ARMS)}")
    p.add_argument("--config", default="tiny", help="preset or YAML (default: tiny)")
    p.add_argument("--workdir", default="runs/synthetic_reading")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--text-len", type=int, default=12, help="longest text (tokens)")
    p.add_argument("--frames", type=int, default=48, help="longest audio (frames)")
    p.add_argument("--eval-examples", type=int, default=64)
    p.add_argument("--out", default=None, help="JSON results (default: WORKDIR/results.json)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value, applied to every arm")
    args = p.parse_args(argv)
    unknown = [a for a in args.arms.split(",") if a not in ARMS]
    if unknown or not args.arms:
        p.error(f"--arms: unknown {unknown}; choose from {', '.join(ARMS)}")
    if min(args.steps, args.batch, args.text_len, args.frames, args.eval_examples) < 1:
        p.error("--steps, --batch, --text-len, --frames and --eval-examples must be >= 1")
    return args


@entry_point
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from small_e_jax.config import ConfigError

    results = []
    for name in args.arms.split(","):
        try:
            results.append(run_arm(name, args))
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    print(f"\n{'arm':6s} {'step':>5s} {'held-out loss':>13s} {'(chance)':>8s} {'switch acc':>10s} {'next token':>10s} {'aligned':>8s} "
          f"{'skipping/100':>12s} {'repeating/100':>13s}")
    for r in results:
        for label, step, row in ((r["arm"], r["step"], r), ("(init)", 0, r["untrained"])):
            a = row["attention"]
            print(f"{label:6s} {step:5d} {row['heldout_loss']:13.3f} {r['chance_loss']:8.2f} "
                  f"{row['switch_accuracy']:10.1%} {row['next_token_accuracy']:10.1%} {row['aligned']:8.1%} "
                  f"{a['skip_utterances_per_100']:12.1f} {a['repeat_utterances_per_100']:13.1f}")
    out = Path(args.out or Path(args.workdir) / "results.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
