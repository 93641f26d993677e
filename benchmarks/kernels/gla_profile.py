"""Where one GLA layer's time goes: device time per kernel, forward and forward+backward.

    python -m benchmarks.kernels.gla_profile                         # pallas_gpu, Small-E shape
    python -m benchmarks.kernels.gla_profile --backends chunked,pallas_gpu,pallas_gpu@64x64x128x1 \\
        --shape 8,4096,4,128,256 --calls 10 --out /tmp/gla_profile.json

``gla_bench`` says how fast a backend is; this says which of its kernels (the Pallas kernels
are named ``gla_*``; XLA's fusions keep XLA's names) costs what, so that the next change goes
where the time is. Each backend's forward and forward+backward (gradients of ``sum(o * do)``
w.r.t. q, k, v and the gates, as in ``gla_bench``) are compiled, warmed up, then ``--calls``
calls of each are traced with ``jax.profiler``; the device time of every kernel is totalled
and divided by the number of calls. Backend names as in ``gla_bench`` (``pallas_gpu@BVxBK...``
selects tile variants). On a CPU there is no device plane: the command says so and prints the
busiest host XLA events (useful only as a smoke test).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional

import jax

from kernels import gla as gla_kernels
from benchmarks.kernels.gla_bench import jax_programs
from benchmarks.kernels.shapes import Shape, make_inputs
from benchmarks.kernels.trace_summary import run_traced, summarize, timeline_lines


def profile_backend(backend: str, shape: Shape, dtype: str, calls: int, chunk_size: int = 64,
                    trace_root: Optional[str] = None) -> dict[str, Any]:
    """Per-call device time (ms) by kernel of `backend`'s forward and forward+backward.

    Returns {"fwd": {...}, "fwd_bwd": {...}}, each {"device_ms": total per call,
    "by_kernel_ms": {name: ms per call}, "device_planes": [...], "host_ms": {...} (CPU only)}.
    """
    fwd, fwd_bwd, args = jax_programs(backend, make_inputs(shape, dtype), chunk_size)
    programs = {"fwd": fwd, "fwd_bwd": fwd_bwd}
    result: dict[str, Any] = {}
    for name, fn in programs.items():
        for _ in range(2):  # compile + warm-up
            jax.block_until_ready(fn(*args))
        def run(fn=fn):
            for _ in range(calls):
                out = fn(*args)
            return jax.block_until_ready(out)

        _, path = run_traced(run, prefix=f"gla_profile_{name}_", parent=trace_root)
        s = summarize(path)
        per_call = lambda counts: {k_: ns / calls / 1e6 for k_, ns in counts.most_common()}  # noqa: E731
        result[name] = {"device_ms": s["total_ns"] / calls / 1e6, "by_kernel_ms": per_call(s["by_kernel"]),
                        "device_planes": s["device_planes"], "host_ms": per_call(s["host"]),
                        "timeline_per_call": {k_: v / calls for k_, v in s["timeline"].items()}}
    return result


def format_profile(backend: str, shape: Shape, prof: dict[str, Any], top: int) -> list[str]:
    """Readable lines: per pass, total and the `top` kernels with their share."""
    tokens = shape.B * shape.T
    lines = []
    for name, p in prof.items():
        if not p["device_planes"]:
            lines.append(f"{backend} {name}: no device plane (CPU run); busiest host XLA events:")
            for kernel, ms in list(p["host_ms"].items())[:top]:
                lines.append(f"  {ms:9.3f} ms  {kernel[:100]}")
            continue
        total = p["device_ms"]
        rate = tokens / (total / 1e3) / 1e6 if total else float("nan")
        lines.append(f"{backend} {name}: {total:.3f} ms of device time per call "
                     f"({rate:.2f} Mtok/s if the GPU were never idle)")
        if "timeline_per_call" in p:  # calls back to back: idle = launch gaps and dispatch
            lines.extend("  " + line.replace("per step", "per call")
                         for line in timeline_lines(p["timeline_per_call"], 1))
        for kernel, ms in list(p["by_kernel_ms"].items())[:top]:
            lines.append(f"  {ms:9.3f} ms  {ms / total:6.1%}  {kernel[:100]}")
    return lines


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default="pallas_gpu", help="comma-separated, as in gla_bench")
    p.add_argument("--shape", default="8,4096,4,128,256", help="B,T,H,Dk,Dv")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--calls", type=int, default=10, help="calls traced per pass")
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--out", default=None, help="write {backend: profile} as JSON here")
    args = p.parse_args(argv)
    try:
        B, T, H, Dk, Dv = (int(x) for x in args.shape.split(","))
    except ValueError:
        print(f"error: --shape wants B,T,H,Dk,Dv (five integers), got {args.shape!r}", file=sys.stderr)
        return 2
    if args.calls < 1:
        print("error: --calls must be >= 1", file=sys.stderr)
        return 2
    shape = Shape(f"B{B}_T{T}_H{H}_Dk{Dk}_Dv{Dv}", B, T, H, Dk, Dv)
    print(f"device: {jax.devices()[0].device_kind}; jax {jax.__version__}; shape {shape.as_dict()}, {args.dtype}")
    backends = [b for b in args.backends.split(",") if b]
    valid = ["auto", *gla_kernels.BACKENDS]
    unknown = [b for b in backends if b.split("@")[0] not in valid]
    if unknown:
        print(f"error: unknown backend(s) {unknown}; valid: {valid} (pallas_gpu@BVxBK... for tiles)",
              file=sys.stderr)
        return 2
    results = {}
    for backend in backends:
        results[backend] = profile_backend(backend, shape, args.dtype, args.calls, args.chunk_size)
        print("\n".join(format_profile(backend, shape, results[backend], args.top)), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": jax.devices()[0].device_kind, "jax_version": jax.__version__,
                       "shape": shape.as_dict(), "dtype": args.dtype, "calls": args.calls,
                       "profiles": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
