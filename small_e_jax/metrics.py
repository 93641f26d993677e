"""Training metrics: throughput from a batch, and a logger that writes scalars to the console
(a tqdm bar with ETA on a terminal, plain lines with the ETA otherwise, a line every
``log_every`` steps), to TensorBoard (tensorboardX) and, if asked, to ``metrics.jsonl``. Only
process 0 writes; other processes get a logger that does nothing. The Small-E trainer and the
codec trainer (which prints its own console lines) both log through :class:`MetricLogger`."""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Optional

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


def is_terminal() -> bool:
    """Whether the console is a terminal (a progress bar's escape codes would litter a log file)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def format_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def _tensorboardx_writer(path: str) -> Any:
    from tensorboardX import SummaryWriter

    return SummaryWriter(path)


def _torch_writer(path: str) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(path)


def tensorboard_writer(path: str, *, required: bool = True) -> Any:
    """A TensorBoard writer at ``path``: tensorboardX's (``ImportError`` when it is missing), or
    with ``required=False`` tensorboardX's, else torch's, else None (nothing written)."""
    if required:
        return _tensorboardx_writer(path)
    for factory in (_tensorboardx_writer, _torch_writer):
        try:
            return factory(path)
        except Exception:  # not installed / broken install: the other outputs still have everything
            continue
    return None


class MetricLogger:
    """Console + TensorBoard (+ ``metrics.jsonl``). ``update(step, loss)`` each step;
    ``write(step, scalars, prefix)`` for a logged line; ``message(text)``; ``close()`` at the end.

    The progress bar (a terminal only, ``interactive`` None = detect) and the ETA start at the
    first ``update``, i.e. after the first step has compiled: compilation would otherwise
    count as a step's time and give an ETA of hours. Without a terminal, the logged lines carry
    the ETA instead.

    tensorboard: True (tensorboardX, required), False, or ``"if-available"`` (tensorboardX, else
      torch's writer, else none). jsonl: append ``{"step", "split": prefix, **scalars}`` to
      ``WORKDIR/metrics.jsonl`` at each ``write``. console: False leaves the console to the caller
      (``write`` prints nothing)."""

    def __init__(self, workdir: str | Path, total_steps: int, start_step: int, *, enabled: bool,
                 progress_bar: bool, tensorboard: bool | str, interactive: Optional[bool] = None,
                 jsonl: bool = False, console: bool = True):
        if tensorboard not in (True, False, "if-available"):
            raise ValueError(f"tensorboard must be True, False or 'if-available', got {tensorboard!r}")
        self.enabled = enabled
        self.total = total_steps
        self.bar: Any = None
        self.writer = None
        self.jsonl: Any = None
        self.console = console
        self.want_bar = progress_bar and (is_terminal() if interactive is None else interactive)
        self.clock: Optional[tuple[int, float]] = None  # (step, time) of the first update
        if not enabled:
            return
        if jsonl:
            self.jsonl = open(Path(workdir) / "metrics.jsonl", "a")
        if tensorboard:
            self.writer = tensorboard_writer(str(Path(workdir) / "tensorboard"), required=tensorboard is True)

    def eta(self, step: int) -> Optional[float]:
        """Seconds left at the rate since the first update; None before two updates."""
        if self.clock is None or step <= self.clock[0]:
            return None
        rate = (step - self.clock[0]) / max(time.perf_counter() - self.clock[1], 1e-9)
        return (self.total - step) / rate

    def update(self, step: int, loss: float) -> None:
        if not self.enabled:
            return
        if self.clock is None:
            self.clock = (step, time.perf_counter())
            if self.want_bar:
                from tqdm import tqdm
                self.bar = tqdm(total=self.total, initial=step, unit="step", dynamic_ncols=True,
                                mininterval=1.0, desc="train")
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def write(self, step: int, scalars: Mapping[str, float], prefix: str) -> None:
        if not self.enabled:
            return
        if self.console:
            self._console_line(step, scalars, prefix)
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, "split": prefix, **scalars}) + "\n")
            self.jsonl.flush()
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, step)
            self.writer.flush()

    def _console_line(self, step: int, scalars: Mapping[str, float], prefix: str) -> None:
        keys = ("loss", "perplexity", "grad_norm", "learning_rate", "frames_per_s", "codes_per_s",
                "step_time_s")
        line = " ".join(f"{k}={scalars[k]:.4g}" for k in keys if k in scalars)
        eta = self.eta(step) if self.bar is None and prefix == "train" else None
        message = (f"[{prefix} step {step}] "
                   f"{line or ' '.join(f'{k}={v:.4g}' for k, v in scalars.items())}"
                   + (f" eta={format_eta(eta)}" if eta is not None else ""))
        self.message(message)

    def message(self, text: str) -> None:
        if self.enabled:
            if self.bar is not None:
                self.bar.write(text)
            else:
                print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.jsonl is not None:
            self.jsonl.close()
        if self.writer is not None:
            self.writer.close()


class ValidationTrend:
    """Counts evaluations in a row whose validation loss rose; :meth:`add` returns a warning
    once ``patience`` rises in a row are reached (and again at each further rise)."""

    def __init__(self, patience: int):
        self.patience = patience
        self.previous: Optional[float] = None
        self.best: Optional[float] = None
        self.rises = 0

    def add(self, step: int, loss: float) -> Optional[str]:
        self.rises = self.rises + 1 if self.previous is not None and loss > self.previous else 0
        self.previous = loss
        self.best = loss if self.best is None else min(self.best, loss)
        if self.patience <= 0 or self.rises < self.patience:
            return None
        times = f"{self.rises} evaluation{'s' if self.rises > 1 else ''}"
        return (f"warning: validation loss rose {times} in a row (now {loss:.4f} at step {step}, "
                f"best {self.best:.4f}): the model is likely memorising its training data. More data, fewer "
                f"steps or more dropout help; checkpoint.keep_best keeps the best steps")


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
