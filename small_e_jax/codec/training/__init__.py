"""Training our own codec (``python -m small_e_jax.codec.train``, docs/codec_training.md).

* :mod:`~small_e_jax.codec.training.config`: :class:`CodecTrainConfig` (the flags) and the resume check;
* :mod:`~small_e_jax.codec.training.data`: the corpus' clips decoded into memory, random crops;
* :mod:`~small_e_jax.codec.training.losses`: DAC's reconstruction losses (also the quality metrics);
* :mod:`~small_e_jax.codec.training.discriminators`: the optional adversarial training;
* :mod:`~small_e_jax.codec.training.step`: train state, optimizer, the jitted steps;
* :mod:`~small_e_jax.codec.training.train`: the run (checkpoints, logs, export) and the command line.

Nothing here needs grain, TFDS or draccus (the GPU image lacks them). The package imports none
of its modules: import the one you use.
"""
