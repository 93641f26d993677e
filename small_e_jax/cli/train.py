"""``small-e-train``: the generic training command line; the experiments (``python -m
experiments.librilight_medium`` and the others) are definitions over its :func:`main` (README.md,
Training). Its usage is :data:`USAGE` (the ``--help`` text)."""

from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

from small_e_jax.cli import entry_point, error
from small_e_jax.data_source import SYNTHETIC, data_choices, make_source

USAGE = """The generic training command line (``small-e-train``; the experiments' ``main``):

    small-e-train [--data=DATASET|synthetic] [--config PRESET_OR_YAML] [key=value ...]

It parses ``--data``, ``--config`` and ``key=value`` overrides, opens the data source (synthetic
batches or a built dataset through ``data_pipeline.loader``) and runs the trainer. The
experiments (``python -m experiments.librilight_medium`` and the others) are thin definitions
over :func:`main`: a default preset, their defining settings (``fixed``)
and their help text (``doc``). ``--data`` picks the batches: ``synthetic``
(``small_e_jax.synthetic_data``, seeded random batches, no files needed), or any TFDS dataset
that ``data_pipeline.build`` builds (the builder registry; sets ``data.dataset``, default
``mini``). Exit codes: 0 done, 2 bad config/arguments, data not built or workdir in use by
another trainer, 1 diverged or no usable checkpoint, 143 stopped by SIGTERM (after saving).
"""


def parse_args(argv: Sequence[str], default_preset: str, fixed: Sequence[str] = (),
               default_data: str = "mini") -> tuple[str, Any]:
    """``--data=X`` plus config arguments -> (data choice, Config).

    Order of application: the preset, ``fixed`` (an ablation's defining settings), the data
    choice (``data.dataset=X``), then the user's ``key=value`` overrides, which win. The data
    choice is ``--data``, else the user's ``data.dataset=``, else ``default_data``."""
    from small_e_jax.config import ConfigError, load_config, parse_override

    flag, source, overrides = None, default_preset, []
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in ("--data", "--config", "-c"):
            if not eq:
                if not args:
                    raise ConfigError(f"{name} needs a value")
                value = args.pop(0)
            if name == "--data":
                flag = value
            else:
                source = value
        else:
            overrides.append(arg)
    explicit = None  # the user's last data.dataset=... override
    for arg in overrides:
        key, value = parse_override(arg)
        if key == "data.dataset":
            explicit = str(value)
    if flag is not None and explicit is not None and flag != explicit:
        raise ConfigError(f"--data={flag} and data.dataset={explicit} name different datasets: give one")
    data = flag if flag is not None else explicit if explicit is not None else default_data
    choices = data_choices()
    if data not in choices:
        what = "--data" if flag is not None else "data.dataset" if explicit is not None else "default data"
        raise ConfigError(f"{what}={data!r}: expected one of {', '.join(choices)}")
    chosen = [] if data == SYNTHETIC else [f"data.dataset={data}"]
    user = [a for a in overrides if not (data == SYNTHETIC and parse_override(a)[0] == "data.dataset")]
    return data, load_config(source, [*fixed, *chosen, *user])


@entry_point
def main(argv: Optional[Sequence[str]] = None, *, default_preset: str = "small_e_librilight_medium",
         fixed: Sequence[str] = (), doc: str = USAGE, default_data: str = "mini") -> int:
    """Train ``default_preset`` (+ ``fixed``, the data choice, the user's overrides); ``--help``
    prints ``doc``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(doc.strip())
        return 0
    from small_e_jax.checkpoint import CheckpointError
    from small_e_jax.config import ConfigError

    try:
        data, config = parse_args(argv, default_preset, fixed, default_data)
    except ConfigError as err:
        return error(err, 2)
    from small_e_jax import gpu_graphs, sharding, train

    if config.trainer.cuda_graphs:
        gpu_graphs.enable_cuda_graphs()  # XLA reads its flags when the backend starts
    sharding.initialize_distributed(config.trainer.distributed)  # before any other JAX call
    try:
        source = make_source(data, config)
    except (FileNotFoundError, ValueError) as err:
        return error(err, 2)
    from small_e_jax.workdir_lock import WorkdirLocked

    try:
        result = train.run(config, source)
    except WorkdirLocked as err:
        return error(err, 2)
    except (train.TrainingDiverged, CheckpointError) as err:
        return error(err, 1)
    print(f"{result.stopped}: step {result.step}, checkpoints in {train.checkpoint_dir(config)}")
    return 143 if result.stopped == "sigterm" else 0


if __name__ == "__main__":
    sys.exit(main())
