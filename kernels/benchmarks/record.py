"""Kept for compatibility: the benchmark record format moved to :mod:`benchmarks.record`; this old
path is the same module."""

import sys

from benchmarks import record as _moved

sys.modules[__name__] = _moved
