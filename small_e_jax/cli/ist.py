"""``python -m small_e_jax.ist``: initial-state tuning, a voice's initial recurrent states learnt from a
few clips (docs/inference.md; the method: docs/model.md §7). The library and the ``--help``
text: :mod:`small_e_jax.ist`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from small_e_jax import ist
from small_e_jax.cli import ArgumentParser, entry_point, error


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m small_e_jax.ist", description=ist.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a run's workdir, its checkpoints folder or one step's folder")
    p.add_argument("--clips", type=Path, required=True, help="folder of name.wav + name.txt")
    p.add_argument("--out", type=Path, required=True, help="output .npz")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rank", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--codec-weights", default=None)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from small_e_jax.checkpoint import CheckpointError
    from small_e_jax.inference import Synthesizer

    try:
        synth = Synthesizer.from_checkpoint(args.checkpoint, codec_weights=args.codec_weights)
        clips = ist.read_clips(args.clips, synth)
        J = max(len(ids) for ids, _ in clips)
        batches = [ist.make_batch(clips[i:i + args.batch_size], J) for i in range(0, len(clips), args.batch_size)]
        factors, losses = ist.tune(synth.model, batches, steps=args.steps, rank=args.rank,
                                   learning_rate=args.learning_rate)
    except (CheckpointError, ValueError) as err:
        return error(err, 2)
    ist.save_factors(args.out, factors)
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
