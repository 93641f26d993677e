"""Sequence-mixing kernels used by the model (pure JAX, plus Pallas backends later)."""
