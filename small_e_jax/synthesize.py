"""Kept for compatibility: moved to :mod:`small_e_jax.cli.synthesize`; ``python -m small_e_jax.synthesize`` and imports of
this old path still work (they are the same module)."""

import sys

from small_e_jax.cli import synthesize as _moved

if __name__ == "__main__":
    raise SystemExit(_moved.main())
else:
    sys.modules[__name__] = _moved
