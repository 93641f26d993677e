"""Build a dataset: ``python -m data_pipeline.build --dataset mini|speech_folder|librilight_medium``.

    python -m data_pipeline.build --dataset mini --data-dir ~/tensorflow_datasets
    python -m data_pipeline.build --dataset speech_folder --manual-dir /data/LJSpeech-1.1 --validation 100
    python -m data_pipeline.build --dataset synthetic_corpus --manual-dir corpus/
    python -m data_pipeline.build --dataset librilight_medium --manual-dir /data/librilight/medium \\
        --transcripts /data/librilight/transcripts.jsonl --codec dac_24khz --codec-weights weights/dac_24khz

The codec defaults to the one shipped in the package with its weights (``--codec dac_mini24
--codec-weights bundled``); another codec needs its converted weights (``--codec-weights DIR``).
``--random-codec-weights`` encodes with random weights (smoke tests only: the codes mean nothing).
The dataset records the codec, its weights and the number of codebooks (TFDS metadata), which
the trainer reads.

Flags are spelled with hyphens; the older underscore spellings (``--data_dir``) still work.
Your own data: ``docs/data.md``.

Re-running is safe: a finished build is skipped by TFDS, an interrupted one re-uses the encoded
chunks cached under ``<data_dir>/_encode_cache``. Skipped inputs are listed, with reasons, in
``<data_dir>/reports/``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional

from data_pipeline.builders import BUILDERS
from data_pipeline.sources import DEFAULT_VALIDATION, VALIDATION_FLOOR, validation_count
from small_e_jax.cli import ArgumentParser, entry_point

DEFAULT_CODEC = "dac_mini24"  # the codec shipped with its weights (small_e_jax/codec/pretrained)


def make_builder(dataset: str, *, data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
                 codec: str = DEFAULT_CODEC, codec_weights: Optional[str] = "bundled", n_q: int = 4,
                 max_examples: Optional[int] = None, transcripts: Optional[str] = None,
                 codec_obj: Any = None, validation: Optional[float] = None):
    """The builder for ``dataset`` (checks arguments, does not build).

    ``codec_weights``: a directory of converted weights, ``"bundled"`` (the weights shipped for
    ``codec``; the default) or ``None`` (random weights: smoke tests). ``codec_obj`` (tests)
    replaces the codec loaded by name, so its weights are not looked up. ``validation``
    (speech_folder): the validation split's size, a count (>= 1) or a fraction (< 1); default
    :data:`data_pipeline.sources.DEFAULT_VALIDATION`."""
    if dataset not in BUILDERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(BUILDERS)}")
    if codec_weights == "bundled":  # the weights shipped in the package (small_e_jax/codec/pretrained)
        from small_e_jax.codec import bundled_weights

        codec_weights = bundled_weights(codec)
        if codec_weights is None and codec_obj is None:
            raise ValueError(f"--codec-weights bundled: no weights ship for codec {codec!r} (give --codec-weights "
                             "DIR, or --random-codec-weights for a smoke test)")
    if codec_weights is not None and not os.path.isdir(codec_weights):
        raise ValueError(f"--codec-weights {codec_weights} is not a directory (convert weights with "
                         "python -m small_e_jax.codec.convert)")
    kwargs: dict[str, Any] = dict(codec=codec, codec_weights=codec_weights, n_q=n_q, codec_obj=codec_obj,
                                  max_examples=max_examples, data_dir=data_dir)
    if dataset == "speech_folder":
        if not manual_dir:
            raise ValueError("--dataset speech_folder needs --manual-dir (a corpus folder or a manifest)")
        kwargs["manual_dir"] = manual_dir
        if validation is not None:
            validation_count(2, validation)  # a negative value is an error now, not at build time
            kwargs["validation"] = validation
    elif dataset == "synthetic_corpus":
        if not manual_dir:
            raise ValueError("--dataset synthetic_corpus needs --manual-dir (a folder made by "
                             "python -m data_pipeline.make_synthetic_corpus)")
        kwargs["manual_dir"] = manual_dir
    elif dataset == "librilight_medium":
        kwargs.update(manual_dir=manual_dir, transcripts=transcripts)
    return BUILDERS[dataset](**kwargs)


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(BUILDERS))
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default ~/tensorflow_datasets)")
    p.add_argument("--manual-dir", default=None, help="raw corpus (speech_folder, librilight_medium)")
    p.add_argument("--transcripts", default=None, help="librilight_medium: JSONL/CSV id,text")
    p.add_argument("--codec", default=DEFAULT_CODEC,
                   help=f"codec name (default {DEFAULT_CODEC}, shipped with its weights)")
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
        builder = make_builder(args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir,
                               codec=args.codec, codec_weights=args.codec_weights, n_q=args.n_q,
                               max_examples=args.max_examples, transcripts=args.transcripts,
                               validation=args.validation)
        if args.codec_weights is None:
            print("warning: --random-codec-weights: random codec weights, the codes mean nothing", file=sys.stderr)
        builder.download_and_prepare()
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = builder.info
    print(f"{builder.name}/{builder.builder_config.name} at {builder.data_dir}: "
          + ", ".join(f"{k}={v.num_examples}" for k, v in info.splits.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
