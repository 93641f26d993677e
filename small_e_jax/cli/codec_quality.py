"""``python -m small_e_jax.codec.quality``: how well a codec resynthesises held-out speech
(docs/codec_training.md). The library and the ``--help`` text: :mod:`small_e_jax.eval.codec_quality`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from small_e_jax.cli import ArgumentParser, entry_point, error
from small_e_jax.eval import codec_quality


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    parser = ArgumentParser(prog="python -m small_e_jax.codec.quality", description=codec_quality.__doc__.split("\n")[0])
    parser.add_argument("--codec", default="dac_mini24", help="codec name for load_codec")
    parser.add_argument("--weights", default=None, help="weights directory (model.safetensors + config.json); "
                        "'bundled' = the weights shipped in the repo")
    parser.add_argument("--corpus-dir", default=str(codec_quality.MINI_CORPUS))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, default=None, help="first N clips only")
    parser.add_argument("--asr", default=None, help="'whisper' (the offline Whisper tiny.en of requirements-eval.txt) or "
                        "MODULE:FUNCTION transcribing (wavs, sample_rate) -> texts")
    parser.add_argument("--write-wavs", default=None, help="folder for a few original/resynthesised wavs")
    parser.add_argument("--n-wavs", type=int, default=4)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    from small_e_jax.codec import load_codec

    try:
        codec = load_codec(args.codec, args.weights)
        asr = codec_quality.load_asr(args.asr) if args.asr else None
    except (ValueError, ImportError, AttributeError) as exc:
        return error(exc, 2)
    result = codec_quality.evaluate(codec, args.corpus_dir, args.split, limit=args.limit, asr=asr,
                                    write_wavs=args.write_wavs, n_wavs=args.n_wavs)
    result.update(codec=args.codec, weights=args.weights)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
