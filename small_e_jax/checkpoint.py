"""Orbax checkpoints of a training run: train state, data-iterator position, resolved config.

One checkpoint = one step directory under ``checkpoint.directory`` with three items:

* ``state``: every array of the train state (parameters, optimizer state, step, dropout RNG
  state) as a flat ``{"params.audio_embed.value": array, ...}`` dict (robust to pytree node
  types; typed PRNG keys are stored as their raw ``key_data``);
* ``data``: the grain iterator state of every process (``grain.checkpoint.CheckpointSave``);
* ``meta``: JSON ``{"step", "config", "val_loss", "saved_at"}``.

Retention: the ``checkpoint.keep`` latest plus the ``checkpoint.keep_best`` lowest validation
losses. Saves are asynchronous when ``checkpoint.async_save`` (the device->host copy happens
before :meth:`Checkpointer.save` returns, so the caller may overwrite its arrays).

Restoring (:meth:`Checkpointer.restore`) takes the newest step that reads back; a corrupt or
partial step is reported and skipped in favour of the one before. With ``quarantine=True`` (the
trainer) each skipped step is moved aside to ``<step>.corrupt-<UTC time>`` (kept for inspection;
orbax no longer lists it), so the resumed run saves that step again instead of leaving a corrupt
step as the newest. When no step reads back nothing is moved and :class:`CheckpointError` says
why for each step, on one line. A checkpoint written with a
different config is refused with the list of differing fields, except for the fields in
:data:`RESUMABLE_FIELDS`, which change how a run is driven but not the model, optimizer or data
order. Note that ``trainer.steps`` sets the length of the cosine schedule: resuming with another
value continues from the saved state along the new schedule.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from small_e_jax.config import CheckpointConfig

log = logging.getLogger(__name__)

# Dotted config keys (or prefixes ending in ".") that may differ between a checkpoint and the
# run that restores it.
RESUMABLE_FIELDS: tuple[str, ...] = (
    "name", "trainer.workdir", "trainer.steps", "trainer.log_every", "trainer.eval_every",
    "trainer.eval_batches", "trainer.max_consecutive_bad_steps", "trainer.profile_steps",
    "trainer.distributed", "trainer.progress_bar", "trainer.tensorboard", "trainer.warn_val_rise",
    "checkpoint.", "eval.", "mesh.", "data.data_dir", "data.manual_dir", "data.worker_count",
)


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


# --------------------------------------------------------------------------- config check


def _flatten_dict(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten_dict(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any],
                       allowed: Sequence[str] = RESUMABLE_FIELDS) -> list[str]:
    """``["model.d_model: checkpoint 64, now 128", ...]`` for fields outside ``allowed``."""
    norm = lambda tree: _flatten_dict(json.loads(json.dumps(tree)))  # tuples -> lists
    a, b = norm(saved), norm(current)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if any(key == f or (f.endswith(".") and key.startswith(f)) for f in allowed):
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            diffs.append(f"{key}: checkpoint {a.get(key, '<absent>')!r}, now {b.get(key, '<absent>')!r}")
    return diffs


# --------------------------------------------------------------------------- flat state


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


# --------------------------------------------------------------------------- manager


class Checkpointer:
    """Save / restore a run's checkpoints in ``directory`` (see module doc)."""

    def __init__(self, directory: str | Path, config: CheckpointConfig):
        """``directory``: a local path or a URL such as ``gs://bucket/run/checkpoints``."""
        # gs://... stays a URL (orbax writes through etils.epath); local paths become absolute.
        self.directory = directory if "://" in str(directory) else Path(directory).absolute()
        policies: list[pp.PreservationPolicy] = [pp.LatestN(n=config.keep)]
        if config.keep_best:
            policies.append(pp.BestN(get_metric_fn=lambda m: m["val_loss"], reverse=True,
                                     n=config.keep_best, keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=pp.AnyPreservationPolicy(policies),
            enable_async_checkpointing=config.async_save, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self.skipped: list[tuple[int, str, Optional[str]]] = []  # see restore()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, data_iterator: Any, config: Mapping[str, Any], *,
             val_loss: Optional[float] = None) -> None:
        """Save (asynchronously if configured); a step that is already saved is skipped."""
        if step in self.manager.all_steps():
            return
        meta = {"step": int(step), "config": dict(config), "val_loss": val_loss,
                "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        args = ocp.args.Composite(state=ocp.args.StandardSave(flatten_state(state)),
                                  data=grain.checkpoint.CheckpointSave(data_iterator),
                                  meta=ocp.args.JsonSave(meta))
        metrics = {"val_loss": float(val_loss)} if val_loss is not None else None
        self.manager.save(step, args=args, metrics=metrics, force=True)

    def read_meta(self, step: int) -> dict[str, Any]:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, like: Any, data_iterator: Any, config: Mapping[str, Any], *,
                quarantine: bool = False) -> Optional[tuple[Any, dict[str, Any]]]:
        """Restore the newest readable step into ``like``'s structure/shardings and move
        ``data_iterator`` to its saved position. Returns (state, meta) or None if there are no
        checkpoints. Raises :class:`CheckpointError` on a config mismatch or if no step reads.

        Newer steps that do not read back are skipped with one warning line each; with
        ``quarantine`` they are also moved aside (:meth:`move_aside`, process 0 only), so that
        the caller's next save of that step is not skipped as "already saved".
        :attr:`skipped` lists ``(step, reason, moved_to or None)`` of the last restore."""
        self.skipped = []
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            return None
        target = abstract_flat_state(like)
        failures: list[tuple[int, str]] = []
        for step in steps:
            try:
                meta = self.read_meta(step)
            except Exception as err:  # noqa: BLE001 - any read error means "unusable step"
                failures.append((step, f"metadata unreadable, {one_line(err)}"))
                continue
            diffs = config_differences(meta.get("config", {}), config)
            if diffs:
                raise CheckpointError(
                    f"checkpoint {self.directory}/{step} was written with a different config; "
                    f"differing fields: {'; '.join(diffs)} (use another trainer.workdir or "
                    f"checkpoint.directory to start a new run)")
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target),
                    data=grain.checkpoint.CheckpointRestore(data_iterator)))
                flat = restored["state"]
                missing = set(target) - set(flat)
                if missing:
                    raise ValueError(f"missing arrays {sorted(missing)[:3]}")
            except Exception as err:  # noqa: BLE001
                failures.append((step, one_line(err)))
                continue
            self._report_skipped(failures, quarantine)
            return unflatten_state(flat, like), meta
        # Nothing moved: every step unusable is for the user to look at (a wrong directory, a
        # disk problem), not a reason to restart silently from step 0.
        raise CheckpointError(
            f"no readable checkpoint in {self.directory} (all {len(steps)} steps are corrupt or "
            "partial; move them aside or use another trainer.workdir to start a new run): "
            + " | ".join(f"step {step}: {reason}" for step, reason in failures))

    def _report_skipped(self, failures: Sequence[tuple[int, str]], quarantine: bool) -> None:
        """One warning line per skipped step; move them aside if ``quarantine``."""
        for step, reason in failures:
            moved = self.move_aside(step) if quarantine else None
            self.skipped.append((step, reason, moved))
            if moved is not None:
                log.warning("checkpoint %s/%d is corrupt or partial (%s); moved aside to %s",
                            self.directory, step, reason, moved)
            else:
                log.warning("checkpoint %s/%d is corrupt or partial (%s); skipped",
                            self.directory, step, reason)
        if quarantine and failures:
            if jax.process_count() > 1:  # every process must see the moved folders before saving
                from jax.experimental import multihost_utils
                multihost_utils.sync_global_devices("small_e_jax.checkpoint.move_aside")
            self.manager.reload()  # forget the moved steps, so that they are saved again

    def move_aside(self, step: int) -> Optional[str]:
        """Rename step folder ``step`` to ``<step>.corrupt-<UTC time>`` (a name orbax does not
        list as a step; the files are kept). Process 0 only (others return the name too).
        Returns the new folder name; :class:`CheckpointError` if the rename fails (a save of
        the same step would otherwise be skipped, leaving the corrupt one the newest)."""
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        root = epath.Path(self.directory)
        source = root / str(step)
        name = f"{step}.corrupt-{stamp}"
        n = 1
        while (root / name).exists():  # the same step moved twice within a second
            n += 1
            name = f"{step}.corrupt-{stamp}-{n}"
        if jax.process_index() == 0:
            try:
                source.rename(root / name)
            except Exception as err:  # noqa: BLE001
                raise CheckpointError(f"could not move corrupt checkpoint {source} aside to {name}: "
                                      f"{one_line(err)}") from None
        return name

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def save_params_checkpoint(directory: str | Path, params: Any, config: Mapping[str, Any], step: int) -> Path:
    """Write a parameters-only checkpoint (items ``state`` = ``{"params": params}`` flattened, and
    ``meta``; no optimizer state, no data iterator) in the layout the trainer writes, so that
    :func:`small_e_jax.inference.load_model` and ``Synthesizer.from_checkpoint`` read it.

    ``params``: the model's ``nnx.State`` of ``nnx.Param``; ``config``: the resolved config as a
    dict (:func:`small_e_jax.config.config_to_dict`). For models trained outside the trainer
    (the quickstart, tests) or to ship a model without its optimizer state. Returns the directory.
    """
    path = Path(directory).absolute()
    manager = ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(create=True))
    meta = {"step": int(step), "config": dict(config), "val_loss": None,
            "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    manager.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(flatten_state({"params": params})),
                                                    meta=ocp.args.JsonSave(meta)), force=True)
    manager.wait_until_finished()
    manager.close()
    return path
