"""Finding the checkpoint directory in what a user passes: a run's workdir, its ``checkpoints``
folder, or one step's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from small_e_jax.checkpoint.layout import CheckpointError


def locate_checkpoint(path: str | Path) -> tuple[Path, Optional[int]]:
    """(checkpoint directory, step or None) from what a user may pass: a run's workdir, its
    ``checkpoints`` folder, or one step's folder (``.../checkpoints/200``: that step).
    :class:`CheckpointError` if none of these holds a checkpoint."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise CheckpointError(f"checkpoint directory {path} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a directory (pass a run's workdir, its checkpoints folder or "
                              "one step's folder, e.g. runs/tiny)")
    for candidate in (path, path / "checkpoints"):
        if candidate.is_dir() and any(p.name.isdigit() for p in candidate.iterdir()):
            return candidate, None
    if path.name.isdigit() and any(p.is_dir() for p in path.iterdir()):
        return path.parent, int(path.name)  # one step's folder
    raise CheckpointError(f"no checkpoint in {path}: expected step folders (e.g. {path}/200) written by "
                          "training (python -m experiments.*); pass the run's workdir, its checkpoints "
                          "folder or one step's folder")


def find_checkpoint_dir(directory: str | Path) -> Path:
    """The checkpoint directory of ``directory`` (see :func:`locate_checkpoint`)."""
    return locate_checkpoint(directory)[0]
