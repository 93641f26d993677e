"""Kept for compatibility: moved to :mod:`benchmarks.bench_loader`; ``python -m data_pipeline.bench_loader`` and imports of
this old path still work (they are the same module)."""

import sys

from benchmarks import bench_loader as _moved

if __name__ == "__main__":
    from absl import flags
    flags.FLAGS(["bench_loader"])  # grain worker processes read absl flags
    _moved.main()
else:
    sys.modules[__name__] = _moved
