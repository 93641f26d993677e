"""Moved to ``benchmarks/profile_step.py``. This old path still runs it as a command
(``python -m small_e_jax.eval.profile_step ...``), by name, so that nothing here imports it."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("benchmarks.profile_step", run_name="__main__")
