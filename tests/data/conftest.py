"""Fixtures: a tiny random-weight DAC (fast on CPU) and a generated speech_folder corpus with bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from small_e_jax.codec import DACCodec, DACConfig

WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
GOOD = 14  # good utterances in the generated corpus

# name -> (audio writer or None for "reuse a0.wav", transcript, expected reason prefix)
BAD_CASES = {
    "corrupt": "unreadable audio",
    "empty": "empty audio",
    "silent": "silent",
    "short": "too short",
    "long": "too long",
    "lowrate": "sample rate",
    "missing_file": "unreadable audio",
    "no_text": "missing or empty transcript",
    "bad_char": "unencodable transcript",
}


@pytest.fixture(scope="session")
def tiny_codec():
    """24 kHz, hop 320, 4 codebooks of 1024, random weights (the codes mean nothing)."""
    return DACCodec.random_init(DACConfig(encoder_dim=4, decoder_dim=16, n_codebooks=4, n_q=4))


def _tone(seconds: float, rate: int, f: float) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def write_corpus(root: Path) -> Path:
    """``GOOD`` good utterances (0.6-1.9 s, 16/22.05 kHz) + one of each BAD_CASES; returns the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(GOOD):
        rate = 16000 if i % 2 else 22050
        sf.write(root / f"a{i}.wav", _tone(0.6 + 0.1 * i, rate, 150 + 20 * i), rate)
        rows.append({"path": f"a{i}.wav", "text": f"number {WORDS[i % 10]} of {WORDS[(i * 3) % 10]}",
                     "speaker": f"spk{i % 3}", "id": f"a{i}", "split": "validation" if i >= GOOD - 3 else "train"})
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    sf.write(root / "empty.wav", np.zeros(0, np.float32), 16000)
    sf.write(root / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(root / "short.wav", _tone(0.2, 16000, 200), 16000)
    sf.write(root / "long.wav", _tone(31, 16000, 200), 16000)
    sf.write(root / "lowrate.wav", _tone(1.0, 8000, 200), 8000)
    files = {"corrupt": "corrupt.wav", "empty": "empty.wav", "silent": "silent.wav", "short": "short.wav",
             "long": "long.wav", "lowrate": "lowrate.wav", "missing_file": "nowhere.wav",
             "no_text": "a0.wav", "bad_char": "a1.wav"}
    for name, path in files.items():
        text = "" if name == "no_text" else "snow \u2603 man" if name == "bad_char" else "a bad one"
        rows.append({"path": path, "text": text, "id": name, "split": "train"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.fixture(scope="session")
def folder_build(tmp_path_factory, tiny_codec):
    """(builder, data_dir, manifest) of a built speech_folder dataset."""
    from data_pipeline.build import make_builder
    root = tmp_path_factory.mktemp("corpus")
    manifest = write_corpus(root)
    data_dir = root / "tfds"
    builder = make_builder("speech_folder", data_dir=str(data_dir), manual_dir=str(manifest), codec="tiny",
                           codec_obj=tiny_codec)
    builder.download_and_prepare()
    return builder, data_dir, manifest
