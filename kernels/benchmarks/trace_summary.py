"""Device time per kernel from a JAX profiler trace (``jax.profiler.ProfileData``, no
TensorBoard needed), shared by the kernel profiler (`kernels/benchmarks/gla_profile.py`) and the
train-step profiler (`small_e_jax/eval/profile_step.py`).

Every event on a device plane (``/device:GPU:*``, ``/device:TPU:*``) is a kernel; its time is
totalled by kernel name and by the JAX name scope of the HLO op that launched it (``scope_of``
decides how a scope is cut, the caller passes it).
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Iterable


def _stats(event: Any) -> dict[str, Any]:
    try:
        return {name: value for name, value in event.stats}
    except Exception:  # noqa: BLE001 - stats are best-effort metadata
        return {}


def summarize(xplane_path: str, depth: int = 4,
              scope_of: Callable[[str, int], str] | None = None) -> dict[str, Any]:
    """Device time by kernel and by scope (ns) from one ``.xplane.pb``."""
    from jax.profiler import ProfileData

    data = ProfileData.from_file(xplane_path)
    by_kernel: collections.Counter = collections.Counter()
    by_scope: collections.Counter = collections.Counter()
    total = 0.0
    line_names: set[str] = set()
    device_planes = [p for p in data.planes if p.name.startswith("/device:")]
    for plane in device_planes:
        for line in plane.lines:
            line_names.add(line.name)
            # XLA:GPU lines: one per stream, plus summary lines ("XLA Ops", "XLA Modules", ...)
            # that repeat the kernels; keep the stream lines only.
            if not line.name.lower().startswith("stream"):
                continue
            for ev in line.events:
                ns = float(ev.duration_ns)
                total += ns
                by_kernel[ev.name] += ns
                stats = _stats(ev)
                op = stats.get("tf_op") or stats.get("name") or stats.get("hlo_op") or ""
                by_scope[scope_of(str(op), depth) if scope_of else str(op)] += ns
    host: collections.Counter = collections.Counter()
    if not device_planes:
        for plane in data.planes:
            for line in plane.lines:
                if line.name.startswith("tf_XLA"):
                    for ev in line.events:
                        host[ev.name] += float(ev.duration_ns)
    return {"device_planes": [p.name for p in device_planes], "lines": sorted(line_names), "total_ns": total,
            "by_kernel": by_kernel, "by_scope": by_scope, "host": host}


def table(title: str, counts: collections.Counter, total: float, top: int, steps: int) -> Iterable[str]:
    yield f"\n{title} (ms per step, share of device time)"
    for name, ns in counts.most_common(top):
        yield f"  {ns / steps / 1e6:9.3f} ms  {ns / max(total, 1):6.1%}  {name[:140]}"
