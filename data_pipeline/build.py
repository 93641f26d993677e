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

import os
from typing import Any, Optional

from data_pipeline.builders import BUILDERS
from data_pipeline.sources import validation_count

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


if __name__ == "__main__":  # the command line: small_e_jax/cli/build_data.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.build_data", run_name="__main__")
