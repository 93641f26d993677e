"""TFDS builders (file_format='array_record'): librilight_medium, speech_folder, mini, synthetic_corpus.

Importing this package registers them with TFDS. Each example: ``codes`` int16 ``[n_q, F]``,
``text``, ``text_tokens`` int32 ``[J]``, ``speaker``, ``duration`` (s), ``source_id``.
The builder config name is the codec (e.g. ``dac_24khz``); see :mod:`data_pipeline.builders.base`.
"""

from data_pipeline.builders.base import CodecBuilder
from data_pipeline.builders.librilight_medium import LibrilightMedium
from data_pipeline.builders.mini import Mini
from data_pipeline.builders.speech_folder import SpeechFolder
from data_pipeline.builders.synthetic_corpus import SyntheticCorpus

BUILDERS = {"mini": Mini, "speech_folder": SpeechFolder, "librilight_medium": LibrilightMedium,
            "synthetic_corpus": SyntheticCorpus}

__all__ = ["BUILDERS", "CodecBuilder", "LibrilightMedium", "Mini", "SpeechFolder", "SyntheticCorpus"]
