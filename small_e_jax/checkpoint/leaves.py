"""Checkpoints of a plain train-state pytree, its arrays named by leaf index: the codec trainer's
(``python -m small_e_jax.codec.train``, ``WORKDIR/checkpoints``).

A step folder holds ``state`` (``{"00000": leaf, ...}``, :func:`~small_e_jax.checkpoint.layout.indexed_leaves`)
and ``meta`` (JSON, whatever the caller passes). Saves are synchronous; the ``keep`` newest steps
are kept. Restoring reads the newest step into the structure and shardings of a given state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import orbax.checkpoint as ocp

from small_e_jax.checkpoint.layout import from_indexed_leaves, indexed_leaves


class LeafCheckpoints:
    """Orbax checkpoints of a train state (a flat ``{index: array}`` of its leaves) + JSON meta."""

    def __init__(self, directory: Path, keep: int):
        self.manager = ocp.CheckpointManager(
            Path(directory).resolve(), options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(indexed_leaves(state)),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def restore(self, state: Any) -> tuple[Any, dict]:
        """Restore the newest step into the structure (and shardings) of ``state``."""
        step = self.manager.latest_step()
        out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(indexed_leaves(state)),
                                                                 meta=ocp.args.JsonRestore()))
        return from_indexed_leaves(out["state"], state), out["meta"]

    def close(self) -> None:
        self.manager.close()
