"""Kept for compatibility: moved to :mod:`benchmarks.throughput`; ``python -m small_e_jax.eval.throughput`` and imports of
this old path still work (they are the same module)."""

import sys

from benchmarks import throughput as _moved

if __name__ == "__main__":
    sys.exit(_moved.main())
else:
    sys.modules[__name__] = _moved
