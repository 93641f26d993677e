"""Checkpoints: the one place that finds, reads, restores and writes them (orbax underneath).

* :mod:`~small_e_jax.checkpoint.layout`: what a step folder holds (the ``state``, ``data`` and
  ``meta`` items, arrays named by their pytree path) and :class:`CheckpointError`;
* :mod:`~small_e_jax.checkpoint.find`: :func:`locate_checkpoint` — a run's workdir, its
  ``checkpoints`` folder or one step's folder -> (checkpoints folder, step or None);
* :mod:`~small_e_jax.checkpoint.read`: :class:`CheckpointReader` (steps, metadata, the saved
  config, a whole train state) and :func:`restore_params` (the parameters of the newest step that
  reads back, skipping corrupt ones, with one log line) — used by inference
  (``small_e_jax.inference.load_model``, hence export, IST, shipped models) and evaluation;
* :mod:`~small_e_jax.checkpoint.checkpointer`: :class:`Checkpointer`, the trainer's save / resume
  (data-iterator position, config check, corrupt steps moved aside) and
  :func:`save_params_checkpoint` (parameters only, same layout);
* :mod:`~small_e_jax.checkpoint.leaves`: :class:`LeafCheckpoints`, the codec trainer's
  checkpoints (arrays named by leaf index).

Importing the package loads JAX and orbax but neither draccus (``small_e_jax.config``) nor grain:
those are imported by the functions that need them, so that the codec trainer runs on an image
without them.
"""

from small_e_jax.checkpoint.checkpointer import (RESUMABLE_FIELDS, Checkpointer, config_differences,
                                                 save_params_checkpoint)
from small_e_jax.checkpoint.find import find_checkpoint_dir, locate_checkpoint
from small_e_jax.checkpoint.layout import (CheckpointError, abstract_flat_state, flatten_state, from_indexed_leaves,
                                           indexed_leaves, one_line, unflatten_state)
from small_e_jax.checkpoint.leaves import LeafCheckpoints
from small_e_jax.checkpoint.read import (CheckpointReader, RestoredParams, config_from_meta, read_meta,
                                         read_only_manager, restore_params)

__all__ = ["RESUMABLE_FIELDS", "Checkpointer", "config_differences", "save_params_checkpoint", "find_checkpoint_dir",
           "locate_checkpoint", "CheckpointError", "abstract_flat_state", "flatten_state", "from_indexed_leaves",
           "indexed_leaves", "one_line", "unflatten_state", "LeafCheckpoints", "CheckpointReader", "RestoredParams",
           "config_from_meta", "read_meta", "read_only_manager", "restore_params"]
