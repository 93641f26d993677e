"""The synthesizer bundle (scripts/bundle_tts_engines.sh) works where no synthesizer is installed.

Checked by hiding this machine's own Festival and espeak-ng data in a private mount namespace
(``unshare -m``, root only) while every voice speaks from the unpacked bundle: a bundle that
silently reads the system's files (as Festival did with ``--libdir`` alone) fails here."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from data_pipeline.synthesizers import VOICES, Engines

ROOT = Path(__file__).resolve().parents[2]
HIDE = ["/usr/share/festival", "/usr/lib/festival", "/usr/lib/x86_64-linux-gnu/espeak-ng-data"]


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(bool(Engines().missing()), reason=f"synthesizers not installed: {Engines().missing()}")
@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare -m to hide the system synthesizers")
def test_every_voice_speaks_from_the_bundle_alone(tmp_path):
    tarball = tmp_path / "engines.tar.xz"
    subprocess.run(["bash", "scripts/bundle_tts_engines.sh", str(tarball)], cwd=ROOT, check=True,
                   capture_output=True)
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    subprocess.run(["tar", "-xJf", str(tarball), "-C", str(prefix)], check=True)
    speak = textwrap.dedent(f"""
        import sys
        from data_pipeline.synthesizers import VOICES, Engines
        engines = Engines({str(prefix)!r})
        for voice in VOICES:
            audio, rate = engines.synthesize(voice, "The bundle speaks on its own.")
            assert len(audio) > rate // 2, voice.speaker
            print(voice.speaker, len(audio) / rate)
        engines.close()
    """)
    (tmp_path / "speak.py").write_text(speak)
    hide = " && ".join(f"mount -t tmpfs none {d}" for d in HIDE if os.path.isdir(d))
    if os.path.exists("/etc/festival.scm"):
        hide += " && mount --bind /dev/null /etc/festival.scm"
    script = f"{hide} && {shlex.quote(sys.executable)} {shlex.quote(str(tmp_path / 'speak.py'))}"
    res = subprocess.run(["unshare", "-m", "bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(res.stdout.strip().splitlines()) == len(VOICES)
