"""Kept for compatibility: moved to :mod:`small_e_jax.codec.training.train`; ``python -m small_e_jax.codec.train`` and imports of
this old path still work (they are the same module)."""

import sys

from small_e_jax.codec.training import train as _moved

if __name__ == "__main__":
    from small_e_jax.cli.codec_train import main

    raise SystemExit(main())
else:
    sys.modules[__name__] = _moved
