"""TFDS builders (file_format='array_record'): librilight_medium, speech_folder, mini."""
