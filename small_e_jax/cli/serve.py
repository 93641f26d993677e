"""``small-e-serve`` / ``python -m small_e_jax.serve``: a local web page that speaks (docs/inference.md).
The page, its API and the ``--help`` text: :mod:`small_e_jax.serve`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

from small_e_jax import serve
from small_e_jax.cli import ArgumentParser, entry_point


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m small_e_jax.serve", description=serve.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None,
                   help="a run's workdir, its checkpoints folder or one step's folder (default: the shipped model)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: newest)")
    p.add_argument("--codec-weights", default=None, help="codec weights dir (default: the checkpoint config's)")
    p.add_argument("--max-frames", type=int, default=None, help="default: the checkpoint's data.max_frames")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args(argv)
    if args.max_frames is not None and args.max_frames <= 0:
        p.error(f"--max-frames must be > 0, got {args.max_frames}")
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be in 0..65535, got {args.port}")
    return args


@entry_point
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import uvicorn  # checked before the (slow) restore

    t0 = time.perf_counter()
    synth = serve.load_synthesizer(args.checkpoint, step=args.step, codec_weights=args.codec_weights)
    name = args.checkpoint or "the shipped model"
    print(f"restored {name} (step {synth.checkpoint_step}) in {time.perf_counter() - t0:.1f} s; "
          f"open http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
    uvicorn.run(serve.create_app(synth, max_frames=args.max_frames, title=f"Small-E: {name}"),
                host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
