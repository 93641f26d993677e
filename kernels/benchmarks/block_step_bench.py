"""Moved to ``benchmarks/kernels/block_step_bench.py``. This old path still runs it as a command
(``python -m kernels.benchmarks.block_step_bench ...``), by name, so the kernels import no measuring tool."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("benchmarks.kernels.block_step_bench", run_name="__main__", alter_sys=True)
