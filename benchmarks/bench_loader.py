"""Loader throughput: audio frames/s (and codes/s) delivered by the grain pipeline.

    python -m benchmarks.bench_loader [--dataset mini --data-dir DIR --codec dac_mini24] \\
        [--frames-per-batch 24000 --n-buckets 10 --workers 0 --batches 200]

Without a built dataset (``--synthetic N``) it times the pipeline on N random in-memory records
(the ArrayRecord read is then not part of the number).
"""

from __future__ import annotations

import argparse
import time
from typing import Optional

import numpy as np

from data_pipeline.loader import make_dataset, open_source
from small_e_jax.cli import ArgumentParser, entry_point


def synthetic_source(n: int, n_q: int = 4, seed: int = 0) -> list[dict]:
    """N records like the builders' (2-12 s at 75 frames/s, 20-120 text tokens)."""
    rng = np.random.default_rng(seed)
    return [{"codes": rng.integers(0, 1024, (n_q, int(rng.integers(150, 900))), dtype=np.int16),
             "text_tokens": np.concatenate([[1], rng.integers(3, 256, int(rng.integers(20, 120))), [2]]
                                           ).astype(np.int32)}
            for _ in range(n)]


@entry_point
def main(argv: Optional[list[str]] = None) -> None:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mini")
    p.add_argument("--split", default="train")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--codec", default="dac_mini24", help="the build's codec (data_pipeline.build's default)")
    p.add_argument("--n-q", type=int, default=4)
    p.add_argument("--synthetic", type=int, default=0, help="time N in-memory random records instead")
    p.add_argument("--frames-per-batch", type=int, default=24_000)
    p.add_argument("--n-buckets", type=int, default=10)
    p.add_argument("--length-multiple", type=int, default=64, help="bucket lengths rounded up to this")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--out", default=None, help="append a JSON line (benchmarks/record.py format) here")
    args = p.parse_args(argv)
    if args.synthetic:
        source, what = synthetic_source(args.synthetic, args.n_q), f"{args.synthetic} synthetic records"
    else:
        source, _ = open_source(args.dataset, args.split, data_dir=args.data_dir, codec=args.codec, n_q=args.n_q)
        what = f"{args.dataset}/{args.codec}/{args.split} ({len(source)} records)"
    ds = make_dataset(source, n_q=args.n_q, frames_per_batch=args.frames_per_batch, n_buckets=args.n_buckets,
                      length_multiple=args.length_multiple, process_index=0, process_count=1, worker_count=args.workers, max_frames=10**6)
    it = iter(ds)
    next(it)  # start-up (length pass, workers) is not part of the rate
    frames = padded = 0
    t0 = time.perf_counter()
    for _ in range(args.batches):
        b = next(it)
        frames += int(b["frames"].sum())
        padded += b["audio_mask"].size
    dt = time.perf_counter() - t0
    print(f"{what}, frames_per_batch={args.frames_per_batch}, workers={args.workers}: "
          f"{frames / dt:,.0f} audio frames/s ({frames * args.n_q / dt:,.0f} codes/s), "
          f"{args.batches / dt:.1f} batches/s, padding {1 - frames / max(padded, 1):.1%} of audio positions")
    if args.out:
        from benchmarks.record import append_records, make_record
        append_records([make_record(
            name=f"loader/{'synthetic' if args.synthetic else args.dataset}", backend=f"grain_workers{args.workers}",
            shape={"frames_per_batch": args.frames_per_batch, "records": len(source), "n_buckets": args.n_buckets},
            dtype="int16", fwd_tokens_per_s=frames / dt, fwd_bwd_tokens_per_s=None,
            extra={"unit": "real audio frames/s", "what": what, "batches_per_s": args.batches / dt,
                   "padding_fraction": 1 - frames / max(padded, 1),
                   "reads_array_record": not args.synthetic})], args.out)


if __name__ == "__main__":
    from absl import flags
    flags.FLAGS(["bench_loader"])  # grain worker processes read absl flags
    main()
