"""Kept for compatibility: moved to :mod:`small_e_jax.codec.training.train`; ``python -m small_e_jax.codec.train`` and imports of
this old path still work (they are the same module)."""

import sys

from small_e_jax.codec.training import train as _moved

if __name__ == "__main__":  # the command line: small_e_jax/cli/codec_train.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.codec_train", run_name="__main__")
else:
    sys.modules[__name__] = _moved
