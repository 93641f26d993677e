"""Where a codec training step spends its time: ``python -m benchmarks.codec_profile_train``.

Builds the train step of :mod:`small_e_jax.codec.training.step` exactly as a run does (same flags:
``--batch-size``, ``--segment-seconds``, ``--gan``, ...; no corpus needed: the batch is noise of
speech-like level), times ``--profile-steps`` back-to-back steps and traces them with
``jax.profiler``, then prints the device time per step, the busy/idle timeline, and the
busiest name scopes and kernels (with the JAX source of each kernel)::

    python -m benchmarks.codec_profile_train --batch-size 32 --profile-steps 10 --out prof.json \\
        --record benchmarks/results.jsonl

On a CPU there is no device plane: the busiest host XLA events are printed instead.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Optional

import jax
import numpy as np

from benchmarks.record import append_records, make_record
from benchmarks.kernels.trace_summary import report_lines, run_traced, summarize
from small_e_jax.cli.codec_train import parse_args
from small_e_jax.codec.training.step import build_training
from benchmarks.profile_step import hlo_origins, scope_of
from small_e_jax.cli import ArgumentParser, entry_point


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(description=__doc__.split("\n")[0],
                       epilog="Any other flag is a `python -m small_e_jax.codec.train` flag.")
    p.add_argument("--profile-steps", type=int, default=10, help="steps timed and traced (after compile + warm-up)")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--depth", type=int, default=6, help="name-scope components kept")
    p.add_argument("--out", default=None, help="write the summary as JSON here")
    p.add_argument("--record", default=None,
                   help="append the step rate as a JSON line here (benchmarks/results.jsonl format)")
    args, rest = p.parse_known_args(argv)
    try:
        if args.profile_steps < 1:
            raise ValueError(f"--profile-steps must be >= 1, got {args.profile_steps}")
        cfg = parse_args(rest + ["--no-progress-bar"])
        cfg.validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    devices = jax.devices()
    if cfg.batch_size % len(devices):
        print(f"error: --batch-size {cfg.batch_size} is not divisible by the {len(devices)} devices", file=sys.stderr)
        return 2
    setup = build_training(cfg, devices)
    wav = 0.1 * np.random.default_rng(cfg.seed).standard_normal((cfg.batch_size, cfg.segment_samples()))
    wav = jax.device_put(wav.astype(np.float32), setup.batched)
    state = setup.state
    t0 = time.perf_counter()
    state, metrics = setup.train_step(state, wav)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    state, metrics = setup.train_step(state, wav)  # warm-up
    jax.block_until_ready(metrics)

    def run(state=state):
        for _ in range(args.profile_steps):
            state, metrics = setup.train_step(state, wav)
        jax.block_until_ready(metrics)
        return state

    t0 = time.perf_counter()
    state = run(state)
    wall_ms = (time.perf_counter() - t0) / args.profile_steps * 1e3
    audio_s = cfg.batch_size * cfg.segment_samples() / cfg.model_config().sample_rate
    n = args.profile_steps
    print(f"codec {cfg.codec} on {len(devices)} x {devices[0].device_kind}: batch {cfg.batch_size} x "
          f"{cfg.segment_samples()} samples; first step (compile) {compile_s:.1f} s; {wall_ms:.2f} ms per step back "
          f"to back ({1e3 / wall_ms:.2f} steps/s, {audio_s * 1e3 / wall_ms:.0f} audio s/s)")
    try:
        state, path = run_traced(lambda: run(state), prefix="codec_trace_")
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    s = summarize(path, args.depth, scope_of)

    def origins() -> dict[str, str]:
        try:  # a compile-cache hit: the step was compiled above
            return hlo_origins(setup.train_step.lower(state, wav).compile().as_text())
        except Exception as exc:  # noqa: BLE001 - the origins are a convenience, never fatal
            print(f"(no HLO origins: {type(exc).__name__}: {exc})")
            return {}

    for line in report_lines(s, n, args.top, origins):
        print(line)
    if args.record:
        record = make_record(
            name="codec_train_step", backend=f"{cfg.codec}/precision={cfg.precision}",
            shape={"B": cfg.batch_size, "samples": cfg.segment_samples()}, dtype="float32",
            fwd_tokens_per_s=None, fwd_bwd_tokens_per_s=cfg.batch_size * cfg.segment_samples() * 1e3 / wall_ms,
            extra={"unit": "audio samples/s (fwd_bwd = the whole train step: forward, losses, backward, AdamW)",
                   "ms_per_step": wall_ms, "device_ms_per_step": s["total_ns"] / n / 1e6 if s["device_planes"] else None,
                   "gan": cfg.gan, "n_devices": len(devices)})
        append_records([record], args.record)
    if args.out:
        summary = {"codec": cfg.codec, "batch_size": cfg.batch_size, "segment_samples": cfg.segment_samples(),
                   "device": devices[0].device_kind, "n_devices": len(devices), "wall_ms_per_step": wall_ms,
                   "device_ms_per_step": s["total_ns"] / n / 1e6,
                   "timeline_per_step": {k: v / n for k, v in s["timeline"].items()},
                   "by_scope_ms": {k: v / n / 1e6 for k, v in s["by_scope"].most_common(args.top)},
                   "by_kernel_ms": {k: v / n / 1e6 for k, v in s["by_kernel"].most_common(args.top)}}
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
