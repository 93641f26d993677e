"""Models shipped inside the package, and turning a training run into one.

    python -m small_e_jax.pretrained export --checkpoint runs/small_e_reading/checkpoints --out DIR
    python -m small_e_jax.pretrained list

A shipped model is a parameters-only checkpoint (the trainer's layout, no optimizer state, no
data iterator) with its floating-point parameters in bfloat16, in ``small_e_jax/pretrained/<name>/``,
plus ``card.json`` (where it came from). It loads with
``Synthesizer.from_pretrained(NAME)`` (a name listed by ``python -m small_e_jax.pretrained list``,
or an exported folder). No model ships yet: the reading model (``experiments.small_e_reading``)
will be the first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

# The lookup of shipped models is in small_e_jax/shipped.py (below inference, which uses it);
# re-exported here.
from small_e_jax.shipped import DEFAULT_MODEL, PRETRAINED_DIR, pretrained_path, shipped_models  # noqa: F401


def export(checkpoint: str | Path, out: str | Path, *, step: Optional[int] = None, dtype: str = "bfloat16",
           card: Optional[dict[str, Any]] = None) -> Path:
    """Write the model of a training checkpoint as a params-only checkpoint in ``dtype`` at ``out``."""
    import jax
    from flax import nnx

    from small_e_jax.checkpoint import save_params_checkpoint
    from small_e_jax.config import config_to_dict
    from small_e_jax.inference import load_model

    model, config, saved_step = load_model(checkpoint, step=step, param_dtype=dtype)
    params = nnx.state(model, nnx.Param)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    save_params_checkpoint(out, params, config_to_dict(config), saved_step)
    n_params = sum(int(x.size) for x in jax.tree.leaves(params))
    info = {"name": config.name, "step": saved_step, "parameters": n_params, "dtype": dtype,
            "source_checkpoint": str(checkpoint), **(card or {})}
    (out / "card.json").write_text(json.dumps(info, indent=1) + "\n")
    return out


if __name__ == "__main__":  # the command line: small_e_jax/cli/pretrained.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.pretrained", run_name="__main__")
