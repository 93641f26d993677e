"""Read scalars back from TensorBoard event files (those the trainer writes with tensorboardX).

Why the library: tensorboard's own ``EventMultiplexer``/``EventAccumulator`` is the reader
TensorBoard itself uses; it checks record CRCs, reads every event file of a run in order, and
discards the orphaned steps of a run that restarted from an earlier checkpoint (a resumed run
logs some steps twice: the later values win). It replaces a hand-written TFRecord parser.
"""

from __future__ import annotations

from pathlib import Path


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` sorted by step from every event file under ``logdir``
    (searched recursively; tags of several runs are merged, a step's last value kept)."""
    from tensorboard.backend.event_processing import event_accumulator, event_multiplexer

    logdir = Path(logdir)
    if not logdir.exists():
        raise FileNotFoundError(f"TensorBoard log directory {logdir} does not exist")
    multiplexer = event_multiplexer.EventMultiplexer(size_guidance={event_accumulator.SCALARS: 0})  # 0: keep all
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    scalars: dict[str, dict[int, float]] = {}
    for run in sorted(multiplexer.Runs()):
        accumulator = multiplexer.GetAccumulator(run)
        for tag in accumulator.Tags()[event_accumulator.SCALARS]:
            for event in accumulator.Scalars(tag):
                scalars.setdefault(tag, {})[int(event.step)] = float(event.value)
    return {tag: sorted(points.items()) for tag, points in scalars.items()}
