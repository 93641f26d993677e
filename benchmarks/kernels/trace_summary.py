"""Device time per kernel from a JAX profiler trace (``jax.profiler.ProfileData``, no
TensorBoard needed), shared by the kernel profiler (`benchmarks/kernels/gla_profile.py`) and the
train-step profiler (`small_e_jax/eval/profile_step.py`).

Every event on a device plane (``/device:GPU:*``, ``/device:TPU:*``) is a kernel; its time is
totalled by kernel name and by the JAX name scope of the HLO op that launched it (``scope_of``
decides how a scope is cut, the caller passes it). ``timeline`` says how busy the device was
between its first and last kernel: how many kernels, how much idle time and in what gaps (many
small gaps = launch-bound; a few large ones = the host or a synchronisation).
"""

from __future__ import annotations

import collections
import glob
import tempfile
from typing import Any, Callable, Iterable, Optional


def _stats(event: Any) -> dict[str, Any]:
    try:
        return {name: value for name, value in event.stats}
    except Exception:  # noqa: BLE001 - stats are best-effort metadata
        return {}


def run_traced(run: Callable[[], Any], *, prefix: str, trace_dir: Optional[str] = None,
               parent: Optional[str] = None) -> tuple[Any, str]:
    """``run()`` (which must wait for its device work) under ``jax.profiler``, into
    ``trace_dir`` (default: a new temporary folder, in ``parent`` if given, named ``prefix``...).
    Returns (its result, the newest ``.xplane.pb`` written); RuntimeError if there is none."""
    import jax

    trace_dir = trace_dir or tempfile.mkdtemp(prefix=prefix, dir=parent)
    with jax.profiler.trace(trace_dir):
        result = run()
    paths = sorted(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True))
    if not paths:
        raise RuntimeError(f"no .xplane.pb written under {trace_dir}")
    return result, paths[-1]


SHORT_KERNEL_NS = 10_000  # kernels shorter than this are likely launch-bound
LARGE_GAP_NS = 100_000  # idle gaps longer than this are not launch latency


def timeline(intervals: Iterable[tuple[float, float]], short_ns: float = SHORT_KERNEL_NS,
             large_gap_ns: float = LARGE_GAP_NS) -> dict[str, float]:
    """Busy/idle accounting of kernel intervals (start, end) in ns, any order, overlaps allowed
    (several streams): kernels, span (first start to last end), busy (their union), idle (span -
    busy), the short kernels (< short_ns: count and time) and the idle gaps (count, and count
    and time of those > large_gap_ns)."""
    spans = sorted((float(a), float(b)) for a, b in intervals)
    stats = {"kernels": len(spans), "span_ns": 0.0, "busy_ns": 0.0, "idle_ns": 0.0,
             "short_kernels": 0, "short_kernel_ns": 0.0, "gaps": 0, "large_gaps": 0,
             "large_gap_ns": 0.0}
    if not spans:
        return stats
    for a, b in spans:
        if b - a < short_ns:
            stats["short_kernels"] += 1
            stats["short_kernel_ns"] += b - a
    cur_start, cur_end = spans[0]
    for a, b in spans[1:]:
        if a > cur_end:  # an idle gap
            gap = a - cur_end
            stats["gaps"] += 1
            if gap > large_gap_ns:
                stats["large_gaps"] += 1
                stats["large_gap_ns"] += gap
            stats["busy_ns"] += cur_end - cur_start
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    stats["busy_ns"] += cur_end - cur_start
    stats["span_ns"] = cur_end - spans[0][0]
    stats["idle_ns"] = stats["span_ns"] - stats["busy_ns"]
    return stats


def timeline_lines(t: dict[str, float], steps: int) -> Iterable[str]:
    """``timeline`` per step, for a console report."""
    per = lambda key: t[key] / steps / 1e6  # noqa: E731 - ms per step
    yield (f"timeline per step: {t['kernels'] / steps:.0f} kernels ({t['short_kernels'] / steps:.0f} "
           f"shorter than {SHORT_KERNEL_NS / 1e3:.0f} us, {per('short_kernel_ns'):.2f} ms); device busy "
           f"{per('busy_ns'):.2f} ms of a {per('span_ns'):.2f} ms span; idle {per('idle_ns'):.2f} ms in "
           f"{t['gaps'] / steps:.0f} gaps, {per('large_gap_ns'):.2f} ms of it in "
           f"{t['large_gaps'] / steps:.1f} gaps over {LARGE_GAP_NS / 1e3:.0f} us")


def summarize(xplane_path: str, depth: int = 4,
              scope_of: Callable[[str, int], str] | None = None) -> dict[str, Any]:
    """Device time by kernel and by scope (ns) from one ``.xplane.pb``."""
    from jax.profiler import ProfileData

    data = ProfileData.from_file(xplane_path)
    by_kernel: collections.Counter = collections.Counter()
    by_scope: collections.Counter = collections.Counter()
    total = 0.0
    intervals: list[tuple[float, float]] = []
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
                intervals.append((float(ev.start_ns), float(ev.start_ns) + ns))
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
            "by_kernel": by_kernel, "by_scope": by_scope, "host": host, "timeline": timeline(intervals)}


def table(title: str, counts: collections.Counter, total: float, top: int, steps: int) -> Iterable[str]:
    yield f"\n{title} (ms per step, share of device time)"
    for name, ns in counts.most_common(top):
        yield f"  {ns / steps / 1e6:9.3f} ms  {ns / max(total, 1):6.1%}  {name[:140]}"


def origin_lines(by_kernel: collections.Counter, steps: int, top: int, origins: dict[str, str],
                 name_width: int = 60, origin_width: int = 200) -> Iterable[str]:
    """The ``top`` kernels (ms per step) with where each comes from (``origins``: kernel name ->
    JAX op and source, e.g. ``benchmarks.profile_step.hlo_origins``; '?' when unknown)."""
    for name, ns in by_kernel.most_common(top):
        yield f"  {ns / steps / 1e6:9.3f} ms  {name[:name_width]}  <- {origins.get(name, '?')[:origin_width]}"


def report_lines(summary: dict[str, Any], steps: int, top: int,
                 origins: Callable[[], dict[str, str]]) -> Iterable[str]:
    """Console report of ``steps`` traced steps (``summarize``'s ``summary``): with a device
    plane, the device time per step, the busy/idle timeline, the busiest scopes and kernels and
    where those kernels come from (``origins()``, called only then); without one (a CPU run),
    the busiest host XLA events."""
    if not summary["device_planes"]:
        yield "no device plane (CPU run): the busiest host XLA events instead"
        yield from table("host events", summary["host"], sum(summary["host"].values()), top, steps)
        return
    yield f"device time per step: {summary['total_ns'] / steps / 1e6:.2f} ms"
    # Traced steps run back to back (as in training): idle time here is the device waiting for
    # the host's launches or for a synchronisation, not for the next step.
    yield from timeline_lines(summary["timeline"], steps)
    yield from table("by scope", summary["by_scope"], summary["total_ns"], top, steps)
    yield from table("by kernel", summary["by_kernel"], summary["total_ns"], top, steps)
    yield "\nwhere the top kernels come from (optimized HLO metadata)"
    yield from origin_lines(summary["by_kernel"], steps, top, origins())
