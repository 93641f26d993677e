"""Helpers for the evaluation tests: optional dependencies skip locally but fail under CI=true."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

MINI_CORPUS = Path(__file__).resolve().parents[2] / "data_pipeline" / "mini_corpus"


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` when a dependency is missing, except under CI=true, where it fails."""
    if not ok:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"missing dependency under CI=true: {reason}")
        pytest.skip(reason)


def require_module(name: str, install: str = "pip install -r requirements-eval.txt") -> None:
    try:
        importlib.import_module(name)
    except ImportError as err:
        require(False, f"{name} is not importable ({err}); {install}")


def espeak(text: str, voice: str, path: Path) -> tuple[np.ndarray, int]:
    """Speak ``text`` with espeak-ng into ``path`` (WAV); returns (mono float32 [S], rate)."""
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    wav, rate = sf.read(str(path), dtype="float32")
    return wav, rate
