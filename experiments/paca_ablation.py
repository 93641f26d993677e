"""PACA ablation: the paper's model with plain multi-head cross-attention instead of PACA.

    python -m experiments.paca_ablation [--data=DATASET|synthetic]
        [--config PRESET_OR_YAML] [key=value ...]

Same trainer, data and exit codes as ``experiments.librilight_medium``; the defining settings
(``model.cross_attention=plain``, 4 heads, ``name=paca_ablation``) come before the user's
overrides. Use another ``trainer.workdir`` than the PACA run's.
"""

import sys

from experiments.librilight_medium import PRESET
from small_e_jax.cli.train import main

FIXED = ("name=paca_ablation", "model.cross_attention=plain", "model.cross_attention_heads=4",
         "trainer.workdir=runs/paca_ablation")

if __name__ == "__main__":
    sys.exit(main(default_preset=PRESET, fixed=FIXED, doc=__doc__))
