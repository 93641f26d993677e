"""Parameter counts per module (docs/model.md §5).

What is counted: every ``nnx.Param`` (weights, biases, norm scales, embeddings, heads). Rotary
frequencies are computed, not stored, so the authors' frozen rotary buffers (a few hundred
numbers) are not counted: the d = 512 GLA model is 62,838,840 here vs the authors' 62,839,256.

``python -m small_e_jax.model.params [--config PRESET] [--depth N] [key=value ...]`` prints the
table for a config without allocating the parameters (``nnx.eval_shape``).
"""

from __future__ import annotations

import math

from flax import nnx

from small_e_jax.config import Config, ModelConfig


def count_params(model: nnx.Module, depth: int = 1) -> dict[str, int]:
    """Parameters grouped by the first ``depth`` names of their path, plus ``"total"``.

    E.g. depth 1 for :class:`SmallE`: ``text_encoder``, ``audio_embed``, ``encoder``,
    ``cross_attention``, ``decoder``, ``head``. Works on concrete or ``nnx.eval_shape`` models.
    """
    counts: dict[str, int] = {}
    for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        key = ".".join(str(part) for part in path[:depth])
        counts[key] = counts.get(key, 0) + math.prod(variable.get_value().shape)
    counts["total"] = sum(counts.values())
    return counts


def abstract_model(config: Config | ModelConfig) -> nnx.Module:
    """The model's structure with shape-only parameters (no memory, no compute)."""
    from small_e_jax.model.small_e import SmallE

    return nnx.eval_shape(lambda: SmallE(config, rngs=nnx.Rngs(0)))


def param_report(config: Config | ModelConfig, depth: int = 1) -> dict[str, int]:
    """:func:`count_params` of the model a config describes, without building its arrays."""
    return count_params(abstract_model(config), depth)


def format_report(counts: dict[str, int]) -> str:
    width = max(len(name) for name in counts)
    lines = [f"{name:<{width}}  {n:>13,}" for name, n in counts.items() if name != "total"]
    lines.append(f"{'total':<{width}}  {counts['total']:>13,}  ({counts['total'] / 1e6:.2f}M)")
    return "\n".join(lines)


if __name__ == "__main__":  # the command line: small_e_jax/cli/params.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.params", run_name="__main__")
