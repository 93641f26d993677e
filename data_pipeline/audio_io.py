"""Audio I/O for the dataset build: kept as an import path; the code is :mod:`small_e_jax.audio`."""

from small_e_jax.audio import AudioLimits, BadInput, load_audio, trim_and_normalize

__all__ = ["AudioLimits", "BadInput", "load_audio", "trim_and_normalize"]
