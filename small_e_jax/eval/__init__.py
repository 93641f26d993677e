"""Offline evaluation of Small-E: text normalisation, WER/CER, skip/repeat counts (from ASR
alignments and from cross-attention), ASR, speaker similarity, perplexity, training throughput
and profiles, and reports.

Entry points: ``python -m small_e_jax.evaluate <subcommand>`` (docs/evaluation.md),
``python -m benchmarks.throughput`` and ``python -m benchmarks.profile_step``.
Optional heavy dependencies (faster-whisper, resemblyzer, torch, matplotlib) are imported lazily
by the modules that need them; ``requirements-eval.txt`` pins them.
"""
