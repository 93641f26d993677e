"""What a checkpoint holds on disk, and the error every checkpoint function raises.

A checkpoint directory (a run's ``checkpoints`` folder) holds one folder per saved step. The
trainer's step folders have the items:

* ``state``: every array of the train state as a flat ``{"params.audio_embed.value": array, ...}``
  dict (:func:`flatten_state`: robust to pytree node types; typed PRNG keys are stored as their
  raw ``key_data``). Parameters-only checkpoints (shipped models, the quickstart) store
  ``{"params": params}`` the same way;
* ``data``: the grain iterator state of every process (training checkpoints only);
* ``meta``: JSON ``{"step", "config", "val_loss", "saved_at"}`` (``config``: the resolved config).

The codec trainer's steps (:mod:`small_e_jax.checkpoint.leaves`) name their arrays by leaf index
instead (:func:`indexed_leaves`).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one that does not match the run; the message says why."""


def one_line(err: BaseException, limit: int = 200) -> str:
    """``"Type: message"`` on one line: whitespace collapsed, TensorStore's multi-line spec
    dump cut off, at most ``limit`` characters (restore errors can run to pages)."""
    text = str(err).split(" See full TensorStore details", 1)[0]
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# --------------------------------------------------------------------------- flat state (by path)


def _name(path: tuple[Any, ...]) -> str:
    parts = []
    for p in path:
        for attr in ("key", "name", "idx"):
            if hasattr(p, attr):
                parts.append(str(getattr(p, attr)))
                break
        else:
            parts.append(str(p))
    return ".".join(parts)


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def flatten_state(state: Any) -> dict[str, Any]:
    """Any pytree of arrays -> ``{dotted path: array}``, PRNG keys as raw key data."""
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    return {_name(path): jax.random.key_data(x) if _is_key(x) else x for path, x in flat}


def abstract_flat_state(state: Any) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes, dtypes and shardings of :func:`flatten_state` (the restore target)."""

    return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=getattr(v, "sharding", None))
            for k, v in flatten_state(state).items()}


def unflatten_state(flat: Mapping[str, Any], like: Any) -> Any:
    """The inverse of :func:`flatten_state`, with ``like``'s structure (and key types)."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(like)
    leaves = []
    for path, x in paths:
        value = flat[_name(path)]
        leaves.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(x)) if _is_key(x) else value)
    return jax.tree_util.tree_unflatten(treedef, leaves)


# --------------------------------------------------------------------------- flat state (by leaf index)


def indexed_leaves(state: Any) -> dict[str, Any]:
    """Any pytree -> ``{"00000": leaf, "00001": ...}`` in leaf order (the codec trainer's layout)."""
    return {f"{i:05d}": leaf for i, leaf in enumerate(jax.tree_util.tree_leaves(state))}


def from_indexed_leaves(flat: Mapping[str, Any], like: Any) -> Any:
    """The inverse of :func:`indexed_leaves`, with ``like``'s structure."""
    treedef = jax.tree_util.tree_structure(like)
    return jax.tree_util.tree_unflatten(treedef, [flat[f"{i:05d}"] for i in range(treedef.num_leaves)])
