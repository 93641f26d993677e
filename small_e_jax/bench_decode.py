"""Kept for compatibility: moved to :mod:`benchmarks.bench_decode`; ``python -m small_e_jax.bench_decode`` and imports of
this old path still work (they are the same module)."""

import sys

from benchmarks import bench_decode as _moved

if __name__ == "__main__":
    sys.exit(_moved.main())
else:
    sys.modules[__name__] = _moved
