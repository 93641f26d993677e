"""The trainer's checkpoints: save and restore a run's train state, data-iterator position and
resolved config (the layout: :mod:`small_e_jax.checkpoint.layout`).

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

:func:`save_params_checkpoint` writes a parameters-only checkpoint in the same layout.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import jax
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from small_e_jax.checkpoint.layout import CheckpointError, abstract_flat_state, flatten_state, one_line, unflatten_state
from small_e_jax.checkpoint.read import read_meta

if TYPE_CHECKING:  # draccus (config) and grain are not imported with the package (see its docstring)
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
        import grain

        meta = {"step": int(step), "config": dict(config), "val_loss": val_loss,
                "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        args = ocp.args.Composite(state=ocp.args.StandardSave(flatten_state(state)),
                                  data=grain.checkpoint.CheckpointSave(data_iterator),
                                  meta=ocp.args.JsonSave(meta))
        metrics = {"val_loss": float(val_loss)} if val_loss is not None else None
        self.manager.save(step, args=args, metrics=metrics, force=True)

    def read_meta(self, step: int) -> dict[str, Any]:
        return read_meta(self.manager, step)

    def restore(self, like: Any, data_iterator: Any, config: Mapping[str, Any], *,
                quarantine: bool = False) -> Optional[tuple[Any, dict[str, Any]]]:
        """Restore the newest readable step into ``like``'s structure/shardings and move
        ``data_iterator`` to its saved position. Returns (state, meta) or None if there are no
        checkpoints. Raises :class:`CheckpointError` on a config mismatch or if no step reads.

        Newer steps that do not read back are skipped with one warning line each; with
        ``quarantine`` they are also moved aside (:meth:`move_aside`, process 0 only), so that
        the caller's next save of that step is not skipped as "already saved".
        :attr:`skipped` lists ``(step, reason, moved_to or None)`` of the last restore."""
        import grain

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
    :func:`small_e_jax.checkpoint.read.restore_params` (``small_e_jax.inference.load_model``,
    ``Synthesizer.from_checkpoint``) reads it.

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
