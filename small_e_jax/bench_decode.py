"""Moved to ``benchmarks/bench_decode.py``. This old path still runs it as a command
(``python -m small_e_jax.bench_decode ...``), by name, so that nothing here imports it."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("benchmarks.bench_decode", run_name="__main__")
