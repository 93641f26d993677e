"""The Small-E model in Flax NNX (docs/model.md §2-§5): see :mod:`small_e_jax.model.small_e`.

Parameter counts: :mod:`small_e_jax.model.params` (``python -m small_e_jax.model.params``).
"""

from small_e_jax.model.small_e import DecodeState, SmallE, codebook_cross_entropy

__all__ = ["DecodeState", "SmallE", "codebook_cross_entropy"]
