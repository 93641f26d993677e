"""FLA's Triton ``chunk_gla`` timed in its own process, so it can be given a time limit.

    python -m kernels.benchmarks.fla_baseline --B 8 --T 4096 --H 4 --Dk 128 --Dv 256 [--dtype bfloat16]

prints one JSON line ``{"fwd_s": ..., "fwd_bwd_s": ...}`` (median seconds per call, CUDA
events via ``triton.testing.do_bench``) or ``{"error": "..."}``. The first call of a shape runs
FLA's Triton autotuning, which can take minutes; it stays outside the timings. Inputs are the
same random arrays as the JAX side's (``gla_bench.make_inputs``, same seed).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

import numpy as np


def unavailable_reason() -> Optional[str]:
    """None if FLA can be timed in this environment, else why not."""
    try:
        import torch
        from fla.ops.gla import chunk_gla  # noqa: F401
    except Exception as err:  # ImportError, or a broken triton/torch install
        return f"fla not importable ({type(err).__name__}: {err})"
    if not torch.cuda.is_available():
        return "no CUDA device for torch"
    return None


def time_fla(inputs: dict[str, np.ndarray], repeats: int) -> tuple[float, float]:
    """Seconds per forward and forward+backward of FLA ``chunk_gla`` (medians)."""
    import torch
    import triton
    from fla.ops.gla import chunk_gla

    def to_torch(name: str, grad: bool) -> "torch.Tensor":
        array = inputs[name]
        tensor = torch.from_numpy(np.asarray(array, dtype=np.float32)).cuda()
        if array.dtype.name == "bfloat16":
            tensor = tensor.to(torch.bfloat16)
        return tensor.requires_grad_(grad)

    q, k, v, g = (to_torch(n, True) for n in ("q", "k", "v", "log_g"))
    do = to_torch("do", False)

    def fwd():
        with torch.no_grad():
            return chunk_gla(q, k, v, g)[0]

    def fwd_bwd():
        o = chunk_gla(q, k, v, g)[0]
        o.backward(do)
        return o

    print("FLA: first calls (Triton autotuning)...", file=sys.stderr, flush=True)
    fwd(); fwd_bwd(); torch.cuda.synchronize()
    ms_fwd = triton.testing.do_bench(fwd, warmup=100, rep=200 * repeats, return_mode="median")
    ms_fwd_bwd = triton.testing.do_bench(fwd_bwd, warmup=100, rep=200 * repeats,
                                         grad_to_none=[q, k, v, g], return_mode="median")
    return ms_fwd / 1e3, ms_fwd_bwd / 1e3


def main(argv: Optional[list[str]] = None) -> int:
    from kernels.benchmarks.shapes import Shape, make_inputs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for dim in ("B", "T", "H", "Dk", "Dv"):
        parser.add_argument(f"--{dim}", type=int, required=True)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason is not None:
        print(json.dumps({"error": reason}))
        return 1
    shape = Shape("fla", args.B, args.T, args.H, args.Dk, args.Dv)
    fwd_s, fwd_bwd_s = time_fla(make_inputs(shape, args.dtype), args.repeats)
    print(json.dumps({"fwd_s": fwd_s, "fwd_bwd_s": fwd_bwd_s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
