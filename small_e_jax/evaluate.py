"""Kept for compatibility: moved to :mod:`small_e_jax.cli.evaluate`; ``python -m small_e_jax.evaluate`` and imports of
this old path still work (they are the same module)."""

import sys

from small_e_jax.cli import evaluate as _moved

if __name__ == "__main__":
    raise SystemExit(_moved.main())
else:
    sys.modules[__name__] = _moved
