"""``small-e-build-data`` / ``python -m data_pipeline.build``: build a dataset (text tokens and codec
codes, TFDS) from a corpus (docs/data.md). The library and the ``--help`` text: :mod:`data_pipeline.build`."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from data_pipeline import build
from data_pipeline.builders import BUILDERS
from data_pipeline.sources import DEFAULT_VALIDATION, VALIDATION_FLOOR
from small_e_jax.cli import ArgumentParser, entry_point, error


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(description=build.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(BUILDERS))
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default ~/tensorflow_datasets)")
    p.add_argument("--manual-dir", default=None, help="raw corpus (speech_folder, librilight_medium)")
    p.add_argument("--transcripts", default=None, help="librilight_medium: JSONL/CSV id,text")
    p.add_argument("--codec", default=build.DEFAULT_CODEC,
                   help=f"codec name (default {build.DEFAULT_CODEC}, shipped with its weights)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--codec-weights", default=None,
                         help="converted weights dir, or 'bundled' (the weights shipped for --codec; the default)")
    weights.add_argument("--random-codec-weights", action="store_true",
                         help="random codec weights (smoke tests only: the codes mean nothing)")
    p.add_argument("--n-q", type=int, default=4)
    p.add_argument("--validation", type=float, default=None, metavar="N|FRACTION",
                   help=f"speech_folder: validation utterances, a count (>= 1) or a fraction (< 1; at least "
                        f"{VALIDATION_FLOOR}); default {DEFAULT_VALIDATION}; rows whose manifest names a split keep it")
    p.add_argument("--max-examples", type=int, default=None, help="first N utterances of each split (smoke builds: "
                   "use a separate --data-dir, the capped build occupies the dataset's folder)")
    args = p.parse_args(argv)
    args.codec_weights = None if args.random_codec_weights else args.codec_weights or "bundled"
    if not sys.stderr.isatty():  # nested TFDS bars write cursor escape codes into log files
        import tensorflow_datasets as tfds

        tfds.disable_progress_bar()
    try:
        builder = build.make_builder(args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir,
                                     codec=args.codec, codec_weights=args.codec_weights, n_q=args.n_q,
                                     max_examples=args.max_examples, transcripts=args.transcripts,
                                     validation=args.validation)
        if args.codec_weights is None:
            print("warning: --random-codec-weights: random codec weights, the codes mean nothing", file=sys.stderr)
        builder.download_and_prepare()
    except (ValueError, FileNotFoundError) as exc:
        return error(exc, 2)
    info = builder.info
    print(f"{builder.name}/{builder.builder_config.name} at {builder.data_dir}: "
          + ", ".join(f"{k}={v.num_examples}" for k, v in info.splits.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
