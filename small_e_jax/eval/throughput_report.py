"""Read training-throughput records (JSON lines) and tabulate time per token against T.

Records are in the repository's benchmark format (``benchmarks/record.py``), as the
training-throughput benchmark writes them. Fields are looked up at the top level, then in
``shape``, then in ``extra``, so both flat records (``{"model", "T", "frames_per_s", "step_ms",
"peak_mem_gb", ...}``) and record.py's nested ones (``shape: {"B", "T"}``,
``fwd_bwd_tokens_per_s``) work:

* series label: ``model``, else ``name`` (plus ``backend`` if given); the device is kept apart;
* ``T``: frames per sequence; ``B``: sequences per step (optional);
* audio frames/s: ``frames_per_s``, else ``fwd_bwd_tokens_per_s`` (a training step is forward +
  backward), else ``B * T / step``;
* time per frame (µs) = 1e6 / frames/s; ``peak_mem_gb`` if present.

A record without T or without any rate is reported as skipped, never guessed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence


@dataclasses.dataclass
class ThroughputPoint:
    model: str
    device: str
    T: int
    B: Optional[int]
    frames_per_s: float
    step_ms: Optional[float]
    peak_mem_gb: Optional[float]

    @property
    def us_per_frame(self) -> float:
        return 1e6 / self.frames_per_s


def _field(record: Mapping[str, Any], *names: str) -> Any:
    for where in (record, record.get("shape") or {}, record.get("extra") or {}):
        for name in names:
            if isinstance(where, Mapping) and where.get(name) is not None:
                return where[name]
    return None


def parse_record(record: Mapping[str, Any]) -> Optional[ThroughputPoint]:
    """One JSON record -> a point, or None if it lacks T or a rate."""
    T = _field(record, "T", "frames", "seq_len")
    B = _field(record, "B", "batch", "batch_size")
    step_ms = _field(record, "step_ms")
    if step_ms is None and _field(record, "step_s") is not None:
        step_ms = 1e3 * float(_field(record, "step_s"))
    rate = _field(record, "frames_per_s", "fwd_bwd_tokens_per_s", "tokens_per_s")
    if rate is None and step_ms and B and T:
        rate = float(B) * float(T) / (float(step_ms) / 1e3)
    if T is None or rate is None or float(rate) <= 0:
        return None
    label = record.get("model") or _field(record, "model")
    if label is None:
        label = str(record.get("name", "?")) + (f" ({record['backend']})" if record.get("backend") else "")
    return ThroughputPoint(model=str(label), device=str(record.get("device") or "?"), T=int(T),
                           B=None if B is None else int(B), frames_per_s=float(rate),
                           step_ms=None if step_ms is None else float(step_ms),
                           peak_mem_gb=_field(record, "peak_mem_gb"))


def read_jsonl(paths: Iterable[str | Path], match: Optional[str] = None) -> tuple[list[ThroughputPoint], list[str]]:
    """All points of the given JSON-lines files, and a reason for each line skipped.

    ``match``: keep only records whose series label contains this substring (a shared results
    file also holds kernel benchmarks, which are not training steps)."""
    points, skipped = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"throughput file {path} does not exist")
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                skipped.append(f"{path}:{n}: not JSON ({err.msg})")
                continue
            point = parse_record(record) if isinstance(record, dict) else None
            if point is None:
                skipped.append(f"{path}:{n}: no T or no throughput field")
            elif match is None or match in point.model:
                points.append(point)
    return points, skipped


def series(points: Sequence[ThroughputPoint]) -> dict[tuple[str, str], list[ThroughputPoint]]:
    """Points grouped by (model, device), sorted by T; a repeated T keeps the last record."""
    groups: dict[tuple[str, str], dict[int, ThroughputPoint]] = {}
    for p in points:
        groups.setdefault((p.model, p.device), {})[p.T] = p
    return {key: [g[t] for t in sorted(g)] for key, g in groups.items()}


def scaling_summary(points: Sequence[ThroughputPoint]) -> list[dict[str, Any]]:
    """Per series: the T range and the growth of time per frame over it (1.0 = linear total
    cost in T, as GLA should be; a quadratic-attention model grows with T)."""
    out = []
    for (model, device), pts in series(points).items():
        first, last = pts[0], pts[-1]
        out.append({"model": model, "device": device, "T_min": first.T, "T_max": last.T,
                    "us_per_frame_min_T": first.us_per_frame, "us_per_frame_max_T": last.us_per_frame,
                    "growth": last.us_per_frame / first.us_per_frame})
    return out
