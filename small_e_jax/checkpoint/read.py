"""Reading checkpoints: metadata, the saved config, the parameters of the newest step that reads
back, a whole train state. Nothing here writes, moves or creates anything.

    reader = CheckpointReader.open("runs/tiny")    # a workdir, its checkpoints folder or one step's folder
    step = reader.default_step or reader.all_steps()[-1]
    config = reader.read_config(step)              # the resolved config saved with the step
    state = reader.restore_state(step, like)       # every array of a train state shaped like `like`

    restored = restore_params("runs/tiny", abstract_params)   # parameters of the newest usable step

:func:`restore_params` (inference, export, IST, shipped models) takes the newest step that reads
back: older steps are tried when the newest is partial or corrupt, and one log line names the
step used and the steps skipped (the files stay where they are: moving corrupt steps aside is
the trainer's job, :class:`~small_e_jax.checkpoint.checkpointer.Checkpointer`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

import jax
import orbax.checkpoint as ocp

from small_e_jax.checkpoint.find import locate_checkpoint
from small_e_jax.checkpoint.layout import CheckpointError, abstract_flat_state, flatten_state, one_line, unflatten_state

if TYPE_CHECKING:  # small_e_jax.config needs draccus, which the codec trainer's image lacks: imported lazily
    from small_e_jax.config import Config

log = logging.getLogger(__name__)


def read_only_manager(directory: str | Path) -> ocp.CheckpointManager:
    """An orbax manager over ``directory`` that neither creates nor changes anything."""
    return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False, read_only=True))


def read_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    """The ``meta`` item (JSON) of ``step``."""
    return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def config_from_meta(meta: Mapping[str, Any], *, model_overrides: Optional[Mapping[str, Any]] = None,
                     reset_mesh: bool = False) -> "Config":
    """The resolved config saved in a step's ``meta`` (``KeyError`` if it has none; ``ConfigError``
    if this version cannot build it).

    model_overrides: ``model`` fields to replace (e.g. ``{"decode_kernels": "xla"}``).
    reset_mesh: keep only the mesh's ``logical_axis_rules``, so that the mesh is all local devices
      on the data axis (the one the run used may not exist here).
    """
    from small_e_jax.config import config_from_dict

    raw = meta["config"]
    if model_overrides:
        raw = {**raw, "model": {**raw.get("model", {}), **model_overrides}}
    if reset_mesh:
        raw = {**raw, "mesh": {k: v for k, v in raw.get("mesh", {}).items() if k == "logical_axis_rules"}}
    return config_from_dict(raw)


class CheckpointReader:
    """Read-only access to one checkpoint directory (its step folders)."""

    def __init__(self, directory: str | Path, default_step: Optional[int] = None):
        """``directory``: a checkpoints folder (a local path or a URL such as ``gs://...``);
        ``default_step``: the step the caller named by passing a step's folder, if any."""
        self.directory = directory
        self.default_step = default_step
        self.manager = read_only_manager(directory)

    @classmethod
    def open(cls, path: str | Path) -> "CheckpointReader":
        """The checkpoints of a run's workdir, its checkpoints folder or one step's folder
        (:func:`~small_e_jax.checkpoint.find.locate_checkpoint`; :class:`CheckpointError` if none)."""
        return cls(*locate_checkpoint(path))

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def read_meta(self, step: int) -> dict[str, Any]:
        return read_meta(self.manager, step)

    def read_config(self, step: int, **kwargs: Any) -> "Config":
        """The config saved with ``step``; ``kwargs`` as :func:`config_from_meta`."""
        return config_from_meta(self.read_meta(step), **kwargs)

    def restore_arrays(self, step: int, target: Mapping[str, jax.ShapeDtypeStruct], *,
                       partial: bool = False) -> dict[str, Any]:
        """The ``state`` arrays of ``step`` named in ``target`` (flat names -> shapes, dtypes and
        shardings). ``partial``: ``target`` may name a subset of the saved arrays (parameters
        out of a full train state); without it, it must name them all."""
        if partial:
            args = ocp.args.PyTreeRestore(item=dict(target), partial_restore=True)
        else:
            args = ocp.args.StandardRestore(dict(target))
        return self.manager.restore(step, args=ocp.args.Composite(state=args))["state"]

    def restore_state(self, step: int, like: Any) -> Any:
        """Every array of ``step``'s train state, in ``like``'s structure, dtypes and shardings
        (the data-iterator position is not read)."""
        return unflatten_state(self.restore_arrays(step, abstract_flat_state(like)), like)

    def close(self) -> None:
        self.manager.close()

    def __enter__(self) -> "CheckpointReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclasses.dataclass
class RestoredParams:
    """What :func:`restore_params` read: the step used, its config and metadata, the parameters
    (the structure the caller's ``abstract_params`` gave), and why newer steps were skipped."""

    directory: Path
    step: int
    config: "Config"
    meta: dict[str, Any]
    params: Any
    skipped: list[str]


def restore_params(path: str | Path, abstract_params: Callable[["Config"], Any], *, step: Optional[int] = None,
                   model_overrides: Optional[Mapping[str, Any]] = None,
                   logger: Optional[logging.Logger] = None) -> RestoredParams:
    """The parameters of a checkpoint, on the first device. ``path``: a run's workdir, its
    checkpoints folder or one step's folder (that step, unless ``step`` names another).

    ``abstract_params(config)`` gives the parameter tree (shapes and dtypes) of the model that
    the saved ``config`` builds; the saved ``params.*`` arrays are restored into it.
    step: a saved step (default: the newest one that reads back; older ones are tried when the
      newest is partial or corrupt).
    model_overrides: ``model`` config fields to replace (:func:`config_from_meta`); a value they
      make invalid raises its ``ConfigError`` as is (the caller's choice is wrong, not the checkpoint).
    logger: where the one line naming the step used (and any skipped) goes (default: this module's).
    Raises :class:`CheckpointError` for a missing, partial or incompatible checkpoint.
    """
    from small_e_jax.config import ConfigError

    logger = logger or log
    with CheckpointReader.open(path) as reader:
        path = Path(reader.directory)
        step = reader.default_step if step is None else step  # a step's folder names its step
        steps = sorted(reader.all_steps(), reverse=True)
        if step is not None:
            if step not in steps:
                raise CheckpointError(f"step {step} is not in {path}; saved steps: {sorted(steps)}")
            steps = [step]
        failures = []
        for s in steps:
            try:
                meta = reader.read_meta(s)
            except Exception as err:  # noqa: BLE001 - any read error means "unusable step"
                failures.append(f"step {s}: metadata unreadable ({one_line(err)})")
                continue
            if not isinstance(meta, dict) or "config" not in meta:
                failures.append(f"step {s}: metadata has no saved config")
                continue
            try:
                config = config_from_meta(meta, model_overrides=model_overrides)
            except ConfigError as err:
                if model_overrides and any(key in str(err) for key in model_overrides):
                    raise  # the caller's choice, not the checkpoint, is wrong
                raise CheckpointError(f"checkpoint {path}/{s} has a config this version cannot build "
                                      f"(incompatible checkpoint): {err}") from None
            params = abstract_params(config)
            device = jax.devices()[0]
            target = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=jax.sharding.SingleDeviceSharding(device))
                      for k, v in flatten_state({"params": params}).items()}
            try:
                restored = reader.restore_arrays(s, target, partial=True)
            except Exception as err:  # noqa: BLE001
                text = str(err)
                kind = "incompatible" if "shape" in text.lower() or "mismatch" in text.lower() else "partial or corrupt"
                failures.append(f"step {s}: parameters unreadable, {kind} ({one_line(err, 300)})")
                continue
            missing = sorted(set(target) - set(restored))
            if missing:
                failures.append(f"step {s}: partial checkpoint, missing {len(missing)} arrays, e.g. {missing[:3]}")
                continue
            wrong = [f"{k}: saved {tuple(restored[k].shape)}, model {target[k].shape}" for k in target
                     if tuple(restored[k].shape) != tuple(target[k].shape)]
            if wrong:
                raise CheckpointError(f"checkpoint {path}/{s} does not fit its own config (incompatible): "
                                      + "; ".join(wrong[:3]))
            params = unflatten_state(restored, {"params": params})["params"]
            # One line: the step used and, if any, the newer steps skipped and why.
            if failures:
                logger.warning("restored checkpoint step %d of %s; skipped unusable steps: %s", s, path,
                               " | ".join(failures))
            else:
                logger.info("restored checkpoint step %d of %s", s, path)
            return RestoredParams(path, s, config, meta, params, failures)
    raise CheckpointError(f"no usable checkpoint in {path}: " + " | ".join(failures))
