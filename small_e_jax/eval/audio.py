"""Audio I/O for evaluation: kept as an import path; the code is :mod:`small_e_jax.audio`."""

from small_e_jax.audio import as_mono, read_audio, resample

__all__ = ["as_mono", "read_audio", "resample"]
