"""Where the train step's time goes: trace a few steps and total the device time per kernel and
per model scope.

    python -m benchmarks.profile_step --config small_e_librilight_medium --shape 8x4096 \\
        [--steps 3] [--top 25] [--depth 4] [--out profile.json] [--trace-dir DIR] [key=value ...]

The step is :meth:`small_e_jax.train.Trainer.step` on a synthetic full batch (as
:mod:`benchmarks.throughput`). The trace is read back with ``jax.profiler.ProfileData``
(no TensorBoard needed): every event on the device planes (``/device:GPU:*``, ``/device:TPU:*``)
is a kernel; its time is totalled (1) by kernel name and (2) by the JAX name scope of the HLO op
that launched it (the ``tf_op`` / ``name`` stat, e.g. ``jit(step)/.../decoder/...``), cut to
``--depth`` components after the transformation prefixes, so that "GLA kernel", "projections",
"loss" and "optimizer" can be told apart. A timeline line says how many kernels a step launches
and how long the device sat idle between them (launch gaps vs host stalls). On a CPU there is
no device plane: the command says so and prints the host's busiest XLA events instead.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Optional

import jax

from benchmarks.kernels.trace_summary import report_lines, run_traced, summarize
from small_e_jax.config import ConfigError, load_config
from benchmarks.throughput import parse_shapes, synthetic_batch
from small_e_jax.cli import ArgumentParser, entry_point

_TRANSFORM = re.compile(r"^(jit|jvp|transpose|vmap|remat|checkpoint|pjit|custom_vjp_call|custom_jvp_call|"
                        r"while|body|cond|scan|closed_call|core_call)(\(.*\))?$")


def scope_of(op_name: str, depth: int) -> str:
    """``jit(step)/jvp(SmallE)/decoder/3/mixer/dot_general`` -> ``decoder/3/mixer`` (depth 3).

    Transformation wrappers (``jit(...)``, ``jvp(...)``, ``transpose(...)``...) are dropped;
    the backward pass keeps a ``bwd:`` mark so forward and backward time stay apart."""
    parts = [p for p in op_name.split("/") if p]
    backward = any(p.startswith("transpose(") for p in parts)
    kept = [p for p in parts if not _TRANSFORM.match(p)]
    scope = "/".join(kept[:depth]) or "(unscoped)"
    return ("bwd:" if backward else "") + scope


_HLO_LINE = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{([^}]*)\}')
_META = re.compile(r'(\w+)="([^"]*)"|(\w+)=(\d+)')


def hlo_origins(hlo_text: str) -> dict[str, str]:
    """Kernel name -> "op_name (file:line)" from the optimized HLO's metadata.

    GPU kernels are named after their HLO instruction with '.' replaced by '_'
    (``input_reduce_fusion.73`` runs as ``input_reduce_fusion_73``)."""
    origins: dict[str, str] = {}
    for line in hlo_text.splitlines():
        m = _HLO_LINE.match(line)
        if not m:
            continue
        meta = {}
        for k1, v1, k2, v2 in _META.findall(m.group(2)):
            meta[k1 or k2] = v1 or v2
        if "op_name" not in meta:
            continue
        where = meta["op_name"]
        if "source_file" in meta:
            where += f" ({meta['source_file'].rsplit('/', 1)[-1]}:{meta.get('source_line', '?')})"
        origins.setdefault(m.group(1).replace(".", "_").replace("-", "_"), where)
    return origins


@entry_point
def main(argv: Optional[list[str]] = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="small_e_librilight_medium")
    p.add_argument("--shape", default="8x4096", help="BxT")
    p.add_argument("--text-len", type=int, default=300)
    p.add_argument("--steps", type=int, default=3, help="steps traced (after compile and one warm-up)")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--depth", type=int, default=4, help="name-scope components kept")
    p.add_argument("--trace-dir", default=None, help="keep the trace here (default: a temporary dir)")
    p.add_argument("--out", default=None, help="write the summary as JSON here")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        (batch, frames), = parse_shapes(args.shape)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from small_e_jax import gpu_graphs
    from small_e_jax.train import Trainer

    if config.trainer.cuda_graphs:  # profile the step the trainer runs
        gpu_graphs.enable_cuda_graphs()
    trainer = Trainer(config)
    state = trainer.init_state()
    data = trainer.shard_batch(synthetic_batch(config, batch, frames, args.text_len))
    for _ in range(2):  # compile + warm-up
        state, metrics = trainer.step(state, data)
    jax.block_until_ready(metrics["loss"])
    def run(state=state):
        for _ in range(args.steps):
            state, metrics = trainer.step(state, data)
        jax.block_until_ready(metrics["loss"])
        return state

    try:
        state, path = run_traced(run, prefix="small_e_trace_", trace_dir=args.trace_dir)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    s = summarize(path, args.depth, scope_of)
    try:  # where each kernel comes from (the compile is a cache hit under the persistent cache)
        origins = hlo_origins(trainer.compiled_step(state, data).as_text())
    except Exception as e:  # noqa: BLE001 - the origins are a convenience, never fatal
        print(f"(no HLO origins: {type(e).__name__}: {e})")
        origins = {}
    print(f"{config.name} B={batch} T={frames}: {args.steps} steps traced; device planes: {s['device_planes']}")
    if s["device_planes"]:
        print(f"device lines: {s['lines']}")
    for line in report_lines(s, args.steps, args.top, lambda: origins):
        print(line)
    if args.out:
        summary = {"config": config.name, "B": batch, "T": frames, "steps": args.steps,
                   "overrides": args.overrides, "device": jax.devices()[0].device_kind,
                   "device_ms_per_step": s["total_ns"] / args.steps / 1e6,
                   "timeline_per_step": {k: v / args.steps for k, v in s["timeline"].items()},
                   "by_scope_ms": {k: v / args.steps / 1e6 for k, v in s["by_scope"].most_common(60)},
                   "by_kernel_ms": {k: v / args.steps / 1e6 for k, v in s["by_kernel"].most_common(60)},
                   "kernel_origins": {k: origins.get(k) for k, _ in s["by_kernel"].most_common(60)}}
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
