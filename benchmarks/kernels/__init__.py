"""Kernel benchmarks: every timing is printed beside a baseline measured in the same run."""
