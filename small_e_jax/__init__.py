"""small-e-jax: the Small-E text-to-speech model (arXiv 2406.04467) in JAX/Flax."""

__version__ = "0.1.0"
