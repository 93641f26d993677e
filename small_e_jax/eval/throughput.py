"""Moved to ``benchmarks/throughput.py``. This old path still runs it as a command
(``python -m small_e_jax.eval.throughput ...``), by name, so that nothing here imports it."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("benchmarks.throughput", run_name="__main__")
