"""Moved to ``small_e_jax/eval/codec_quality.py, its command small_e_jax/cli/codec_quality.py``. This old path still runs it as a command
(``python -m small_e_jax.codec.quality ...``), by name, so that nothing here imports it."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("small_e_jax.cli.codec_quality", run_name="__main__")
