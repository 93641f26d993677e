"""Moved to ``benchmarks/codec_profile_train.py``. This old path still runs it as a command
(``python -m small_e_jax.codec.profile_train ...``), by name, so that nothing here imports it."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("benchmarks.codec_profile_train", run_name="__main__")
