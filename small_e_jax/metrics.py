"""Training metrics: throughput from a batch, and a logger that writes scalars to the console
(a tqdm bar with ETA plus a line every ``log_every`` steps) and to TensorBoard (tensorboardX).
Only process 0 writes; other processes get a logger that does nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def batch_counts(batch: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Host-side counts of one (local) batch: real audio frames (delayed columns), padded
    columns, and the padding fraction. audio_mask: [B, L] bool."""
    mask = np.asarray(batch["audio_mask"])
    real = float(mask.sum())
    return {"frames": real, "columns": float(mask.size), "padding": 1.0 - real / max(mask.size, 1)}


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Vectors such as ``loss_per_codebook`` [Q] become ``loss/codebook_0`` ... scalars."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        value = np.asarray(value)
        if value.ndim == 0:
            out[key] = float(value)
        else:
            stem = key.removesuffix("_per_codebook")
            for k, v in enumerate(value.reshape(-1)):
                out[f"{stem}/codebook_{k}"] = float(v)
    return out


class MetricLogger:
    """Console + TensorBoard. ``update(step, scalars)`` each step; ``write(step, scalars,
    prefix)`` for a logged line; ``close()`` at the end."""

    def __init__(self, workdir: str | Path, total_steps: int, start_step: int, *, enabled: bool,
                 progress_bar: bool, tensorboard: bool):
        self.enabled = enabled
        self.bar = None
        self.writer = None
        if not enabled:
            return
        if progress_bar:
            from tqdm import tqdm
            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                            mininterval=1.0, desc="train")
        if tensorboard:
            from tensorboardX import SummaryWriter
            self.writer = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def update(self, step: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def write(self, step: int, scalars: Mapping[str, float], prefix: str) -> None:
        if not self.enabled:
            return
        keys = ("loss", "perplexity", "grad_norm", "learning_rate", "frames_per_s", "codes_per_s",
                "step_time_s")
        line = " ".join(f"{k}={scalars[k]:.4g}" for k in keys if k in scalars)
        message = f"[{prefix} step {step}] {line or ' '.join(f'{k}={v:.4g}' for k, v in scalars.items())}"
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, step)
            self.writer.flush()

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


class Throughput:
    """Audio frames/s and codes/s over the steps since the last ``rate()`` call."""

    def __init__(self, n_codebooks: int):
        self.n_codebooks = n_codebooks
        self.frames = 0.0
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, frames: float) -> None:
        self.frames += frames
        self.steps += 1

    def rate(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        out = {"frames_per_s": self.frames / elapsed, "codes_per_s": self.n_codebooks * self.frames / elapsed,
               "step_time_s": elapsed / max(self.steps, 1)}
        self.frames, self.steps, self.start = 0.0, 0, time.perf_counter()
        return out
