"""``python -m small_e_jax.codec.convert``: an official DAC or EnCodec 24 kHz PyTorch checkpoint into
our Flax codec weights (README.md, Codec). The library: :mod:`small_e_jax.codec.convert`."""

from __future__ import annotations

from typing import Optional, Sequence

from small_e_jax.cli import ArgumentParser, entry_point, error
from small_e_jax.codec import convert
from small_e_jax.codec.encodec import EncodecConfig


@entry_point
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(
        prog="python -m small_e_jax.codec.convert",
        description="Convert an official DAC PyTorch checkpoint (.pth, from the descript-audio-codec GitHub "
                    "releases) or the EnCodec 24 kHz checkpoint (encodec_24khz-d7cc33bc.th) into small_e_jax "
                    "Flax weights (model.safetensors + config.json).")
    parser.add_argument("--from", dest="src", required=True, help="official DAC (.pth) or EnCodec (.th) checkpoint")
    parser.add_argument("--model", choices=("auto", "dac", "encodec"), default="auto",
                        help="checkpoint type (default: detected from the tensor names)")
    parser.add_argument("--to", dest="dst", required=True, help="output directory")
    parser.add_argument("--sample-rate", type=int, default=None,
                        help="override/supply the sample rate (needed when the file has no metadata)")
    parser.add_argument("--n-q", type=int, default=None,
                        help="codebooks the codec uses by default (default: 4 for 24 kHz = 3 kbps, else all)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files in the output directory")
    args = parser.parse_args(argv)
    try:
        cfg = convert.convert(args.src, args.dst, sample_rate=args.sample_rate, n_q=args.n_q, overwrite=args.overwrite,
                              model=args.model)
    except ValueError as exc:
        return error(exc, 2)
    kind = "EnCodec" if isinstance(cfg, EncodecConfig) else "DAC"
    print(f"wrote {args.dst} ({kind}): {cfg.sample_rate} Hz, hop {cfg.hop_length} ({cfg.frame_rate:g} frames/s), "
          f"{cfg.n_codebooks} codebooks x {cfg.codebook_size} (using {cfg.num_quantizers}: {cfg.bitrate / 1000:g} kbps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
