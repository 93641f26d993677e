"""The codec's train state and jitted steps: losses, optimizer, the plain and the GAN train step,
the evaluation step, and :func:`build_training` (a fresh state on a 1-D ``data`` mesh + its step).

The optimizer is the trainer's builder (:func:`small_e_jax.optim.adamw_optimizer`: global-norm
clipping, then AdamW) with the codec's schedule (:func:`small_e_jax.optim.warmup_cosine_to_floor`:
linear warm-up, cosine decay to ``learning_rate * final_lr_fraction``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from small_e_jax.codec.dac import random_init
from small_e_jax.codec.quantizer import quantizer_dropout_counts, restart_dead_codes
from small_e_jax.codec.training import losses
from small_e_jax.codec.training.config import CodecTrainConfig
from small_e_jax.optim import adamw_optimizer, warmup_cosine_to_floor


def learning_rate_schedule(cfg: CodecTrainConfig) -> optax.Schedule:
    """Linear warm-up (at most ``steps - 1`` steps), then cosine decay to ``learning_rate * final_lr_fraction``."""
    return warmup_cosine_to_floor(cfg.learning_rate, min(cfg.warmup_steps, cfg.steps - 1), cfg.steps,
                                  cfg.final_lr_fraction)


def make_optimizer(cfg: CodecTrainConfig) -> optax.GradientTransformation:
    """AdamW with linear warm-up then cosine decay, after global-norm clipping."""
    return adamw_optimizer(learning_rate_schedule(cfg), b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay,
                           grad_clip_norm=cfg.grad_clip)


def learning_rate_at(cfg: CodecTrainConfig, step: int) -> float:
    return float(learning_rate_schedule(cfg)(step))


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
    from small_e_jax.codec.training import discriminators as disc

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
        from small_e_jax.codec.training.discriminators import Discriminators

        d_graphdef, d_params = nnx.split(Discriminators(rngs=nnx.Rngs(cfg.seed + 1)))
        d_tx = make_optimizer(cfg)
        state.update(d_params=d_params, d_opt_state=d_tx.init(d_params))
        step = make_gan_train_step(graphdef, d_graphdef, cfg, tx, d_tx, replicated, batched)
    else:
        step = make_train_step(graphdef, cfg, tx, replicated, batched)
    return TrainingSetup(graphdef, jax.device_put(state, replicated), replicated, batched, step)
