"""The transformer baseline (docs/model.md §4): the same layout with causal self-attention blocks, ≈ 86M.

    python -m experiments.transformer_baseline [--data=DATASET|synthetic]
        [--config PRESET_OR_YAML] [key=value ...]

Same trainer, data and exit codes as ``experiments.librilight_medium``; default preset
``transformer_baseline``.
"""

import sys

from small_e_jax.cli.train import main

if __name__ == "__main__":
    sys.exit(main(default_preset="transformer_baseline", doc=__doc__))
