"""Moved to ``benchmarks/bench_loader.py``. This old path still runs it as a command
(``python -m data_pipeline.bench_loader ...``), by name, so that nothing here imports it."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("benchmarks.bench_loader", run_name="__main__")
