"""Kept for compatibility: moved to :mod:`small_e_jax.eval.codec_quality` (its command line: :mod:`small_e_jax.cli.codec_quality`);
``python -m small_e_jax.codec.quality`` and imports of this old path still work (they are the same module)."""

import sys

from small_e_jax.eval import codec_quality as _moved

if __name__ == "__main__":
    from small_e_jax.cli.codec_quality import main

    raise SystemExit(main())
else:
    sys.modules[__name__] = _moved
