"""Export of the decode step as serialized StableHLO (``jax.export``), for serving without the
Python model code.

    python -m small_e_jax.export --checkpoint DIR --batch 1 --text-len 64 --out step.jaxexport

The exported function is ``decode_step(*leaves) -> (logits, *new_state_leaves)`` over the flat
leaves of ``(params, state, codes_t)``: flat leaves keep the serialized form free of Python
pytree types (DecodeState, nnx.State), which deserialization would otherwise need registered.
:class:`ExportedStep` restores the structure on the calling side. Shapes are fixed at export
time (batch B, text length J); ``platforms`` picks the targets (default: the current backend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from jax import export as jax_export
from flax import nnx

from small_e_jax.decoding import prefill, split_model
from small_e_jax.model import DecodeState, SmallE


def abstract_decode_state(model: SmallE, batch: int, text_len: int) -> DecodeState:
    """Shapes/dtypes of the decode state for B texts of J tokens."""
    text = jax.ShapeDtypeStruct((batch, text_len), jnp.int32)
    mask = jax.ShapeDtypeStruct((batch, text_len), jnp.bool_)
    return jax.eval_shape(lambda t, m: prefill(model, t, m, False), text, mask)


class ExportedStep:
    """A deserialized decode step: ``step(params, state, codes_t) -> (logits, state)``."""

    def __init__(self, exported: jax_export.Exported, state_like: DecodeState):
        self.exported = exported
        self.state_treedef = jax.tree.structure(state_like)

    def __call__(self, params: nnx.State, state: DecodeState, codes_t: jax.Array) -> tuple[jax.Array, DecodeState]:
        out = self.exported.call(*jax.tree.leaves((params, state, codes_t)))
        return out[0], jax.tree.unflatten(self.state_treedef, list(out[1:]))


def export_decode_step(model: SmallE, batch: int, text_len: int,
                       platforms: Optional[Sequence[str]] = None) -> jax_export.Exported:
    """``jax.export`` of ``model.decode_step`` at batch B and text length J."""
    graphdef, params = split_model(model)
    state = abstract_decode_state(model, batch, text_len)
    codes = jax.ShapeDtypeStruct((batch, model.config.n_codebooks), jnp.int32)
    args = (jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params), state, codes)
    leaves, treedef = jax.tree.flatten(args)

    def step(*flat):
        params, state, codes_t = jax.tree.unflatten(treedef, flat)
        logits, new_state = nnx.merge(graphdef, params).decode_step(state, codes_t)
        return (logits, *jax.tree.leaves(new_state))

    return jax_export.export(jax.jit(step), platforms=platforms)(*leaves)


def save(exported: jax_export.Exported, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(exported.serialize())
    return path


def load(path: str | Path, model: SmallE, batch: int, text_len: int) -> ExportedStep:
    """Deserialize ``path`` (written by :func:`save`); ``model`` gives the state structure."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"exported decode step {path} does not exist")
    exported = jax_export.deserialize(bytearray(path.read_bytes()))
    return ExportedStep(exported, abstract_decode_state(model, batch, text_len))


if __name__ == "__main__":  # the command line: small_e_jax/cli/export.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.export", run_name="__main__")
