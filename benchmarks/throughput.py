"""Training throughput: audio frames/s of the real jit-compiled train step vs batch shape.

    python -m benchmarks.throughput --config small_e_librilight_medium \\
        --shapes 16x1500,8x4096 [--text-len 300] [--steps 10] [--out results.jsonl] [key=value ...]
    python -m benchmarks.throughput --config transformer_baseline \\
        --frames-per-batch 24000 --lengths 1024,2048,4096,8192,16384

Each shape ``BxT`` is ``B`` rows of ``T`` audio frames (the delayed matrix has T columns, the
loss scores T - 1 of them) and ``--text-len`` text tokens, all real (no padding), random tokens.
The step is :meth:`small_e_jax.train.Trainer.step` itself (AdamW, clipping, NaN guard, donated
state) on a mesh over every local device, so the number is what training gets, minus the
loader. Reported per shape: step time as training sees it (``--steps`` steps dispatched back
to back after ``--warmup``, one wait at the end: the training loop reads each step's metrics one
step late, so it never waits on the device), frames/s = B·T / that step time (the paper's
"audio tokens/s" counts frames), the synchronised per-step time (median and minimum of
``--steps`` steps each waited for: dispatch + device + wait, ``step_ms_sync``), compile time, peak
device memory (GPU/TPU: ``memory_stats()``), and model FLOPs utilisation when ``--peak-tflops``
is given (FLOPs from XLA's cost analysis of the compiled step; kernels XLA cannot see into,
such as Pallas calls, are not counted there).

On GPU the step runs as the trainer runs it, from CUDA graphs (``trainer.cuda_graphs``, default
on; ``trainer.cuda_graphs=false`` to time launches one by one); each record keeps ``XLA_FLAGS``.
A shape that runs out of memory is recorded with ``"oom": true`` and the run goes on.
Each measurement is a JSON line in the one record format (:mod:`benchmarks.record`).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from typing import Any, Optional, Sequence

import jax
import numpy as np

from small_e_jax import gpu_graphs
from small_e_jax.config import Config, ConfigError, load_config
from small_e_jax.delay import delay
from small_e_jax.cli import ArgumentParser, entry_point


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """``"16x1500,8x4096"`` -> [(16, 1500), (8, 4096)]."""
    shapes = []
    for part in text.split(","):
        try:
            b, t = part.lower().split("x")
            shapes.append((int(b), int(t)))
        except ValueError:
            raise ValueError(f"--shapes: {part!r} is not BxT (e.g. 16x1500)") from None
    if any(b <= 0 or t < 2 for b, t in shapes):
        raise ValueError(f"--shapes: need B >= 1 and T >= 2, got {text!r}")
    return shapes


def shapes_for_budget(frames_per_batch: int, lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Fixed frames per batch, varying T: B = max(1, frames_per_batch // T)."""
    return [(max(1, frames_per_batch // t), t) for t in lengths]


def synthetic_batch(config: Config, batch: int, frames: int, text_len: int, seed: int = 0
                    ) -> dict[str, np.ndarray]:
    """Random full-length rows: text [B, J], audio [B, T, Q] delayed (BOA first), masks all True.

    The delay pattern is applied to T - Q - 1 random code frames so the delayed matrix is
    exactly T columns wide."""
    m = config.model
    rng = np.random.default_rng(seed)
    n_codes = frames - m.n_codebooks - 1
    if n_codes < 1:
        raise ValueError(f"T={frames} is too short for {m.n_codebooks} codebooks")
    codes = rng.integers(0, m.codebook_size, (batch, n_codes, m.n_codebooks), dtype=np.int32)
    audio, _ = delay(codes)
    audio = np.asarray(audio)
    assert audio.shape[1] == frames, audio.shape
    text = rng.integers(3, m.text_vocab_size, (batch, text_len), dtype=np.int32)
    return {"text": text, "text_mask": np.ones_like(text, bool), "audio": audio.astype(np.int32),
            "audio_mask": np.ones(audio.shape[:2], bool)}


def _peak_memory_gb() -> Optional[float]:
    stats = jax.local_devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return round(peak / 2**30, 3) if peak is not None else None


def measure(config: Config, batch: int, frames: int, *, text_len: int, steps: int, warmup: int,
            peak_tflops: Optional[float]) -> dict[str, Any]:
    """Time the train step at one shape; returns the figures (``oom`` True if it did not fit)."""
    from small_e_jax.train import Trainer

    n_dev = jax.device_count()
    if batch % n_dev:
        raise ValueError(f"B={batch} is not divisible by the {n_dev} devices")
    trainer = Trainer(config)
    result: dict[str, Any] = {"B": batch, "T": frames, "text_len": text_len, "devices": n_dev}
    try:
        state = trainer.init_state()
        data = trainer.shard_batch(synthetic_batch(config, batch, frames, text_len))
        t0 = time.perf_counter()
        state, metrics = trainer.step(state, data)
        jax.block_until_ready(metrics["loss"])
        result["compile_s"] = round(time.perf_counter() - t0, 2)
        if peak_tflops:
            cost = trainer.compiled_step(state, data).cost_analysis()
            cost = cost[0] if isinstance(cost, (list, tuple)) else cost
            result["step_flops"] = float(cost.get("flops", 0.0)) if cost else None
        for _ in range(warmup):
            state, metrics = trainer.step(state, data)
        jax.block_until_ready(metrics["loss"])
        # As the training loop runs: steps dispatched back to back (the loop reads each step's
        # metrics one step late, so the host never stalls the device), one wait at the end.
        t0 = time.perf_counter()
        for _ in range(steps):
            state, metrics = trainer.step(state, data)
        jax.block_until_ready(metrics["loss"])
        step_s = (time.perf_counter() - t0) / steps
        # Each step alone (dispatch + device + wait): the latency, and its spread.
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            state, metrics = trainer.step(state, data)
            jax.block_until_ready(metrics["loss"])
            times.append(time.perf_counter() - t0)
        result.update(step_ms=round(step_s * 1e3, 3),
                      step_ms_sync=round(statistics.median(times) * 1e3, 3),
                      step_ms_min=round(min(times) * 1e3, 3),
                      frames_per_s=round(batch * frames / step_s, 1), loss=float(metrics["loss"]),
                      peak_mem_gb=_peak_memory_gb(), oom=False)
        if peak_tflops and result.get("step_flops"):
            result["mfu"] = round(result["step_flops"] / step_s / (peak_tflops * 1e12 * n_dev), 4)
    except Exception as e:  # noqa: BLE001 - only out-of-memory is expected; anything else re-raises
        if "RESOURCE_EXHAUSTED" not in str(e) and "out of memory" not in str(e).lower():
            raise
        result.update(oom=True, error=str(e).splitlines()[0][:300])
    finally:
        del trainer
        gc.collect()
        jax.clear_caches()
    return result


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="small_e_librilight_medium", help="preset name or YAML path")
    p.add_argument("--shapes", help="comma-separated BxT, e.g. 16x1500,8x4096")
    p.add_argument("--frames-per-batch", type=int, help="with --lengths: B = frames_per_batch // T")
    p.add_argument("--lengths", default="1024,2048,4096,8192", help="T values for --frames-per-batch")
    p.add_argument("--text-len", type=int, default=300)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's dense bf16 peak, for MFU (e.g. 790 measured on an H200)")
    p.add_argument("--label", default=None, help="name of this variant in the records")
    p.add_argument("--out", default=None, help="append JSON lines here (default: print only)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. model.remat=false)")
    args = p.parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        if args.shapes:
            shapes = parse_shapes(args.shapes)
        elif args.frames_per_batch:
            shapes = shapes_for_budget(args.frames_per_batch, [int(t) for t in args.lengths.split(",")])
        else:
            raise ValueError("give --shapes or --frames-per-batch")
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from benchmarks.record import append_records, make_record

    if config.trainer.cuda_graphs:  # as the trainer runs its steps (small_e_jax/gpu_graphs.py)
        gpu_graphs.enable_cuda_graphs()
    label = args.label or config.name
    for batch, frames in shapes:
        r = measure(config, batch, frames, text_len=args.text_len, steps=args.steps, warmup=args.warmup,
                    peak_tflops=args.peak_tflops)
        if r["oom"]:
            print(f"{label} B={batch} T={frames}: out of memory ({r['error']})", flush=True)
        else:
            mfu = f", MFU {r['mfu']:.1%}" if r.get("mfu") else ""
            print(f"{label} B={batch} T={frames}: {r['frames_per_s']:,.0f} frames/s, step "
                  f"{r['step_ms']:.1f} ms (each alone: median {r['step_ms_sync']:.1f}, min "
                  f"{r['step_ms_min']:.1f}), compile {r['compile_s']:.0f} s, "
                  f"peak {r['peak_mem_gb']} GB{mfu}", flush=True)
        if args.out:
            record = make_record(
                name="train_step", backend=label, shape={"B": batch, "T": frames, "text_len": args.text_len},
                dtype=config.model.dtype, fwd_tokens_per_s=None,
                fwd_bwd_tokens_per_s=r.get("frames_per_s"),
                extra={**r, "model": label, "block": config.model.block, "remat": config.model.remat,
                       "gla_backend": config.model.gla_backend, "overrides": args.overrides,
                       "xla_flags": os.environ.get("XLA_FLAGS", "")})
            append_records([record], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
