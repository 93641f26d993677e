"""Train a compact DAC codec on the bundled mini corpus: ``python -m small_e_jax.codec.train``.

One line on a GPU (data parallel over every visible device)::

    python3 -m small_e_jax.codec.train --workdir runs/codec_mini --max-minutes 8 --batch-size 32

* **Model**: a :class:`~small_e_jax.codec.dac.DAC` of the ``--codec`` preset (default
  ``dac_mini24``: 24 kHz, hop 320 = 75 frames/s, 4 codebooks x 1024, 3.0M parameters).
* **Losses** (:mod:`small_e_jax.codec.losses`): DAC's weights — 15 x multi-scale log-mel L1,
  1 x codebook, 0.25 x commitment — plus a multi-scale STFT loss (weight 1) and optional
  quantizer dropout. No adversarial losses (see ``docs/codec_training.md``).
* **Data** (:mod:`small_e_jax.codec.train_data`): random ``--segment-seconds`` crops of the
  corpus clips decoded into RAM; batch ``i`` depends only on ``(seed, i)``.
* **Step**: one ``jax.jit`` function (forward, losses, grads, global-norm clipping, AdamW with
  warm-up + cosine decay); parameters replicated and the batch split over a 1-D ``data`` mesh.
* **Resumable**: orbax checkpoints in ``WORKDIR/checkpoints`` every ``--checkpoint-every`` steps
  and when ``--max-minutes`` of wall clock (counted from start-up, compilation included) is
  spent; rerunning with the same ``--workdir`` continues from the newest one. The run then
  exports the weights (``WORKDIR/export/<codec>``: ``model.safetensors`` + ``config.json``,
  loadable with ``load_codec(<codec>, weights=...)``).
* **Logs**: tqdm bar, a line every ``--log-every`` steps with steps/s, ``WORKDIR/metrics.jsonl``
  and TensorBoard events in ``WORKDIR/tensorboard`` (tensorboardX or torch's writer, if present).

Why a plain dataclass + argparse rather than the draccus config tree: the GPU image has no
draccus (nor grain/TFDS), and this entry point must run there with the repo as is.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from small_e_jax.codec import losses
from small_e_jax.codec.dac import num_params, random_init
from small_e_jax.codec.dac_config import DACConfig, preset
from small_e_jax.codec.quantizer import quantizer_dropout_counts, restart_dead_codes
from small_e_jax.codec.train_data import MINI_CORPUS, CropSampler, load_clips

STATE_FORMAT = "small_e_jax.codec.train/1"


@dataclasses.dataclass
class CodecTrainConfig:
    """Everything a codec training run depends on (stored in every checkpoint)."""

    workdir: str = "runs/codec_mini"
    codec: str = "dac_mini24"  # a DAC preset (small_e_jax.codec.dac_config.PRESETS)
    model_overrides: Optional[str] = None  # JSON of DACConfig fields over the preset (tests: a tiny model)
    init_from: Optional[str] = None  # exported weights to start a new run from (e.g. --gan fine-tuning)
    corpus_dir: str = str(MINI_CORPUS)  # a folder with manifest.jsonl (split train/validation)
    max_clips: Optional[int] = None  # use only the first N train clips (tests)
    segment_seconds: float = 1.0  # crop length; rounded down to a multiple of the hop
    batch_size: int = 32  # global batch; must be divisible by the number of devices
    steps: int = 20_000  # length of the learning-rate schedule (and the run, without --max-minutes)
    max_minutes: Optional[float] = None  # wall-clock budget from start-up; save + export + stop
    stop_step: Optional[int] = None  # stop (save + export) at this step; the schedule still spans `steps`
    seed: int = 0
    # Optimizer (DAC: AdamW, betas 0.8/0.99, lr 1e-4 for 400k steps; we have far fewer steps).
    learning_rate: float = 5e-4
    warmup_steps: int = 500
    final_lr_fraction: float = 0.1  # cosine decays to learning_rate * this at `steps`
    b1: float = 0.8
    b2: float = 0.99
    weight_decay: float = 0.01
    grad_clip: float = 100.0  # global-norm clip
    # Loss weights (DAC: mel 15, codebook 1, commitment 0.25).
    mel_weight: float = 15.0
    stft_weight: float = 1.0
    waveform_weight: float = 0.0
    codebook_weight: float = 1.0
    commitment_weight: float = 0.25
    quantizer_dropout: float = 0.0  # DAC uses 0.5; the TTS model always reads all codebooks
    codebook_restart: bool = True  # re-seed codewords unused for ~hundreds of steps (restart_dead_codes)
    restart_decay: float = 0.99  # EMA of hits per codeword per step
    restart_threshold: float = 0.01  # dead below this fraction of the mean hits per codeword
    precision: str = "default"  # conv/matmul precision ("default" = TF32 on NVIDIA GPUs)
    # Adversarial training (off by default: see docs/codec_training.md).
    gan: bool = False  # multi-period + multi-scale STFT discriminators, adversarial + feature losses
    gan_kind: str = "lsgan"  # lsgan (DAC) | hinge
    gan_start_step: int = 0  # train on reconstruction losses alone before this step
    adversarial_weight: float = 1.0  # DAC: 1
    feature_weight: float = 2.0  # DAC: 2
    # Bookkeeping.
    log_every: int = 50
    eval_every: int = 500
    eval_clips: int = 32
    checkpoint_every: int = 1000
    keep_checkpoints: int = 1  # the train state is ~36 MB; keep the newest only
    progress_bar: bool = True

    def validate(self) -> None:
        for name in ("batch_size", "steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.segment_seconds <= 0:
            raise ValueError(f"--segment-seconds must be > 0, got {self.segment_seconds}")
        if self.stop_step is not None and self.stop_step < 1:
            raise ValueError(f"--stop-step must be >= 1, got {self.stop_step}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"--max-minutes must be > 0, got {self.max_minutes}")
        if self.gan_kind not in ("lsgan", "hinge"):
            raise ValueError(f"--gan-kind must be lsgan or hinge, got {self.gan_kind!r}")
        if not 0.0 <= self.quantizer_dropout <= 1.0:
            raise ValueError(f"--quantizer-dropout must lie in [0, 1], got {self.quantizer_dropout}")
        self.model_config()  # raises on an unknown preset or a bad override

    def model_config(self) -> DACConfig:
        cfg = preset(self.codec)
        if self.model_overrides:
            try:
                changes = json.loads(self.model_overrides)
            except json.JSONDecodeError as exc:
                raise ValueError(f"--model-overrides is not JSON: {exc}") from None
            if not isinstance(changes, dict):
                raise ValueError("--model-overrides must be a JSON object of DACConfig fields")
            cfg = DACConfig.from_dict({**cfg.to_dict(), **changes})
        return cfg

    def segment_samples(self) -> int:
        cfg = self.model_config()
        hops = int(self.segment_seconds * cfg.sample_rate) // cfg.hop_length
        if hops < 8:
            raise ValueError(f"--segment-seconds {self.segment_seconds} gives {hops} frames; need >= 8")
        return hops * cfg.hop_length

    # Fields that may change when a run is resumed (they do not change the model or the data).
    RESUMABLE = ("workdir", "steps", "max_minutes", "stop_step", "init_from", "log_every", "eval_every", "eval_clips",
                 "checkpoint_every", "keep_checkpoints", "progress_bar", "corpus_dir", "batch_size")


# --------------------------------------------------------------------------- step functions


def make_optimizer(cfg: CodecTrainConfig) -> optax.GradientTransformation:
    """AdamW with linear warm-up then cosine decay, after global-norm clipping."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=cfg.learning_rate, warmup_steps=min(cfg.warmup_steps, cfg.steps - 1),
        decay_steps=cfg.steps, end_value=cfg.learning_rate * cfg.final_lr_fraction)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip),
                       optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay))


def _lr_at(cfg: CodecTrainConfig, step: int) -> float:
    return float(optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, min(cfg.warmup_steps, cfg.steps - 1), cfg.steps,
        cfg.learning_rate * cfg.final_lr_fraction)(step))


def recon_losses(recon: jax.Array, wav: jax.Array, cfg: CodecTrainConfig, sample_rate: int
                 ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted mel + STFT (+ waveform) losses of ``recon`` vs ``wav`` (both ``[B, S]``), and the parts."""
    m = {"mel": losses.multiscale_mel_loss(recon, wav, sample_rate)}
    total = cfg.mel_weight * m["mel"]
    if cfg.stft_weight:
        m["stft"] = losses.multiscale_stft_loss(recon, wav)
        total = total + cfg.stft_weight * m["stft"]
    if cfg.waveform_weight:
        m["waveform_l1"] = losses.waveform_l1(recon, wav)
        total = total + cfg.waveform_weight * m["waveform_l1"]
    return total, m


def _generator(model: Any, wav: jax.Array, cfg: CodecTrainConfig, key: Optional[jax.Array]
               ) -> tuple[jax.Array, jax.Array, dict[str, jax.Array], dict[str, jax.Array]]:
    """-> (recon [B, S], weighted VQ loss, metrics (VQ losses, codebook usage), {"codes", "z_e"})."""
    mcfg = model.config
    n_active = None
    if key is not None and cfg.quantizer_dropout > 0:
        n_active = quantizer_dropout_counts(key, wav.shape[0], mcfg.n_codebooks, cfg.quantizer_dropout)
    out = model.train_forward(wav, n_active)
    vq = cfg.codebook_weight * out["codebook_loss"] + cfg.commitment_weight * out["commitment_loss"]
    # Codebook usage: fraction of the K entries hit in this batch, averaged over codebooks.
    counts = jax.vmap(lambda c: jnp.bincount(c.reshape(-1), length=mcfg.codebook_size))(
        jnp.swapaxes(out["codes"], 0, 1))
    m = {"commitment": out["commitment_loss"], "codebook": out["codebook_loss"],
         "codes_used": jnp.mean(jnp.mean((counts > 0).astype(jnp.float32), axis=-1))}
    return out["recon"], vq, m, {"codes": out["codes"], "z_e": out["z_e"]}


def _restart(graphdef: Any, params: Any, state: dict, outputs: dict, key: jax.Array, cfg: CodecTrainConfig
             ) -> tuple[Any, jax.Array, jax.Array]:
    """Dead-codeword restart on updated ``params`` -> (params, code_usage, dead fraction)."""
    model = nnx.merge(graphdef, params)
    book, usage, dead = restart_dead_codes(model.quantizer.codebook[...], state["code_usage"], outputs["codes"],
                                           outputs["z_e"], key, decay=cfg.restart_decay,
                                           threshold=cfg.restart_threshold)
    model.quantizer.codebook.set_value(book)
    return nnx.state(model), usage, dead


def compute_losses(model: Any, wav: jax.Array, cfg: CodecTrainConfig, key: Optional[jax.Array]
                   ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``wav [B, S]`` -> (weighted reconstruction + VQ loss, metrics); ``key=None``: no quantizer dropout."""
    loss, (m, _) = _loss_with_outputs(model, wav, cfg, key)
    return loss, m


def _loss_with_outputs(model: Any, wav: jax.Array, cfg: CodecTrainConfig, key: Optional[jax.Array]
                       ) -> tuple[jax.Array, tuple[dict[str, jax.Array], dict[str, jax.Array]]]:
    recon, vq, m, outputs = _generator(model, wav, cfg, key)
    rec, parts = recon_losses(recon, wav, cfg, model.config.sample_rate)
    m.update(parts)
    m["loss"] = rec + vq
    return m["loss"], (m, outputs)


def make_train_step(graphdef: Any, cfg: CodecTrainConfig, tx: optax.GradientTransformation,
                    replicated: NamedSharding, batched: NamedSharding):
    """``(state, wav [B, S]) -> (state, metrics)``, jit-compiled; ``state`` is donated."""

    def step_fn(state: dict, wav: jax.Array) -> tuple[dict, dict]:
        key = jax.random.fold_in(jax.random.key(cfg.seed), state["step"])

        def loss_fn(params):
            return _loss_with_outputs(nnx.merge(graphdef, params), wav, cfg, key)

        (_, (metrics, outputs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        metrics["grad_norm"] = optax.global_norm(grads)
        return _generator_update(graphdef, cfg, tx, state, grads, outputs, key, metrics), metrics

    return _compile_step(step_fn, replicated, batched)


def make_gan_train_step(graphdef: Any, d_graphdef: Any, cfg: CodecTrainConfig, tx: optax.GradientTransformation,
                        d_tx: optax.GradientTransformation, replicated: NamedSharding, batched: NamedSharding):
    """Like :func:`make_train_step` with discriminators: one discriminator update on the detached
    reconstruction, then the generator update against the updated discriminators (as DAC).

    The generator runs once: its outputs' VJP carries the gradient of the reconstruction,
    adversarial and feature-matching losses (taken with respect to the waveform) back to its
    parameters, together with the VQ losses.
    """
    from small_e_jax.codec import discriminators as disc

    sr = cfg.model_config().sample_rate

    def step_fn(state: dict, wav: jax.Array) -> tuple[dict, dict]:
        key = jax.random.fold_in(jax.random.key(cfg.seed), state["step"])
        on = (state["step"] >= cfg.gan_start_step).astype(jnp.float32)

        def gen(params):
            recon, vq, m, outputs = _generator(nnx.merge(graphdef, params), wav, cfg, key)
            return (recon, vq), (m, outputs)

        (recon, vq), g_vjp, (metrics, outputs) = jax.vjp(gen, state["params"], has_aux=True)

        def d_loss_fn(d_params):
            d = nnx.merge(d_graphdef, d_params)
            return disc.discriminator_loss(d(wav), d(jax.lax.stop_gradient(recon)), cfg.gan_kind)

        d_loss, d_grads = jax.value_and_grad(d_loss_fn)(state["d_params"])
        d_grads = jax.tree_util.tree_map(lambda g: g * on, d_grads)
        d_updates, d_opt_state = d_tx.update(d_grads, state["d_opt_state"], state["d_params"])
        d_params = optax.apply_updates(state["d_params"], d_updates)

        def g_loss_fn(recon):
            d = nnx.merge(d_graphdef, d_params)
            real, fake = d(wav), d(recon)
            rec, m = recon_losses(recon, wav, cfg, sr)
            m["adversarial"] = disc.generator_loss(fake, cfg.gan_kind)
            m["feature"] = disc.feature_matching_loss(real, fake)
            total = rec + on * (cfg.adversarial_weight * m["adversarial"] + cfg.feature_weight * m["feature"])
            return total, m

        (rec_total, parts), g_recon = jax.value_and_grad(g_loss_fn, has_aux=True)(recon)
        (grads,) = g_vjp((g_recon, jnp.ones_like(vq)))
        metrics.update(parts)
        metrics.update(loss=rec_total + vq, disc_loss=d_loss, grad_norm=optax.global_norm(grads))
        new = _generator_update(graphdef, cfg, tx, state, grads, outputs, key, metrics)
        return {**new, "d_params": d_params, "d_opt_state": d_opt_state}, metrics

    return _compile_step(step_fn, replicated, batched)


def _generator_update(graphdef: Any, cfg: CodecTrainConfig, tx: optax.GradientTransformation, state: dict,
                      grads: Any, outputs: Any, key: jax.Array, metrics: dict) -> dict:
    """The codec's optimizer update, step count and (if configured) dead-code restarts: the new
    state (``metrics`` gains ``dead_codes``). Shared by the plain and the GAN step."""
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    new = {**state, "opt_state": opt_state, "step": state["step"] + 1}
    if cfg.codebook_restart:
        params, new["code_usage"], metrics["dead_codes"] = _restart(
            graphdef, params, state, outputs, jax.random.fold_in(key, 1), cfg)
    new["params"] = params
    return new


def _compile_step(step_fn: Callable, replicated: NamedSharding, batched: NamedSharding) -> Callable:
    """``(state, wav) -> (state, metrics)`` jitted: state replicated and donated, batch split."""
    return jax.jit(step_fn, in_shardings=(replicated, batched), out_shardings=(replicated, replicated),
                   donate_argnums=(0,))


def make_eval_step(graphdef: Any, cfg: CodecTrainConfig, replicated: NamedSharding, batched: NamedSharding):
    """``(params, wav [B, S]) -> metrics`` without quantizer dropout."""

    def eval_fn(params: Any, wav: jax.Array) -> dict:
        return compute_losses(nnx.merge(graphdef, params), wav, cfg, None)[1]

    return jax.jit(eval_fn, in_shardings=(replicated, batched), out_shardings=replicated)


# --------------------------------------------------------------------------- checkpoints


class Checkpoints:
    """Orbax checkpoints of the train state (a flat ``{index: array}`` of its leaves) + JSON meta."""

    def __init__(self, directory: Path, keep: int):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.manager = ocp.CheckpointManager(
            directory.resolve(), options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, step: int, state: dict, meta: dict) -> None:
        ocp = self._ocp
        leaves = jax.tree_util.tree_leaves(state)
        flat = {f"{i:05d}": leaf for i, leaf in enumerate(leaves)}
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(flat),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def restore(self, state: dict) -> tuple[dict, dict]:
        """Restore the newest step into the structure (and shardings) of ``state``."""
        ocp = self._ocp
        step = self.manager.latest_step()
        leaves, treedef = jax.tree_util.tree_flatten(state)
        target = {f"{i:05d}": leaf for i, leaf in enumerate(leaves)}
        out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                                 meta=ocp.args.JsonRestore()))
        restored = [out["state"][f"{i:05d}"] for i in range(len(leaves))]
        return jax.tree_util.tree_unflatten(treedef, restored), out["meta"]

    def close(self) -> None:
        self.manager.close()


def check_resumable(saved: dict, current: CodecTrainConfig) -> None:
    """Refuse to resume a checkpoint made with a different model / loss / optimizer config."""
    now = dataclasses.asdict(current)
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {now[k]!r}" for k in sorted(now)
             if k not in CodecTrainConfig.RESUMABLE and k in saved and saved[k] != now[k]]
    if diffs:
        raise ValueError("the checkpoint in --workdir was made with another config (use a new --workdir, "
                         "or the old values): " + "; ".join(diffs))


# --------------------------------------------------------------------------- logging


class Logger:
    """metrics.jsonl always; TensorBoard when tensorboardX or torch's writer imports."""

    def __init__(self, workdir: Path):
        self.jsonl = open(workdir / "metrics.jsonl", "a")
        self.writer = None
        for factory in (_tensorboardx_writer, _torch_writer):
            try:
                self.writer = factory(str(workdir / "tensorboard"))
                break
            except Exception:  # not installed / broken install: the JSON log still has everything
                continue

    def write(self, step: int, prefix: str, scalars: dict[str, float]) -> None:
        self.jsonl.write(json.dumps({"step": step, "split": prefix, **scalars}) + "\n")
        self.jsonl.flush()
        if self.writer is not None:
            for k, v in scalars.items():
                self.writer.add_scalar(f"{prefix}/{k}", v, step)
            self.writer.flush()

    def close(self) -> None:
        self.jsonl.close()
        if self.writer is not None:
            self.writer.close()


def _tensorboardx_writer(path: str):
    from tensorboardX import SummaryWriter

    return SummaryWriter(path)


def _torch_writer(path: str):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(path)


# --------------------------------------------------------------------------- export


def export_weights(params: Any, graphdef: Any, cfg: CodecTrainConfig, directory: Path, step: int) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (loadable by ``load_codec(cfg.codec, weights=...)``)."""
    from small_e_jax.codec.weights import model_to_arrays, save_dac

    model = nnx.merge(graphdef, jax.device_get(params))
    extra = {"trained_by": "small_e_jax.codec.train", "train_step": int(step),
             "train_config": dataclasses.asdict(cfg)}
    return save_dac(directory, model.config, model_to_arrays(model), extra=extra, overwrite=True)


def init_params_from(model: Any, directory: str) -> None:
    """Copy exported weights (``model.safetensors`` + ``config.json``) into ``model``; configs must match."""
    from small_e_jax.codec.weights import load_dac, model_to_arrays

    source = load_dac(directory)
    if source.config.replace(n_q=None) != model.config.replace(n_q=None):
        raise ValueError(f"--init-from {directory} holds a {source.config} model, not {model.config}")
    arrays = model_to_arrays(source)
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        var.set_value(jnp.asarray(arrays[".".join(str(k) for k in path)]))


@dataclasses.dataclass
class TrainingSetup:
    """What a run trains with: the model's graph, the replicated train state, the shardings of
    the state and of a batch ``[B, S]`` (split over a 1-D ``data`` mesh), the jitted step."""

    graphdef: Any
    state: dict
    replicated: NamedSharding
    batched: NamedSharding
    train_step: Callable


def build_training(cfg: CodecTrainConfig, devices: list) -> TrainingSetup:
    """A fresh train state (``cfg.seed``; ``cfg.init_from`` copied in) on ``devices`` and its step."""
    mcfg, segment = cfg.model_config(), cfg.segment_samples()
    mesh = Mesh(np.array(devices), ("data",))
    replicated, batched = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    model = random_init(mcfg, cfg.seed, precision=cfg.precision)
    if cfg.init_from:  # ignored when resuming: the checkpoint wins
        init_params_from(model, cfg.init_from)
    graphdef, params = nnx.split(model)
    tx = make_optimizer(cfg)
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    if cfg.codebook_restart:  # start every codeword at the mean hits per step
        mean_hits = cfg.batch_size * (segment // mcfg.hop_length) / mcfg.codebook_size
        state["code_usage"] = jnp.full((mcfg.n_codebooks, mcfg.codebook_size), mean_hits, jnp.float32)
    if cfg.gan:
        from small_e_jax.codec.discriminators import Discriminators

        d_graphdef, d_params = nnx.split(Discriminators(rngs=nnx.Rngs(cfg.seed + 1)))
        d_tx = make_optimizer(cfg)
        state.update(d_params=d_params, d_opt_state=d_tx.init(d_params))
        step = make_gan_train_step(graphdef, d_graphdef, cfg, tx, d_tx, replicated, batched)
    else:
        step = make_train_step(graphdef, cfg, tx, replicated, batched)
    return TrainingSetup(graphdef, jax.device_put(state, replicated), replicated, batched, step)


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
    ckpt = Checkpoints(workdir / "checkpoints", cfg.keep_checkpoints)
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
    logger = Logger(workdir)
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
            m["learning_rate"] = _lr_at(cfg, step)
            last = m
            logger.write(step, "train", m)
            out(f"[step {step}] " + " ".join(f"{k}={v:.4g}" for k, v in m.items()))
            window_start, window_steps = time.perf_counter(), 0
            if bar is not None:
                bar.set_postfix(mel=f"{m['mel']:.3f}", refresh=False)
        if step % cfg.eval_every == 0:
            v = {k: float(x) for k, x in jax.device_get(eval_step(state["params"], val_batch)).items()}
            logger.write(step, "val", v)
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
    logger.write(step, "val", v)
    logger.close()
    print(f"[final step {step}] val " + " ".join(f"{k}={x:.4g}" for k, x in v.items()), flush=True)
    print(f"stopped ({stop_reason}) after {(time.perf_counter() - start_time) / 60:.1f} min; "
          f"weights: {export_dir}", flush=True)
    return {"step": step, "export_dir": export_dir, "last_metrics": last, "val": v,
            "params": jax.device_get(state["params"]), "graphdef": graphdef}


if __name__ == "__main__":  # the command line: small_e_jax/cli/codec_train.py
    from small_e_jax.cli.codec_train import main

    raise SystemExit(main())
