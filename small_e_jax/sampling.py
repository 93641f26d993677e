"""Token sampling for the decode loop: temperature, top-k, top-p, a repetition guard, greedy.

Everything is a pure function of arrays, traced inside the jit-compiled decode loop. Logits are
``[B, Q, V]`` (one distribution per item and codebook); keys are one PRNG key per item ``[B]``
so that an item's samples do not depend on the other items in its batch.

The settings are a frozen (hashable) dataclass, :class:`SamplingConfig`, passed to ``jit`` as a
static argument: changing one recompiles the loop (a few seconds), which keeps the common
greedy / no-top-k paths free of dead work.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

NEG_INF = -1e30  # finite, so that fully-masked rows never produce NaN


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How the next token of every codebook is chosen.

    temperature: divides the logits (> 0); ignored when ``greedy``.
    top_k: keep the k most likely tokens (0 = all).
    top_p: keep the smallest set of tokens whose probability reaches p (1.0 = all).
    repetition_penalty: CTRL-style guard (>= 1; 1 = off): a token that the same codebook emitted
      in the last ``repetition_window`` steps has its logit divided by the penalty (multiplied
      if negative), which breaks the stuck-frame loops of autoregressive codec LMs.
    greedy: argmax (deterministic; used by the tests).
    cfg_scale: classifier-free guidance scale (1 = plain conditional decoding, no extra work);
      logits = uncond + cfg_scale * (cond - uncond).
    force_guidance: run the unconditional stream even at ``cfg_scale == 1`` (tests).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    repetition_window: int = 16
    greedy: bool = False
    cfg_scale: float = 1.0
    force_guidance: bool = False

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p", "repetition_penalty", "cfg_scale"):
            if not math.isfinite(getattr(self, name)):  # NaN passes every comparison below
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if not self.greedy and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty < 1.0:
            raise ValueError(f"repetition_penalty must be >= 1 (1 = off), got {self.repetition_penalty}")
        if self.repetition_window < 1:
            raise ValueError(f"repetition_window must be >= 1, got {self.repetition_window}")
        if self.cfg_scale < 0:
            raise ValueError(f"cfg_scale must be >= 0, got {self.cfg_scale}")

    def split(self) -> tuple["SamplingConfig", dict[str, float]]:
        """(static part, dynamic values): the static part (a jit static argument) keeps only what
        changes the program (greedy, top_k, whether top-p / the guard / guidance are on, the
        window); the values (temperature, top_p, repetition_penalty, cfg_scale) are traced, so
        changing them does not recompile."""
        values = {"temperature": self.temperature, "top_p": self.top_p,
                  "repetition_penalty": self.repetition_penalty, "cfg_scale": self.cfg_scale}
        static = dataclasses.replace(
            self, temperature=1.0, top_p=0.5 if self.top_p < 1.0 else 1.0,
            repetition_penalty=2.0 if self.repetition_penalty != 1.0 else 1.0,
            cfg_scale=1.0, force_guidance=self.uses_cfg)
        return static, values

    @property
    def uses_cfg(self) -> bool:
        return self.cfg_scale != 1.0 or self.force_guidance


GREEDY = SamplingConfig(greedy=True)


def apply_repetition_penalty(logits: jax.Array, recent: jax.Array, penalty: float) -> jax.Array:
    """logits [B, Q, V]; recent [B, W, Q] tokens (negative = none) -> penalised logits."""
    V = logits.shape[-1]
    seen = jnp.zeros(logits.shape, bool)
    # W is small (a static window): a loop of one-hot ORs avoids a [B, W, Q, V] temporary.
    for w in range(recent.shape[1]):
        seen = seen | (recent[:, w, :, None] == jnp.arange(V))
    return jnp.where(seen, jnp.where(logits > 0, logits / penalty, logits * penalty), logits)


# Up to this many pairwise comparisons (rows x V x V) top-k's cut is found by counting instead
# of sorting: one fused reduction instead of a sort kernel per codebook. H200, batch-1 decode of
# the 64M model: the four sorts took 12 µs of a 0.38 ms step (benchmarks/RESULTS.md).
RANK_TOP_K_MAX_PAIRS = 1 << 25


def filter_top_k(logits: jax.Array, k: int) -> jax.Array:
    """Keep the k largest logits of the last axis (ties at the k-th value are kept)."""
    V = logits.shape[-1]
    if k <= 0 or k >= V:
        return logits
    if logits.size * V <= RANK_TOP_K_MAX_PAIRS:
        # x_i >= the k-th largest value exactly when fewer than k values are strictly larger.
        larger = jnp.sum(logits[..., None, :] > logits[..., :, None], axis=-1, dtype=jnp.int32)
        return jnp.where(larger < k, logits, NEG_INF)
    kth = jax.lax.top_k(logits, k)[0][..., -1:]
    return jnp.where(logits < kth, NEG_INF, logits)


def filter_top_p(logits: jax.Array, p: float | jax.Array) -> jax.Array:
    """Nucleus filter: keep the most likely tokens until their probability reaches p (>= 1 kept)."""
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass of the strictly more likely tokens
    keep_sorted = before < p
    keep = jnp.zeros_like(keep_sorted).at[
        jnp.arange(logits.shape[0])[:, None, None], jnp.arange(logits.shape[1])[None, :, None], order
    ].set(keep_sorted)
    return jnp.where(keep, logits, NEG_INF)


def sample(logits: jax.Array, keys: jax.Array, config: SamplingConfig,
           recent: jax.Array | None = None, values: dict[str, Any] | None = None) -> jax.Array:
    """Choose tokens [B, Q] int32 from logits [B, Q, V] (fp32) with per-item keys [B].

    ``recent`` [B, W, Q] is the repetition window (needed when the penalty is on). ``values``:
    the dynamic settings of :meth:`SamplingConfig.split` (traced scalars; default: ``config``'s).
    """
    values = values if values is not None else config.split()[1]
    logits = logits.astype(jnp.float32)
    if config.repetition_penalty != 1.0:
        if recent is None:
            raise ValueError("sample: the repetition guard needs the recent tokens")
        logits = apply_repetition_penalty(logits, recent, values["repetition_penalty"])
    if config.greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / values["temperature"]
    logits = filter_top_k(logits, config.top_k)
    if config.top_p < 1.0:
        logits = filter_top_p(logits, values["top_p"])
    return jax.vmap(lambda k, l: jax.random.categorical(k, l, axis=-1))(keys, logits).astype(jnp.int32)
