"""Time every GLA backend, forward and forward+backward, against FLA's Triton ``chunk_gla``.

    python -m benchmarks.kernels.gla_bench                      # Small-E shape + T sweep + FLA's shapes
    python -m benchmarks.kernels.gla_bench --shapes cpu --out /tmp/r.jsonl   # seconds, on a CPU
    python -m benchmarks.kernels.gla_bench --shapes small_e --backends pallas_gpu \
        --pallas-tiles 64x64x128,32x32x64     # sweep pallas_gpu tiles (block_v x block_k x block_v_out)
    python -m benchmarks.kernels.gla_bench --shapes small_e --backends pallas_gpu \
        --pallas-tiles :no_factored_chunk     # A/B: without the whole-chunk matmuls

Forward+backward is one call that computes the output and the gradients of ``sum(o * do)``
w.r.t. q, k, v and the gates (FLA: ``o.backward(do)``), so both sides do the same work. When
``fla`` and a CUDA torch are importable, FLA is timed in the same run on the same GPU (in a
child process with a time limit, ``benchmarks/kernels/fla_baseline.py``) and every JAX line
carries its figures as the baseline: FLA's calls replayed from a CUDA graph (its kernels without
Python's launch overhead, which on some hosts made its eager forward 1.7x slower), with the eager
figures beside them; otherwise the baseline is ``null`` and the record says why.
Tokens/s = B * T / seconds. Medians of ``--repeats`` timings, each of ``--iters`` calls, after
warm-up (compilation and FLA's autotuning stay out of the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

# When torch (FLA) shares the GPU, JAX must not grab 75% of the memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from kernels import gla as gla_kernels  # noqa: E402
from benchmarks.kernels.fla_baseline import unavailable_reason as fla_unavailable_reason  # noqa: E402
from benchmarks.record import DEFAULT_RESULTS, append_records, make_record  # noqa: E402
from benchmarks.kernels.shapes import SHAPE_SETS, Shape, make_inputs  # noqa: E402
from kernels.gla.pallas_gpu import variant_kwargs  # noqa: E402


# The token-by-token scan is only timed where it finishes in reasonable time.
SCAN_MAX_TOKENS = 8 * 1024


def time_calls(fn: Callable[[], Any], sync: Callable[[Any], Any], iters: int, repeats: int) -> float:
    """Median seconds per call of ``fn`` (after one warm-up call, which compiles)."""
    sync(fn())
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            out = fn()
        sync(out)
        samples.append((time.perf_counter() - start) / iters)
    return statistics.median(samples)


def backend_fn(backend: str) -> Callable[..., Any]:
    """``kernels.gla.gla`` for a backend name; ``pallas_gpu@BVxBK[xBVo[xS]][:FLAG...]`` =
    pallas_gpu with tiles block_v = BV, block_k = BK, block_v_out = BVo, num_stages = S and
    the named flags (``pallas_gpu.FLAGS``, ``no_`` to turn one off; a tuning variant,
    ``--pallas-tiles``; ``pallas_gpu@:no_factored_chunk`` = default tiles, without the
    whole-chunk matmuls; ``pallas_gpu@:c128`` = chunks of 128 instead of ``--chunk-size``)."""
    if "@" in backend:
        name, spec = backend.split("@")
        kwargs = variant_kwargs(spec)
        fn = gla_kernels.BACKENDS[name]
        chunk = kwargs.pop("chunk_size", None)  # ":cN" in the variant wins over --chunk-size
        return lambda q, k, v, g, chunk_size: fn(q, k, v, g, scale=q.shape[-1] ** -0.5,
                                                 initial_state=None, chunk_size=chunk or chunk_size,
                                                 **kwargs)
    return lambda q, k, v, g, chunk_size: gla_kernels.gla(q, k, v, g, backend=backend,
                                                          chunk_size=chunk_size)


def jax_programs(backend: str, inputs: dict[str, np.ndarray], chunk_size: int
                 ) -> tuple[Callable[..., Any], Callable[..., Any], tuple[jax.Array, ...]]:
    """(forward, forward+backward, device args) of ``kernels.gla.gla`` with ``backend``, jitted:
    forward -> o; forward+backward -> the gradients of ``sum(o * do)`` w.r.t. q, k, v, gates."""
    q, k, v, g, do = (jax.device_put(inputs[n]) for n in ("q", "k", "v", "log_g", "do"))
    call = backend_fn(backend)

    def forward(q, k, v, g):
        return call(q, k, v, g, chunk_size)[0]

    def loss(q, k, v, g):
        return jnp.sum(forward(q, k, v, g).astype(jnp.float32) * do.astype(jnp.float32))

    return jax.jit(forward), jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3))), (q, k, v, g)


def time_jax_backend(backend: str, inputs: dict[str, np.ndarray], chunk_size: int, iters: int,
                     repeats: int) -> tuple[float, float]:
    """Seconds per forward and per forward+backward of ``kernels.gla.gla`` with ``backend``."""
    fwd, fwd_bwd, args = jax_programs(backend, inputs, chunk_size)
    sync = jax.block_until_ready
    t_fwd = time_calls(lambda: fwd(*args), sync, iters, repeats)
    t_fwd_bwd = time_calls(lambda: fwd_bwd(*args), sync, iters, repeats)
    return t_fwd, t_fwd_bwd


def time_fla_subprocess(shape: Shape, dtype: str, repeats: int, timeout_s: float
                        ) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """FLA's timings from its own process (``fla_baseline``'s JSON: eager and CUDA-graph
    seconds, kernels), or (None, why not).

    A separate process with a time limit: FLA's first call of a shape autotunes Triton kernels
    for minutes (on an H100 one did not finish in 7 minutes), and a stall there must not cost
    the JAX figures already measured. The GPU memory JAX holds stays capped
    (XLA_PYTHON_CLIENT_MEM_FRACTION above) so that torch has room beside it.
    """
    command = [sys.executable, "-m", "benchmarks.kernels.fla_baseline", "--dtype", dtype,
               "--repeats", str(repeats)]
    for dim, size in shape.as_dict().items():
        command += [f"--{dim}", str(size)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        return None, f"FLA did not finish within {timeout_s:.0f} s (Triton autotuning?)"
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return None, f"FLA process failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
    if "error" in result:
        return None, result["error"]
    return result, None


def fla_baseline(fla: dict[str, Any], tokens: int) -> dict[str, Any]:
    """The baseline every JAX line is compared with: FLA replayed from a CUDA graph (its kernels
    alone, the strict comparison) where the capture worked, else FLA called eagerly; the other
    figures ride along."""
    graph = "fwd_graph_s" in fla and "fwd_bwd_graph_s" in fla
    suffix = "_graph_s" if graph else "_s"
    baseline = {"name": "fla.chunk_gla", "mode": "cuda_graph" if graph else "eager",
                "fwd_tokens_per_s": tokens / fla["fwd" + suffix],
                "fwd_bwd_tokens_per_s": tokens / fla["fwd_bwd" + suffix],
                "eager_fwd_tokens_per_s": tokens / fla["fwd_s"],
                "eager_fwd_bwd_tokens_per_s": tokens / fla["fwd_bwd_s"]}
    if "graph_error" in fla:
        baseline["graph_error"] = fla["graph_error"]
    return baseline


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="small_e,sweep,fla",
                        help=f"comma-separated shape sets: {', '.join(SHAPE_SETS)}")
    parser.add_argument("--backends", default="auto-available",
                        help="comma-separated JAX backends; default: every backend this device runs")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pallas-tiles", default="",
                        help="comma-separated BVxBK[xBVo[xS]][:FLAG...] variants of pallas_gpu to "
                             "time as well, e.g. 64x64x128x1,32x32,:no_factored_chunk (block_v x "
                             "block_k x block_v_out x num_stages; FLAG: factored_chunk (default) "
                             "or no_factored_chunk, the exact sub-chunk scheme without the "
                             "whole-chunk matmuls)")
    parser.add_argument("--no-fla", action="store_true", help="do not time FLA even if importable")
    parser.add_argument("--fla-timeout", type=float, default=300.0,
                        help="seconds allowed for FLA per shape, autotuning included")
    parser.add_argument("--out", default=str(DEFAULT_RESULTS), help="JSON-lines file to append to")
    args = parser.parse_args(argv)
    unknown = [s for s in args.shapes.split(",") if s not in SHAPE_SETS]
    if unknown:
        parser.error(f"unknown shape set(s) {unknown}; valid: {', '.join(SHAPE_SETS)}")
    return args


# Pallas backends time only on their own platform (elsewhere they run in interpret mode).
_PALLAS_PLATFORM = {"pallas_gpu": "gpu", "pallas_tpu": "tpu"}


def default_backends() -> list[str]:
    """Every registered backend this device runs natively (the scan where the size permits)."""
    platform = jax.default_backend()
    return [name for name in gla_kernels.BACKENDS
            if _PALLAS_PLATFORM.get(name, platform) == platform]


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    backends = default_backends() if args.backends == "auto-available" else args.backends.split(",")
    backends += [f"pallas_gpu@{t}" for t in args.pallas_tiles.split(",") if t]
    shapes = [s for name in args.shapes.split(",") for s in SHAPE_SETS[name]]
    fla_reason = "disabled by --no-fla" if args.no_fla else fla_unavailable_reason()
    print(f"device: {jax.devices()[0].device_kind}; jax {jax.__version__}; backends: {backends}; "
          f"FLA: {'timed in this run' if fla_reason is None else fla_reason}", flush=True)

    rows: list[tuple] = []
    n_records = 0
    for shape in shapes:
        tokens = shape.B * shape.T
        inputs = make_inputs(shape, args.dtype)
        measured: dict[str, tuple[float, float]] = {}
        for backend in backends:
            if backend == "scan" and tokens > SCAN_MAX_TOKENS:
                continue
            try:
                t_fwd, t_fwd_bwd = time_jax_backend(backend, inputs, args.chunk_size, args.iters,
                                                    args.repeats)
            except Exception as err:  # report and go on: one failing backend must not lose the rest
                print(f"{shape.label} {backend}: FAILED {type(err).__name__}: {err}", flush=True)
                continue
            measured[backend] = (tokens / t_fwd, tokens / t_fwd_bwd)
            print(f"{shape.label} {backend}: fwd {tokens / t_fwd / 1e6:.2f} Mtok/s, "
                  f"fwd+bwd {tokens / t_fwd_bwd / 1e6:.2f} Mtok/s", flush=True)

        baseline, shape_fla_reason = None, fla_reason
        if fla_reason is None:
            fla, shape_fla_reason = time_fla_subprocess(shape, args.dtype, args.repeats,
                                                        args.fla_timeout)
            if fla is not None:
                baseline = fla_baseline(fla, tokens)
                print(f"{shape.label} fla_triton ({baseline['mode']}): fwd "
                      f"{baseline['fwd_tokens_per_s'] / 1e6:.2f} Mtok/s, fwd+bwd "
                      f"{baseline['fwd_bwd_tokens_per_s'] / 1e6:.2f} Mtok/s; eager fwd "
                      f"{baseline['eager_fwd_tokens_per_s'] / 1e6:.2f}, fwd+bwd "
                      f"{baseline['eager_fwd_bwd_tokens_per_s'] / 1e6:.2f}"
                      + (f" (no graph: {baseline['graph_error']})" if "graph_error" in baseline
                         else ""), flush=True)
                for direction, kernels in fla.get("kernels", {}).items():
                    print(f"  FLA {direction} kernels (ms per call): "
                          + "; ".join(f"{name} {ms:.3f}" for name, ms in kernels[:8]), flush=True)
            else:
                print(f"{shape.label} fla_triton: {shape_fla_reason}", flush=True)

        # Written shape by shape, so a run stopped part-way keeps every figure it measured.
        records = []
        if baseline is not None:
            records.append(make_record(name=f"gla/{shape.label}", backend="fla_triton",
                                       shape=shape.as_dict(), dtype=args.dtype,
                                       fwd_tokens_per_s=baseline["fwd_tokens_per_s"],
                                       fwd_bwd_tokens_per_s=baseline["fwd_bwd_tokens_per_s"],
                                       extra={**{k: v for k, v in baseline.items()
                                                 if k not in ("name", "fwd_tokens_per_s",
                                                              "fwd_bwd_tokens_per_s")},
                                              "kernels": fla.get("kernels", {})}))
            rows.append((shape.label, "fla_triton", baseline["fwd_tokens_per_s"],
                         baseline["fwd_bwd_tokens_per_s"], 1.0, 1.0))
        for backend, (fwd, fwd_bwd) in measured.items():
            extra = {"chunk_size": args.chunk_size}
            if baseline is None:
                extra["no_baseline_because"] = shape_fla_reason
            records.append(make_record(name=f"gla/{shape.label}", backend=backend,
                                       shape=shape.as_dict(), dtype=args.dtype,
                                       fwd_tokens_per_s=fwd, fwd_bwd_tokens_per_s=fwd_bwd,
                                       baseline=baseline, extra=extra))
            rows.append((shape.label, backend, fwd, fwd_bwd,
                         fwd / baseline["fwd_tokens_per_s"] if baseline else None,
                         fwd_bwd / baseline["fwd_bwd_tokens_per_s"] if baseline else None))
        append_records(records, args.out)
        n_records += len(records)

    def fmt(x: Optional[float], scale: float = 1e6) -> str:
        return "-" if x is None else f"{x / scale:.2f}"

    print(f"\n{n_records} records appended to {args.out}\n")
    print("| shape | backend | fwd Mtok/s | fwd+bwd Mtok/s | fwd / FLA | fwd+bwd / FLA |")
    print("|---|---|---|---|---|---|")
    for label, backend, fwd, fwd_bwd, r_fwd, r_fwd_bwd in rows:
        print(f"| {label} | {backend} | {fmt(fwd)} | {fmt(fwd_bwd)} | {fmt(r_fwd, 1)} | {fmt(r_fwd_bwd, 1)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
