"""Moved to ``benchmarks/kernels/pdl_probe.py``. This old path still runs it as a command
(``python -m kernels.benchmarks.pdl_probe ...``), by name, so the kernels import no measuring tool."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("benchmarks.kernels.pdl_probe", run_name="__main__", alter_sys=True)
