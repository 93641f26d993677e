"""Kept for compatibility: moved to :mod:`benchmarks.profile_step`; ``python -m small_e_jax.eval.profile_step`` and imports of
this old path still work (they are the same module)."""

import sys

from benchmarks import profile_step as _moved

if __name__ == "__main__":
    sys.exit(_moved.main())
else:
    sys.modules[__name__] = _moved
