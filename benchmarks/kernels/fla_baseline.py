"""FLA's Triton ``chunk_gla`` timed in its own process, so it can be given a time limit.

    python -m benchmarks.kernels.fla_baseline --B 8 --T 4096 --H 4 --Dk 128 --Dv 256 [--dtype bfloat16]

prints one JSON line ``{"fwd_s": ..., "fwd_bwd_s": ..., "fwd_graph_s": ..., "fwd_bwd_graph_s":
..., "kernels": {...}}`` (median seconds per call, CUDA events via ``triton.testing.do_bench``)
or ``{"error": "..."}``. The first call of a shape runs FLA's Triton autotuning, which can take
minutes; it stays outside the timings. Inputs are the same random arrays as the JAX side's
(``gla_bench.make_inputs``, same seed).

Two timings of the same calls. *Eager* (``fwd_s``): ``chunk_gla`` called from Python, as its
users call it; each call launches several Triton kernels and torch ops through Python, and when
that launching takes longer than the kernels run, the GPU waits and the time is the host's (on
the H200 machines the same forward measured 0.48 ms in some runs and 0.83 ms in others, same
autotuned configs: host speed). *Graph* (``fwd_graph_s``): the same calls captured once in a CUDA
graph and replayed, so the time is the kernels' alone: FLA at its best, the strict baseline
(the JAX side is one compiled program per call, dispatched asynchronously, so it is timed the
same way). ``kernels`` lists the CUDA kernels of each call with their mean milliseconds
(torch.profiler), to compare stage by stage.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any, Callable, Optional

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


def time_fla(inputs: dict[str, np.ndarray], repeats: int) -> dict[str, Any]:
    """Seconds per forward and forward+backward of FLA ``chunk_gla`` (medians), eager and
    replayed from a CUDA graph, and the kernels of each (see the module docstring)."""
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

    def grads():  # the work of fwd_bwd, with fresh gradient tensors (capturable in a graph)
        return torch.autograd.grad(chunk_gla(q, k, v, g)[0], (q, k, v, g), do)

    print("FLA: first calls (Triton autotuning)...", file=sys.stderr, flush=True)
    fwd(); fwd_bwd(); torch.cuda.synchronize()
    bench = functools.partial(triton.testing.do_bench, warmup=100, rep=200 * repeats,
                              return_mode="median")
    result: dict[str, Any] = {
        "fwd_s": bench(fwd) / 1e3,
        "fwd_bwd_s": bench(fwd_bwd, grad_to_none=[q, k, v, g]) / 1e3,
    }
    try:
        result["fwd_graph_s"] = bench(capture_graph(fwd).replay) / 1e3
        result["fwd_bwd_graph_s"] = bench(capture_graph(grads).replay) / 1e3
    except Exception as err:  # report it; the eager figures stand on their own
        result["graph_error"] = f"{type(err).__name__}: {err}"[:500]
    result["kernels"] = {"fwd": kernel_breakdown(fwd), "fwd_bwd": kernel_breakdown(grads)}
    return result


def capture_graph(fn: Callable[[], Any]) -> Any:
    """``fn``'s kernels captured in a CUDA graph (after warm-up calls on a side stream, as
    torch's documentation requires); ``graph.replay()`` then reruns them without Python."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    torch.cuda.synchronize()
    return graph


def kernel_breakdown(fn: Callable[[], Any], calls: int = 20) -> list[list]:
    """[[kernel name, mean ms per call], ...] of ``fn``'s CUDA kernels, busiest first."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    fn(); torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    totals: dict[str, float] = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            name = event.name[:80]
            totals[name] = totals.get(name, 0.0) + event.time_range.elapsed_us() / 1e3
    return [[name, round(ms / calls, 4)] for name, ms in
            sorted(totals.items(), key=lambda item: -item[1])]


def main(argv: Optional[list[str]] = None) -> int:
    from benchmarks.kernels.shapes import Shape, make_inputs

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
    print(json.dumps(time_fla(make_inputs(shape, args.dtype), args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
