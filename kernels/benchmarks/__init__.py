"""Old command paths of the kernel benchmarks, which moved to ``benchmarks/kernels/``."""
