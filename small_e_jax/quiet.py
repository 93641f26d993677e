"""Silence the libraries' routine chatter on the command line (orbax, absl, TFDS).

Orbax logs a warning for every read-only restore and for sharding it reads back from the file,
TFDS logs "Using custom data configuration" through absl on every open: none of it is something
a user can act on, and it buries the lines that are. Errors still show. Set
``SMALL_E_VERBOSE=1`` to keep everything (debugging).
"""

from __future__ import annotations

import logging
import os
import warnings

NOISY_LOGGERS = ("absl", "orbax", "orbax.checkpoint", "tensorflow", "jax._src.xla_bridge")


def verbose() -> bool:
    """Whether ``SMALL_E_VERBOSE`` asks for the libraries' full logs."""
    return os.environ.get("SMALL_E_VERBOSE", "").strip() not in ("", "0", "false")


def quiet_libraries() -> None:
    """Raise the noisy libraries' log level to ERROR and drop orbax's restore warnings (a no-op
    when :func:`verbose`). Called by the command-line entry points, never on import."""
    if verbose():
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl is a dependency of grain/orbax; tolerate its absence anyway
        pass
    # orbax: "Sharding info not provided when restoring..." on every single-device restore.
    warnings.filterwarnings("ignore", message=r"Sharding info not provided", category=UserWarning)
    warnings.filterwarnings("ignore", message=r".*[Gg]iven directory is read only.*")
