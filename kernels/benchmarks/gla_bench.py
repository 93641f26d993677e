"""Time every GLA backend, forward and forward+backward, against FLA's Triton ``chunk_gla``.

    python -m kernels.benchmarks.gla_bench                      # Small-E shape + T sweep + FLA's shapes
    python -m kernels.benchmarks.gla_bench --shapes cpu --out /tmp/r.jsonl   # seconds, on a CPU

Forward+backward is one call that computes the output and the gradients of ``sum(o * do)``
w.r.t. q, k, v and the gates (FLA: ``o.backward(do)``), so both sides do the same work. When
``fla`` and a CUDA torch are importable, FLA is timed in the same process on the same GPU and
every JAX line carries its figures as the baseline; otherwise the baseline is ``null``.
Tokens/s = B * T / seconds. Medians of ``--repeats`` timings, each of ``--iters`` calls, after
warm-up (compilation and FLA's autotuning stay out of the numbers).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from typing import Any, Callable, Optional

# When torch (FLA) shares the GPU, JAX must not grab 75% of the memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from kernels import gla as gla_kernels  # noqa: E402
from kernels.benchmarks.record import DEFAULT_RESULTS, append_records, make_record  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Shape:
    """One GLA layer call: q, k ``[B, T, H, Dk]``, v ``[B, T, H, Dv]``."""

    label: str
    B: int
    T: int
    H: int
    Dk: int
    Dv: int

    def as_dict(self) -> dict[str, int]:
        return {"B": self.B, "T": self.T, "H": self.H, "Dk": self.Dk, "Dv": self.Dv}


SMALL_E = Shape("small_e", 8, 4096, 4, 128, 256)
SHAPE_SETS: dict[str, list[Shape]] = {
    "small_e": [SMALL_E],
    "sweep": [Shape(f"small_e_T{t}", 8, t, 4, 128, 256) for t in (1024, 2048, 8192, 16384)],
    "fla": [Shape("fla_B8_T1024_H8_D64", 8, 1024, 8, 64, 64),
            Shape("fla_B4_T4096_H64_D128", 4, 4096, 64, 128, 128)],
    "cpu": [Shape("cpu_smoke", 1, 256, 2, 32, 64)],
}
# The token-by-token scan is only timed where it finishes in reasonable time.
SCAN_MAX_TOKENS = 8 * 1024


def make_inputs(shape: Shape, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs in numpy (shared by JAX and FLA). Gates as Small-E makes them:
    ``logsigmoid(x) / 16`` (fp32)."""
    rng = np.random.default_rng(seed)
    B, T, H, Dk, Dv = shape.B, shape.T, shape.H, shape.Dk, shape.Dv
    np_dtype = jnp.dtype(dtype)
    x = rng.standard_normal((B, T, H, Dk)).astype(np.float32)
    return {
        "q": rng.standard_normal((B, T, H, Dk)).astype(np_dtype),
        "k": rng.standard_normal((B, T, H, Dk)).astype(np_dtype),
        "v": rng.standard_normal((B, T, H, Dv)).astype(np_dtype),
        "log_g": (-np.logaddexp(0.0, -x) / 16.0).astype(np.float32),
        "do": rng.standard_normal((B, T, H, Dv)).astype(np_dtype),
    }


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


def time_jax_backend(backend: str, inputs: dict[str, np.ndarray], chunk_size: int, iters: int,
                     repeats: int) -> tuple[float, float]:
    """Seconds per forward and per forward+backward of ``kernels.gla.gla`` with ``backend``."""
    q, k, v, g, do = (jax.device_put(inputs[n]) for n in ("q", "k", "v", "log_g", "do"))

    def forward(q, k, v, g):
        return gla_kernels.gla(q, k, v, g, backend=backend, chunk_size=chunk_size)[0]

    def loss(q, k, v, g):
        return jnp.sum(forward(q, k, v, g).astype(jnp.float32) * do.astype(jnp.float32))

    fwd = jax.jit(forward)
    fwd_bwd = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))
    sync = jax.block_until_ready
    t_fwd = time_calls(lambda: fwd(q, k, v, g), sync, iters, repeats)
    t_fwd_bwd = time_calls(lambda: fwd_bwd(q, k, v, g), sync, iters, repeats)
    return t_fwd, t_fwd_bwd


def fla_available() -> Optional[str]:
    """None if FLA can be timed here, else the reason it cannot."""
    try:
        import torch
        from fla.ops.gla import chunk_gla  # noqa: F401
    except Exception as err:  # ImportError, or a broken triton/torch install
        return f"fla not importable ({type(err).__name__}: {err})"
    if not torch.cuda.is_available():
        return "no CUDA device for torch"
    return None


def time_fla(inputs: dict[str, np.ndarray], repeats: int) -> tuple[float, float]:
    """Seconds per forward and forward+backward of FLA ``chunk_gla`` (median, CUDA events)."""
    import torch
    import triton
    from fla.ops.gla import chunk_gla

    def to_torch(name: str, grad: bool) -> "torch.Tensor":
        array = inputs[name]
        tensor = torch.from_numpy(np.asarray(array, dtype=np.float32)).cuda()
        if array.dtype != np.float32:
            tensor = tensor.to(torch.bfloat16 if array.dtype == jnp.bfloat16 else torch.float16)
        return tensor.requires_grad_(grad)

    q, k, v = (to_torch(n, True) for n in ("q", "k", "v"))
    g = to_torch("log_g", True)
    do = to_torch("do", False)

    def fwd():
        with torch.no_grad():
            return chunk_gla(q, k, v, g)[0]

    def fwd_bwd():
        o = chunk_gla(q, k, v, g)[0]
        o.backward(do)
        return o

    fwd(); fwd_bwd(); torch.cuda.synchronize()  # Triton autotuning, outside the timings
    ms_fwd = triton.testing.do_bench(fwd, warmup=100, rep=200 * repeats, return_mode="median")
    ms_fwd_bwd = triton.testing.do_bench(fwd_bwd, warmup=100, rep=200 * repeats,
                                         grad_to_none=[q, k, v, g], return_mode="median")
    return ms_fwd / 1e3, ms_fwd_bwd / 1e3


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
    parser.add_argument("--no-fla", action="store_true", help="do not time FLA even if importable")
    parser.add_argument("--out", default=str(DEFAULT_RESULTS), help="JSON-lines file to append to")
    args = parser.parse_args(argv)
    unknown = [s for s in args.shapes.split(",") if s not in SHAPE_SETS]
    if unknown:
        parser.error(f"unknown shape set(s) {unknown}; valid: {', '.join(SHAPE_SETS)}")
    return args


def default_backends() -> list[str]:
    """Every registered backend (the scan is included where the size permits)."""
    return list(gla_kernels.BACKENDS)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    backends = default_backends() if args.backends == "auto-available" else args.backends.split(",")
    shapes = [s for name in args.shapes.split(",") for s in SHAPE_SETS[name]]
    fla_reason = "disabled by --no-fla" if args.no_fla else fla_available()
    print(f"device: {jax.devices()[0].device_kind}; jax {jax.__version__}; backends: {backends}; "
          f"FLA: {'timed in this run' if fla_reason is None else fla_reason}", flush=True)

    records, rows = [], []

    def keep(record: dict[str, Any]) -> None:
        # Written at once, so a run stopped part-way keeps every figure it measured.
        records.append(record)
        append_records([record], args.out)

    for shape in shapes:
        tokens = shape.B * shape.T
        inputs = make_inputs(shape, args.dtype)
        baseline = None
        if fla_reason is None:
            t_fwd, t_fwd_bwd = time_fla(inputs, args.repeats)
            baseline = {"name": "fla.chunk_gla", "fwd_tokens_per_s": tokens / t_fwd,
                        "fwd_bwd_tokens_per_s": tokens / t_fwd_bwd}
            keep(make_record(name=f"gla/{shape.label}", backend="fla_triton",
                                       shape=shape.as_dict(), dtype=args.dtype,
                                       fwd_tokens_per_s=tokens / t_fwd,
                                       fwd_bwd_tokens_per_s=tokens / t_fwd_bwd))
            rows.append((shape.label, "fla_triton", tokens / t_fwd, tokens / t_fwd_bwd, 1.0, 1.0))
        for backend in backends:
            if backend == "scan" and tokens > SCAN_MAX_TOKENS:
                continue
            try:
                t_fwd, t_fwd_bwd = time_jax_backend(backend, inputs, args.chunk_size, args.iters,
                                                    args.repeats)
            except Exception as err:  # report and go on: one failing backend must not lose the rest
                print(f"{shape.label} {backend}: FAILED {type(err).__name__}: {err}", flush=True)
                continue
            fwd, fwd_bwd = tokens / t_fwd, tokens / t_fwd_bwd
            keep(make_record(name=f"gla/{shape.label}", backend=backend,
                                       shape=shape.as_dict(), dtype=args.dtype,
                                       fwd_tokens_per_s=fwd, fwd_bwd_tokens_per_s=fwd_bwd,
                                       baseline=baseline, extra={"chunk_size": args.chunk_size}))
            rows.append((shape.label, backend, fwd, fwd_bwd,
                         fwd / baseline["fwd_tokens_per_s"] if baseline else None,
                         fwd_bwd / baseline["fwd_bwd_tokens_per_s"] if baseline else None))
            print(f"{shape.label} {backend}: fwd {fwd / 1e6:.2f} Mtok/s, fwd+bwd {fwd_bwd / 1e6:.2f} Mtok/s",
                  flush=True)

    def fmt(x: Optional[float], scale: float = 1e6, spec: str = ".2f") -> str:
        return "-" if x is None else format(x / scale, spec)

    print(f"\n{len(records)} records appended to {args.out}\n")
    print("| shape | backend | fwd Mtok/s | fwd+bwd Mtok/s | fwd / FLA | fwd+bwd / FLA |")
    print("|---|---|---|---|---|---|")
    for label, backend, fwd, fwd_bwd, r_fwd, r_fwd_bwd in rows:
        print(f"| {label} | {backend} | {fmt(fwd)} | {fmt(fwd_bwd)} | {fmt(r_fwd, 1, '.2f')} | "
              f"{fmt(r_fwd_bwd, 1, '.2f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
