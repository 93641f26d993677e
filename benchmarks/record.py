"""The one record format for every benchmark in the repository (``benchmarks/results.jsonl``).

Each measurement is one JSON line::

    {"name": ..., "backend": ..., "shape": {...}, "dtype": ..., "fwd_tokens_per_s": ...,
     "fwd_bwd_tokens_per_s": ..., "baseline": {"name": ..., "fwd_tokens_per_s": ...,
     "fwd_bwd_tokens_per_s": ...} | null, "device": ..., "jax_version": ..., "commit": ...,
     "date": ..., "command": ..., "extra": {...}}

A missing figure is ``null``, never a made-up number.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results.jsonl"  # benchmarks/results.jsonl


def current_commit() -> str:
    """The commit being measured: ``$SMALL_E_COMMIT`` (set where there is no .git), else git."""
    if os.environ.get("SMALL_E_COMMIT"):
        return os.environ["SMALL_E_COMMIT"]
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name() -> str:
    """The JAX default device, e.g. ``"gpu:NVIDIA H100 80GB HBM3"`` or ``"cpu:cpu"``."""
    import jax

    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind}"


def invocation() -> str:
    """The command line that is running, as a user would type it (``python -m pkg.mod ...``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None else ["python", sys.argv[0]]
    return " ".join(shlex.quote(a) for a in [*head, *sys.argv[1:]])


def make_record(*, name: str, backend: str, shape: Mapping[str, int], dtype: str,
                fwd_tokens_per_s: Optional[float], fwd_bwd_tokens_per_s: Optional[float],
                baseline: Optional[Mapping[str, Any]] = None,
                extra: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """One measurement with its environment (device, versions, commit, date, command)."""
    import jax

    return {
        "name": name,
        "backend": backend,
        "shape": dict(shape),
        "dtype": dtype,
        "fwd_tokens_per_s": fwd_tokens_per_s,
        "fwd_bwd_tokens_per_s": fwd_bwd_tokens_per_s,
        "baseline": dict(baseline) if baseline else None,
        "device": device_name(),
        "jax_version": jax.__version__,
        "commit": current_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": invocation(),
        "extra": dict(extra or {}),
    }


def append_records(records: Iterable[Mapping[str, Any]], path: Path | str = DEFAULT_RESULTS) -> Path:
    """Append records as JSON lines (creating the file and its folder if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for record in records:
            f.write(json.dumps(record, sort_keys=False) + "\n")
    return path
