"""Codec throughput: our Flax DAC vs the PyTorch DAC (descript-audio-codec), same device, same run.

    python -m benchmarks.codec_bench [--codec dac_24khz] [--n-q 4] [--seconds 10] \\
        [--batches 1,16,64] [--precision default,highest] [--iters 5] [--out results.jsonl]

Both models have the official architecture with random weights (throughput does not depend on
the values). Encode = waveform [B, S] -> codes [B, n_q, F] (n_q codebooks); decode = codes ->
waveform. Figures are seconds of audio per second of wall time (median of ``--iters`` calls after
a warm-up call; outputs copied to the host, as a user gets them). JAX precision ``default`` lets
XLA use TF32 for fp32 convolutions on GPU (PyTorch's cuDNN default, ``allow_tf32=True``) and
``highest`` forbids it (PyTorch run with ``torch.backends.cudnn.allow_tf32 = False``).

The PyTorch side needs the oracle install (``requirements-oracle.txt``, see tests/codec); when it
is missing only the JAX figures are taken and the records say so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable, Optional

import jax
import numpy as np
from flax import nnx

from small_e_jax.codec.dac import random_init
from small_e_jax.codec.dac_config import preset


def _time(fn: Callable[[], Any], iters: int) -> float:
    fn()  # compile / autotune / warm-up
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def jax_figures(codec: str, n_q: int, batch: int, samples: int, precision: str, iters: int
                ) -> dict[str, float]:
    """Seconds of audio per second for encode and decode of our Flax DAC."""
    model = random_init(preset(codec, n_q), precision=precision)
    graphdef, state = nnx.split(model)
    state = jax.device_put(state)

    @jax.jit
    def encode(state, wav):
        return nnx.merge(graphdef, state).encode(wav, n_q=n_q)[0]

    @jax.jit
    def decode(state, codes):
        return nnx.merge(graphdef, state).decode(codes)

    wav = jax.device_put(np.random.default_rng(0).uniform(-0.5, 0.5, (batch, samples)).astype(np.float32))
    codes = encode(state, wav)
    audio_s = batch * samples / model.config.sample_rate
    t_enc = _time(lambda: np.asarray(encode(state, wav)), iters)
    t_dec = _time(lambda: np.asarray(decode(state, codes)), iters)
    return {"encode": audio_s / t_enc, "decode": audio_s / t_dec}


def torch_figures(codec: str, n_q: int, batch: int, samples: int, precision: str, iters: int
                  ) -> Optional[dict[str, float]]:
    """The same for the PyTorch DAC on the same device (None if torch/DAC are not installed)."""
    try:
        import torch

        from tests.codec.torch_oracle import build_reference
    except ImportError:
        return None
    cfg = preset(codec, n_q)
    kwargs = dict(encoder_dim=cfg.encoder_dim, encoder_rates=list(cfg.encoder_rates), decoder_dim=cfg.decoder_dim,
                  decoder_rates=list(cfg.decoder_rates), n_codebooks=cfg.n_codebooks,
                  codebook_size=cfg.codebook_size, codebook_dim=cfg.codebook_dim, sample_rate=cfg.sample_rate)
    try:
        model = build_reference(kwargs, randomize=False)
    except RuntimeError:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.allow_tf32 = precision != "highest"
    torch.backends.cuda.matmul.allow_tf32 = precision != "highest"
    torch.backends.cudnn.benchmark = True
    model = model.to(device)
    wav = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (batch, 1, samples)).astype(np.float32)
                           ).to(device)

    @torch.no_grad()
    def encode():
        _, codes, *_ = model.encode(wav, n_quantizers=n_q)
        return codes[:, :n_q].cpu().numpy()

    with torch.no_grad():
        _, codes, *_ = model.encode(wav, n_quantizers=n_q)
        codes = codes[:, :n_q]

    @torch.no_grad()
    def decode():
        z, _, _ = model.quantizer.from_codes(codes)
        return model.decode(z).cpu().numpy()

    audio_s = batch * samples / cfg.sample_rate
    return {"encode": audio_s / _time(encode, iters), "decode": audio_s / _time(decode, iters)}


def _free_torch_memory() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", default="dac_24khz")
    p.add_argument("--n-q", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0, help="clip length")
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--precision", default="default,highest")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--no-torch", action="store_true", help="time only our Flax DAC")
    p.add_argument("--out", default=None, help="append JSON lines here")
    args = p.parse_args(argv)
    from benchmarks.record import append_records, make_record

    cfg = preset(args.codec, args.n_q)
    samples = int(round(args.seconds * cfg.sample_rate / cfg.hop_length)) * cfg.hop_length
    for precision in args.precision.split(","):
        for batch in [int(b) for b in args.batches.split(",")]:
            ours = jax_figures(args.codec, args.n_q, batch, samples, precision, args.iters)
            theirs = None if args.no_torch else torch_figures(args.codec, args.n_q, batch, samples, precision,
                                                              args.iters)
            line = (f"{args.codec} n_q={args.n_q} B={batch} {args.seconds:g}s precision={precision}: "
                    f"Flax encode {ours['encode']:,.1f}x / decode {ours['decode']:,.1f}x real time")
            if theirs:
                line += (f"; PyTorch encode {theirs['encode']:,.1f}x / decode {theirs['decode']:,.1f}x; "
                         f"ratio {ours['encode'] / theirs['encode']:.2f} / {ours['decode'] / theirs['decode']:.2f}")
            print(line, flush=True)
            _free_torch_memory()
            if args.out:
                shape = {"B": batch, "samples": samples, "n_q": args.n_q}
                records = [make_record(
                    name=f"codec_{op}", backend=f"flax_{precision}", shape=shape, dtype="float32",
                    fwd_tokens_per_s=ours[op], fwd_bwd_tokens_per_s=None,
                    baseline={"name": f"pytorch_dac_{precision}", "fwd_tokens_per_s": theirs[op]} if theirs else None,
                    extra={"unit": "seconds of audio per second", "codec": args.codec,
                           "baseline_missing": theirs is None}) for op in ("encode", "decode")]
                append_records(records, args.out)
            jax.clear_caches()
    return 0


if __name__ == "__main__":
    sys.exit(main())
