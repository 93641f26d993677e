"""Kept for compatibility: moved to :mod:`benchmarks.codec_profile_train`; ``python -m small_e_jax.codec.profile_train`` and imports of
this old path still work (they are the same module)."""

import sys

from benchmarks import codec_profile_train as _moved

if __name__ == "__main__":
    raise SystemExit(_moved.main())
else:
    sys.modules[__name__] = _moved
