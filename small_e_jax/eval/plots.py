"""PNG plots for the evaluation report (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from small_e_jax.eval.throughput_report import ThroughputPoint, series


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install -r requirements-eval.txt") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def loss_curves(runs: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]], path: str | Path,
                tags: Sequence[str] = ("train/loss", "eval/loss")) -> Path:
    """One line per (run, tag): ``runs = {run name: {tag: [(step, value)]}}``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = 0
    for name, scalars in runs.items():
        for tag in tags:
            points = scalars.get(tag)
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, label=f"{name} {tag}", marker="o" if tag.startswith("eval") else None,
                        linestyle="--" if tag.startswith("eval") else "-")
                drawn += 1
    if not drawn:
        plt.close(fig)
        raise ValueError(f"no scalars with tags {list(tags)} in the runs given")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per code)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def alignment_maps(maps: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Attention maps side by side: ``{title: [A, L, J] or [L, J]}`` (maps summed over A), text
    position on the y axis, audio frame on the x axis, with the argmax path overlaid."""
    plt = _pyplot()
    if not maps:
        raise ValueError("no attention maps to draw")
    fig, axes = plt.subplots(1, len(maps), figsize=(4.5 * len(maps), 3.6), squeeze=False)
    for ax, (title, att) in zip(axes[0], maps.items()):
        att = np.asarray(att, np.float32)
        att = att.sum(axis=0) if att.ndim == 3 else att
        ax.imshow(att.T, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
        ax.plot(att.argmax(axis=1), color="red", linewidth=0.8, alpha=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("audio frame")
        ax.set_ylabel("text token")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def throughput(points: Sequence[ThroughputPoint], path: str | Path) -> Path:
    """Time per audio frame (µs, training step) against sequence length T, one line per
    (model, device); log-scaled T. Linear-cost models give flat lines."""
    plt = _pyplot()
    groups = series(points)
    if not groups:
        raise ValueError("no throughput points to draw")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (model, device), pts in groups.items():
        ax.plot([p.T for p in pts], [p.us_per_frame for p in pts], marker="o", label=f"{model} [{device}]")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length T (audio frames)")
    ax.set_ylabel("training time per frame (µs)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
