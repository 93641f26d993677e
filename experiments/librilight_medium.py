"""The paper's recipe: Small-E (GLA, PACA, 62.8M) on LibriLight medium (docs/model.md §6).

    python -m experiments.librilight_medium [--data=DATASET|synthetic]
        [--config PRESET_OR_YAML] [key=value ...]

``--data`` picks the batches: ``synthetic`` (``small_e_jax.synthetic_data``, seeded random
batches, no files needed), or any TFDS dataset that ``data_pipeline.build`` builds (``mini``,
``speech_folder``, ``librilight_medium``, ``synthetic_corpus``: the builder registry; sets
``data.dataset``, default ``mini``). ``data.dataset=DATASET`` works as well; ``--data`` applies
before the ``key=value`` overrides, which always win over defaults (``--data`` and
``data.dataset`` naming different datasets is an error). The codec, its weights and the number
of codebooks come from the built dataset when the config leaves them at their defaults.
Example, a CPU smoke run that writes a checkpoint in about a minute:

    python -m experiments.librilight_medium --data=synthetic --config tiny trainer.workdir=runs/tiny

Re-running the same command resumes from ``<trainer.workdir>/checkpoints``. One trainer per
workdir: a second one is refused while the first runs (lock file ``trainer.lock`` in the checkpoint
directory). Exit codes: 0 done, 2 bad config/arguments, data not built or workdir in use by another
trainer, 1 diverged or no usable checkpoint, 143 stopped by SIGTERM (after saving).
"""

from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

from small_e_jax.cli import train

PRESET = "small_e_librilight_medium"


def main(argv: Optional[Sequence[str]] = None, **kwargs: Any) -> int:
    """The paper's recipe: :func:`small_e_jax.cli.train.main` with :data:`PRESET` and this help text
    (its keyword arguments, ``fixed`` settings and the others, pass through)."""
    return train.main(argv, **{"default_preset": PRESET, "doc": __doc__, **kwargs})


if __name__ == "__main__":
    sys.exit(main())
