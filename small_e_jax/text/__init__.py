"""Text front end: the versioned BPE tokenizer (docs/model.md §1)."""

from small_e_jax.text.tokenizer import (BOS_ID, DEFAULT_VERSION, EOS_ID, PAD_ID, TextTokenizer,
                                        UnencodableCharacterError, load_tokenizer, verbalize_numbers)

__all__ = ["BOS_ID", "DEFAULT_VERSION", "EOS_ID", "PAD_ID", "TextTokenizer", "UnencodableCharacterError",
           "load_tokenizer", "verbalize_numbers"]
