"""Optimizer and learning-rate schedule (docs/model.md §6): AdamW, linear warm-up, cosine decay to zero,
global-norm clipping, an optional weight-decay mask.

The schedule is the one of HF ``get_cosine_schedule_with_warmup`` that the authors used::

    lr(s) = peak * s / warmup                                            s < warmup
    lr(s) = peak * 0.5 * (1 + cos(pi * (s - warmup) / (total - warmup)))  warmup <= s <= total

where ``s`` counts optimizer updates (skipped NaN steps do not advance it) and ``total`` is
``trainer.steps``. ``schedule: constant`` keeps ``peak`` after the warm-up.

The codec trainer (:mod:`small_e_jax.codec.training`) builds its optimizer with the same
:func:`adamw_optimizer` and its own schedule, :func:`warmup_cosine_to_floor` (optax's warm-up +
cosine decay to a floor instead of zero).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

if TYPE_CHECKING:  # small_e_jax.config needs draccus, which the codec trainer's image lacks
    from small_e_jax.config import OptimizerConfig


def learning_rate_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """Step -> learning rate (a jittable function of an int step)."""
    peak, warmup = config.learning_rate, config.warmup_steps
    decay_steps = max(total_steps - warmup, 1)

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        warm = peak * step / max(warmup, 1)
        if config.schedule == "constant":
            after = jnp.full_like(step, peak)
        else:
            progress = jnp.clip((step - warmup) / decay_steps, 0.0, 1.0)
            after = peak * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return jnp.where(step < warmup, warm, after)

    return schedule


def warmup_cosine_to_floor(peak: float, warmup_steps: int, total_steps: int, final_fraction: float) -> optax.Schedule:
    """optax's linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to
    ``peak * final_fraction`` at ``total_steps`` (the codec trainer's schedule)."""
    return optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=peak, warmup_steps=warmup_steps,
                                              decay_steps=total_steps, end_value=peak * final_fraction)


def decay_mask(params: Any) -> Any:
    """True for parameters that get weight decay: matrices, not norms/biases (ndim <= 1) nor the
    token tables (their path contains ``embed``, e.g. ``audio_embed``)."""

    def keep(path: tuple[Any, ...], x: Any) -> bool:
        names = [str(getattr(p, "key", getattr(p, "name", p))) for p in path]
        return x.ndim > 1 and not any("embed" in n for n in names)

    return jax.tree_util.tree_map_with_path(keep, params)


def adamw_optimizer(learning_rate: optax.ScalarOrSchedule, *, b1: float, b2: float, eps: float = 1e-8,
                    weight_decay: float, grad_clip_norm: Optional[float],
                    mask: Optional[Callable[[Any], Any]] = None) -> optax.GradientTransformation:
    """clip_by_global_norm(grad_clip_norm) (left out when None) -> AdamW(learning_rate)."""
    parts = []
    if grad_clip_norm is not None:
        parts.append(optax.clip_by_global_norm(grad_clip_norm))
    parts.append(optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=mask))
    return optax.chain(*parts)


def make_optimizer(config: OptimizerConfig, total_steps: int) -> optax.GradientTransformation:
    """clip_by_global_norm(grad_clip_norm) -> AdamW(schedule). Gradient accumulation is done by
    the train step (a scan over micro-batches), not here, so one update = one step."""
    return adamw_optimizer(learning_rate_schedule(config, total_steps), b1=config.b1, b2=config.b2, eps=config.eps,
                           weight_decay=config.weight_decay,
                           grad_clip_norm=config.grad_clip_norm if config.grad_clip_norm > 0 else None,
                           mask=None if config.decay_norms_and_embeddings else decay_mask)


def update_count(opt_state: Any) -> jax.Array:
    """The number of applied updates stored in the AdamW state (drives the schedule)."""
    has_count = lambda s: "count" in getattr(s, "_fields", ())  # optax states are namedtuples
    return [s.count for s in jax.tree.leaves(opt_state, is_leaf=has_count) if has_count(s)][0]
