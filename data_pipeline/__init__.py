"""Audio + text corpora -> codec tokens in ArrayRecord (TFDS builders) -> grain batches."""
