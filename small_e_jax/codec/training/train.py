"""Train a compact DAC codec on the bundled mini corpus: ``python -m small_e_jax.codec.train``.

One line on a GPU (data parallel over every visible device)::

    python3 -m small_e_jax.codec.train --workdir runs/codec_mini --max-minutes 8 --batch-size 32

* **Model**: a :class:`~small_e_jax.codec.dac.DAC` of the ``--codec`` preset (default
  ``dac_mini24``: 24 kHz, hop 320 = 75 frames/s, 4 codebooks x 1024, 3.0M parameters).
* **Losses** (:mod:`small_e_jax.codec.training.losses`): DAC's weights — 15 x multi-scale log-mel L1,
  1 x codebook, 0.25 x commitment — plus a multi-scale STFT loss (weight 1) and optional
  quantizer dropout. No adversarial losses (see ``docs/codec_training.md``).
* **Data** (:mod:`small_e_jax.codec.training.data`): random ``--segment-seconds`` crops of the
  corpus clips decoded into RAM; batch ``i`` depends only on ``(seed, i)``.
* **Step** (:mod:`small_e_jax.codec.training.step`): one ``jax.jit`` function (forward, losses,
  grads, global-norm clipping, AdamW with warm-up + cosine decay: the trainer's optimizer builder,
  :mod:`small_e_jax.optim`); parameters replicated and the batch split over a 1-D ``data`` mesh.
* **Resumable**: orbax checkpoints (:class:`small_e_jax.checkpoint.LeafCheckpoints`) in
  ``WORKDIR/checkpoints`` every ``--checkpoint-every`` steps
  and when ``--max-minutes`` of wall clock (counted from start-up, compilation included) is
  spent; rerunning with the same ``--workdir`` continues from the newest one. The run then
  exports the weights (``WORKDIR/export/<codec>``: ``model.safetensors`` + ``config.json``,
  loadable with ``load_codec(<codec>, weights=...)``).
* **Logs**: tqdm bar, a line every ``--log-every`` steps with steps/s, ``WORKDIR/metrics.jsonl``
  and TensorBoard events in ``WORKDIR/tensorboard`` (tensorboardX or torch's writer, if present;
  the trainer's :class:`small_e_jax.metrics.MetricLogger`).
* **Flags**: one per field of :class:`~small_e_jax.codec.training.config.CodecTrainConfig`.

Why a plain dataclass + argparse rather than the draccus config tree: the GPU image has no
draccus (nor grain/TFDS), and this entry point must run there with the repo as is.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np
from flax import nnx

from small_e_jax.codec.dac import num_params
from small_e_jax.codec.training.config import CodecTrainConfig, check_resumable
from small_e_jax.codec.training.data import CropSampler, load_clips
from small_e_jax.codec.training.step import build_training, learning_rate_at, make_eval_step
from small_e_jax.metrics import MetricLogger

STATE_FORMAT = "small_e_jax.codec.train/1"


# --------------------------------------------------------------------------- export


def export_weights(params: Any, graphdef: Any, cfg: CodecTrainConfig, directory: Path, step: int) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (loadable by ``load_codec(cfg.codec, weights=...)``)."""
    from small_e_jax.codec.weights import model_to_arrays, save_dac

    model = nnx.merge(graphdef, jax.device_get(params))
    extra = {"trained_by": "small_e_jax.codec.train", "train_step": int(step),
             "train_config": dataclasses.asdict(cfg)}
    return save_dac(directory, model.config, model_to_arrays(model), extra=extra, overwrite=True)


# --------------------------------------------------------------------------- main loop


def train(cfg: CodecTrainConfig) -> dict[str, Any]:
    """Run (or resume) training; returns ``{"step", "export_dir", "last_metrics", "val", "params"}``
    (``params``: the final parameters as a host-side ``nnx.State``)."""
    start_time = time.perf_counter()
    cfg.validate()
    workdir = Path(cfg.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mcfg = cfg.model_config()
    segment = cfg.segment_samples()
    devices = jax.devices()
    if cfg.batch_size % len(devices):
        raise ValueError(f"--batch-size {cfg.batch_size} is not divisible by the {len(devices)} devices")
    setup = build_training(cfg, devices)
    graphdef, state, replicated, batched = setup.graphdef, setup.state, setup.replicated, setup.batched
    model = nnx.merge(graphdef, state["params"])
    from small_e_jax.checkpoint import LeafCheckpoints  # orbax: imported once a run starts

    ckpt = LeafCheckpoints(workdir / "checkpoints", cfg.keep_checkpoints)
    if ckpt.latest_step() is not None:
        state, meta = ckpt.restore(state)
        check_resumable(meta.get("config", {}), cfg)
        print(f"resumed from {workdir / 'checkpoints'} at step {int(state['step'])}", flush=True)
    step = int(state["step"])
    print(f"codec {cfg.codec}: {num_params(model) / 1e6:.2f}M params, {mcfg.sample_rate} Hz, hop {mcfg.hop_length}, "
          f"{mcfg.n_codebooks} x {mcfg.codebook_size}; {len(devices)} x {devices[0].platform}; batch {cfg.batch_size} "
          f"x {segment} samples ({segment / mcfg.sample_rate:.2f} s)", flush=True)

    train_clips = load_clips(cfg.corpus_dir, "train", mcfg.sample_rate, limit=cfg.max_clips,
                             progress=cfg.progress_bar)
    val_clips = load_clips(cfg.corpus_dir, "validation", mcfg.sample_rate, limit=cfg.eval_clips,
                           progress=cfg.progress_bar)
    sampler = CropSampler(train_clips, segment, seed=cfg.seed)
    # A fixed validation batch (rounded to the device count) of crops of held-out sentences.
    n_val = max(len(devices), len(val_clips) // len(devices) * len(devices))
    val_batch = jax.device_put(CropSampler(val_clips, segment, seed=cfg.seed + 1, min_gain=1.0).batch(0, n_val),
                               batched)

    train_step = setup.train_step
    eval_step = make_eval_step(graphdef, cfg, replicated, batched)
    # metrics.jsonl always; TensorBoard when tensorboardX or torch's writer imports. The console
    # lines are this loop's own (out() below).
    logger = MetricLogger(workdir, cfg.steps, step, enabled=True, progress_bar=False, tensorboard="if-available",
                          jsonl=True, console=False)
    bar = None
    if cfg.progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True, mininterval=2.0, desc="codec")

    def out(msg: str) -> None:
        (bar.write if bar is not None else print)(msg)
        sys.stdout.flush()

    def save(reason: str) -> None:
        meta = {"step": step, "config": dataclasses.asdict(cfg), "format": STATE_FORMAT, "reason": reason,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        ckpt.save(step, state, meta)
        out(f"[step {step}] checkpoint saved ({reason})")

    deadline = None if cfg.max_minutes is None else start_time + 60.0 * cfg.max_minutes
    last: dict[str, float] = {}
    window_start, window_steps, first_step_done = time.perf_counter(), 0, False
    stop_reason = "steps"
    last_step = cfg.steps if cfg.stop_step is None else min(cfg.steps, cfg.stop_step)
    # Prefetch: the next batch is cut on the host while the device runs the current step.
    next_batch = sampler.batch(step, cfg.batch_size)
    while step < last_step:
        wav = jax.device_put(next_batch, batched)
        state, metrics = train_step(state, wav)
        step += 1
        next_batch = sampler.batch(step, cfg.batch_size)
        window_steps += 1
        if not first_step_done:  # the first step includes compilation: keep it out of steps/s
            jax.block_until_ready(metrics)
            out(f"[step {step}] first step (compile) done at {time.perf_counter() - start_time:.1f} s")
            window_start, window_steps, first_step_done = time.perf_counter(), 0, True
        if bar is not None:
            bar.update(1)
        if step % cfg.log_every == 0 or step == last_step:
            m = {k: float(v) for k, v in jax.device_get(metrics).items()}
            if not np.isfinite(m["loss"]):
                raise FloatingPointError(f"loss is {m['loss']} at step {step}; lower --learning-rate")
            elapsed = time.perf_counter() - window_start
            if window_steps:
                m["steps_per_s"] = window_steps / elapsed
                m["audio_s_per_s"] = m["steps_per_s"] * cfg.batch_size * segment / mcfg.sample_rate
            m["learning_rate"] = learning_rate_at(cfg, step)
            last = m
            logger.write(step, m, "train")
            out(f"[step {step}] " + " ".join(f"{k}={v:.4g}" for k, v in m.items()))
            window_start, window_steps = time.perf_counter(), 0
            if bar is not None:
                bar.set_postfix(mel=f"{m['mel']:.3f}", refresh=False)
        if step % cfg.eval_every == 0:
            v = {k: float(x) for k, x in jax.device_get(eval_step(state["params"], val_batch)).items()}
            logger.write(step, v, "val")
            out(f"[val step {step}] " + " ".join(f"{k}={x:.4g}" for k, x in v.items()))
            window_start, window_steps = time.perf_counter(), 0
        if step % cfg.checkpoint_every == 0:
            save("every")
            window_start, window_steps = time.perf_counter(), 0
        if deadline is not None and time.perf_counter() >= deadline:
            stop_reason = "max-minutes"
            break
    if bar is not None:
        bar.close()
    if ckpt.latest_step() != step:
        save(stop_reason)
    ckpt.close()
    export_dir = export_weights(state["params"], graphdef, cfg, workdir / "export" / cfg.codec, step)
    v = {k: float(x) for k, x in jax.device_get(eval_step(state["params"], val_batch)).items()}
    logger.write(step, v, "val")
    logger.close()
    print(f"[final step {step}] val " + " ".join(f"{k}={x:.4g}" for k, x in v.items()), flush=True)
    print(f"stopped ({stop_reason}) after {(time.perf_counter() - start_time) / 60:.1f} min; "
          f"weights: {export_dir}", flush=True)
    return {"step": step, "export_dir": export_dir, "last_metrics": last, "val": v,
            "params": jax.device_get(state["params"]), "graphdef": graphdef}


if __name__ == "__main__":  # the command line: small_e_jax/cli/codec_train.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.codec_train", run_name="__main__")
