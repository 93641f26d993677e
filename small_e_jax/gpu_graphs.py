"""CUDA graphs for a process's GPU programs (XLA command buffers), set before JAX starts.

A training step of the GLA model is a few thousand small kernels (projections, gates, the
chunked GLA's Pallas kernels, norms). Launched one by one from the host, the GPU waits between
them, and how long depends on the host: on one H200 machine the 12 x 2048 step of
`small_e_librilight_medium` ran at 352K frames/s without graphs and **498K with them** (same
machine, same session, `benchmarks/RESULTS.md`, eighth GPU session); the transformer baseline, fewer
and larger kernels, went 502K -> 565K. XLA's command buffers record the step's kernels
(fusions, cuBLAS/cuBLASLt GEMMs, custom calls - our Pallas kernels - and cuDNN attention) as
CUDA graphs once and replay them, so the host issues a handful of launches per step.

XLA reads ``XLA_FLAGS`` once, when JAX initialises its backend, so `enable_cuda_graphs` must run
before the first device call; the entry points call it right after parsing their config
(``trainer.cuda_graphs``, default on). The flags are GPU options: CPU and TPU ignore them.
"""

from __future__ import annotations

import os
import sys
from typing import MutableMapping

# Everything but while loops and conditionals: the training step has none worth a graph, and
# min size 1 lets even a short run of kernels between two non-capturable ops become a graph.
COMMAND_BUFFER_FLAGS = (
    "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN",
    "--xla_gpu_graph_min_graph_size=1",
)


def _flag_name(flag: str) -> str:
    return flag.split("=", 1)[0]


def enable_cuda_graphs(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Append `COMMAND_BUFFER_FLAGS` to ``environ["XLA_FLAGS"]``; True if anything was added.

    A flag the user already set in ``XLA_FLAGS`` is left as they set it (theirs wins, e.g.
    ``--xla_gpu_enable_command_buffer=`` to turn graphs off for one run). When JAX's backends
    already exist in this process (``main()`` called from a notebook that used JAX), flags set
    now would not apply: nothing is changed and a warning says so.
    """
    current = environ.get("XLA_FLAGS", "")
    present = {_flag_name(token) for token in current.split()}
    missing = [flag for flag in COMMAND_BUFFER_FLAGS if _flag_name(flag) not in present]
    if not missing:
        return False
    if environ is os.environ and _backends_initialized():
        print("warning: trainer.cuda_graphs: JAX's backend is already running in this process, "
              "so XLA flags cannot change now; steps launch their kernels one by one",
              file=sys.stderr)
        return False
    environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    return True


def _backends_initialized() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - JAX is a dependency; keep the helper importable
        return False
    check = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(check and check())
