"""Read scalars back from TensorBoard event files (those the trainer writes with tensorboardX).

An event file is a TFRecord stream: ``uint64 length, uint32 crc(length), bytes[length] data,
uint32 crc(data)``, each data an ``Event`` protocol buffer. The protobuf classes come from
tensorboardX (a core dependency), so neither TensorFlow nor the tensorboard package is needed.
CRCs are not checked; a truncated last record (a run still writing) ends the file quietly.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterator


def _records(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                return
            yield data


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` sorted by step from every event file under ``logdir``
    (searched recursively); a step logged twice (a resumed run) keeps the last value written."""
    from tensorboardX.proto import event_pb2

    logdir = Path(logdir)
    if not logdir.exists():
        raise FileNotFoundError(f"TensorBoard log directory {logdir} does not exist")
    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(logdir.rglob("*tfevents*"), key=lambda p: (p.stat().st_mtime, p.name)):
        for data in _records(path):
            event = event_pb2.Event.FromString(data)
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    x = float(value.simple_value)
                elif value.HasField("tensor") and value.tensor.float_val:
                    x = float(value.tensor.float_val[0])
                else:
                    continue
                scalars.setdefault(value.tag, {})[int(event.step)] = x
    return {tag: sorted(points.items()) for tag, points in scalars.items()}
