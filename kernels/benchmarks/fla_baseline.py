"""Moved to ``benchmarks/kernels/fla_baseline.py``. This old path still runs it as a command
(``python -m kernels.benchmarks.fla_baseline ...``), by name, so the kernels import no measuring tool."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("benchmarks.kernels.fla_baseline", run_name="__main__", alter_sys=True)
