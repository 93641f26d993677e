"""The offline speech synthesizers behind the synthetic reading corpus: espeak-ng, flite, Festival.

A :class:`Voice` is one speaker id: an engine, the engine's voice and fixed settings (rate, pitch)
that make it sound like itself. :class:`Engines` runs them, from the system (Debian packages) or
from a relocatable prefix made by ``scripts/bundle_tts_engines.sh`` (machines without a package
registry). Festival is slow to start (0.4-2 s), so each worker keeps one Festival process per voice
and feeds it utterances over a pipe.

    apt-get install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf


class SynthesisError(RuntimeError):
    """A synthesizer failed on one utterance (the reason is in the message)."""


@dataclass(frozen=True)
class Voice:
    """A speaker: ``engine`` is 'espeak', 'flite' or 'festival'; ``name`` is the engine's voice.

    ``rate`` scales speaking speed (1.0 = the engine's default; espeak: x 175 words per minute),
    ``pitch`` is espeak's 0-99 pitch or a flite/Festival mean F0 in Hz (0 = the voice's own).
    """

    speaker: str
    engine: str
    name: str
    rate: float = 1.0
    pitch: float = 0.0


# Fifteen training voices and two held out (never in training: voice cloning from a prompt).
VOICES: tuple[Voice, ...] = (
    Voice("espeak_us_m", "espeak", "en-us", 0.92, 50),
    Voice("espeak_us_f3", "espeak", "en-us+f3", 0.90, 62),
    Voice("espeak_gb_m3", "espeak", "en-gb+m3", 0.97, 44),
    Voice("espeak_gb_f4", "espeak", "en-gb+f4", 0.88, 56),
    Voice("espeak_scotland_m1", "espeak", "en-gb-scotland+m1", 0.94, 38),
    Voice("espeak_rp_f2", "espeak", "en-gb-x-rp+f2", 0.86, 66),
    Voice("espeak_caribbean_m2", "espeak", "en-029+m2", 0.91, 52),
    Voice("espeak_lancaster_m4", "espeak", "en-gb-x-gbclan+m4", 0.95, 34),
    Voice("espeak_us_klatt", "espeak", "en-us+klatt", 0.89, 48),
    Voice("flite_slt", "flite", "slt", 1.00),
    Voice("flite_rms", "flite", "rms", 1.05),
    Voice("flite_kal16", "flite", "kal16", 0.95),
    Voice("festival_kal", "festival", "voice_kal_diphone"),
    Voice("festival_ked", "festival", "voice_ked_diphone"),
    Voice("festival_slt_hts", "festival", "voice_cmu_us_slt_arctic_hts"),
    Voice("espeak_westmidlands_f5", "espeak", "en-gb-x-gbcwmd+f5", 0.90, 58),
    Voice("flite_awb", "flite", "awb", 1.00),
)
HELD_OUT_VOICES = ("espeak_westmidlands_f5", "flite_awb")
VOICE_BY_SPEAKER = {v.speaker: v for v in VOICES}


class Engines:
    """Runs the three synthesizers, from the system or from ``prefix`` (a bundle unpacked there).

    Not thread-safe: one instance per worker process (it owns that worker's Festival processes).
    """

    def __init__(self, prefix: Optional[str | Path] = None):
        self.prefix = Path(prefix).resolve() if prefix else None
        self.env = dict(os.environ)
        if self.prefix is not None:
            lib = str(self.prefix / "usr" / "lib")
            self.env["LD_LIBRARY_PATH"] = lib + (":" + self.env["LD_LIBRARY_PATH"]
                                                  if self.env.get("LD_LIBRARY_PATH") else "")
        self._festival: dict[str, subprocess.Popen] = {}
        self._tmp: Optional[str] = None
        self._serial = 0

    def program(self, name: str) -> str:
        if self.prefix is not None:
            return str(self.prefix / "usr" / "bin" / name)
        found = shutil.which(name)
        if found is None:
            raise SynthesisError(f"{name} is not installed (apt-get install espeak-ng flite festival "
                                 "festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)")
        return found

    def missing(self, voices: tuple[Voice, ...] = VOICES) -> list[str]:
        """The engines of ``voices`` that cannot be run here (empty when all are there)."""
        out = []
        for engine in sorted({v.engine for v in voices}):
            prog = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival"}[engine]
            try:
                path = self.program(prog)
            except SynthesisError:
                out.append(prog)
                continue
            if not os.access(path, os.X_OK):
                out.append(prog)
        return out

    def synthesize(self, voice: Voice, text: str) -> tuple[np.ndarray, int]:
        """``text`` read by ``voice``: (mono float32 waveform ``[S]``, sample rate)."""
        with tempfile.TemporaryDirectory() as tmp:
            wav = os.path.join(tmp, "out.wav")
            if voice.engine == "espeak":
                cmd = [self.program("espeak-ng"), "-v", voice.name, "-s", str(round(175 * voice.rate)),
                       "-p", str(int(voice.pitch or 50)), "-w", wav, text]
                if self.prefix is not None:
                    cmd[1:1] = [f"--path={self.prefix / 'usr' / 'share'}"]
                self._run(cmd, voice)
            elif voice.engine == "flite":
                cmd = [self.program("flite"), "-voice", voice.name, "--setf",
                       f"duration_stretch={1.0 / voice.rate:.3f}", "-t", text, "-o", wav]
                if voice.pitch:
                    cmd[3:3] = ["--setf", f"int_f0_target_mean={voice.pitch:g}"]
                self._run(cmd, voice)
            elif voice.engine == "festival":
                self._festival_say(voice, text, wav)
            else:
                raise SynthesisError(f"unknown engine {voice.engine!r}")
            try:
                audio, rate = sf.read(wav, dtype="float32", always_2d=True)
            except Exception as exc:
                raise SynthesisError(f"{voice.speaker}: no readable audio ({exc})") from None
        if audio.size == 0:
            raise SynthesisError(f"{voice.speaker}: empty audio")
        return audio.mean(axis=1), int(rate)

    def _run(self, cmd: list[str], voice: Voice) -> None:
        try:
            res = subprocess.run(cmd, capture_output=True, env=self.env, timeout=120)
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"{voice.speaker}: timed out after 120 s") from None
        except OSError as exc:
            raise SynthesisError(f"{voice.speaker}: cannot run {cmd[0]} ({exc})") from None
        if res.returncode != 0:
            err = res.stderr.decode(errors="replace").strip().splitlines()
            raise SynthesisError(f"{voice.speaker}: {Path(cmd[0]).name} exited {res.returncode}"
                                 + (f" ({err[-1]})" if err else ""))

    # -- Festival: one long-lived process per voice, fed over stdin ------------------------------
    def _festival_process(self, voice: Voice) -> subprocess.Popen:
        proc = self._festival.get(voice.name)
        if proc is not None and proc.poll() is None:
            return proc
        cmd = [self.program("festival"), "--pipe"]
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="festival_")
        if self.prefix is not None:
            # Both: --libdir alone still reads init.scm and the voices from the compiled-in
            # /usr/share/festival (the data directory), which exists only where Festival is installed.
            share = str(self.prefix / "usr" / "share" / "festival")
            cmd[1:1] = ["--libdir", share, "--datadir", share]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=self.env, text=True)
        self._festival_send(proc, f"({voice.name})", voice)
        if voice.rate != 1.0:
            self._festival_send(proc, f"(Parameter.set 'Duration_Stretch {1.0 / voice.rate:.3f})", voice)
        self._festival[voice.name] = proc
        return proc

    def _festival_send(self, proc: subprocess.Popen, expr: str, voice: Voice, timeout: float = 120.0) -> None:
        # Festival buffers its stdout on a pipe, so completion is signalled by a file it creates
        # after evaluating ``expr`` (commands are evaluated in order).
        assert proc.stdin is not None
        self._serial += 1
        done = os.path.join(self._tmp, f"done{self._serial}")
        proc.stdin.write(f'{expr}\n(fclose (fopen "{done}" "w"))\n')
        proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while not os.path.exists(done):
            if proc.poll() is not None:
                raise SynthesisError(f"{voice.speaker}: festival exited while running {expr[:60]!r}")
            if time.monotonic() > deadline:
                raise SynthesisError(f"{voice.speaker}: festival timed out after {timeout:.0f} s")
            time.sleep(0.002)
        os.remove(done)

    def _festival_say(self, voice: Voice, text: str, wav: str) -> None:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        proc = self._festival_process(voice)
        try:
            self._festival_send(proc, f'(utt.save.wave (SynthText "{escaped}") "{wav}" \'riff)', voice)
        except (BrokenPipeError, SynthesisError):
            self._festival.pop(voice.name, None)
            proc.kill()
            raise SynthesisError(f"{voice.speaker}: festival died on this text") from None
        if not os.path.exists(wav):
            raise SynthesisError(f"{voice.speaker}: festival wrote no audio")

    def close(self) -> None:
        for proc in self._festival.values():
            if proc.poll() is None:
                proc.kill()
        self._festival.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
