"""Moved to ``benchmarks/kernels/triton_resources.py``. This old path still runs it as a command
(``python -m kernels.benchmarks.triton_resources ...``), by name, so the kernels import no measuring tool."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("benchmarks.kernels.triton_resources", run_name="__main__", alter_sys=True)
