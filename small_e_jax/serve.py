"""A local web page that speaks: type text, pick a voice prompt (or none), press Speak, listen.

    python -m small_e_jax.serve --checkpoint runs/tiny/checkpoints        # then open http://127.0.0.1:8000
    python -m small_e_jax.serve                                           # the shipped model, once one ships
    python -m small_e_jax.serve --checkpoint DIR --host 0.0.0.0 --port 8080

The page (``small_e_jax/web/index.html``) posts the text, the sampling settings (temperature,
top-k, seed) and optionally a voice prompt (a 3-10 s wav and its transcript) to ``/api/stream``,
which answers one JSON event per line as the audio is made (``start``, ``audio`` pieces of 16-bit
PCM, ``done`` or ``error``; :meth:`Speaker.stream`); the page plays each piece as it arrives and
keeps the whole utterance as a WAV. ``/api/speak`` answers the same request with one WAV file.
Text of several sentences is spoken sentence by sentence with the voice carried across them
(long-form). One synthesis runs at a time: further requests wait their turn. Bad input (empty
text, bad sampling values, an upload that is not audio) is answered with HTTP 400 and
``{"error": "..."}``, which the page shows; nothing answers with a traceback. FastAPI + uvicorn
(requirements.txt).
"""


import base64
import io
import json
import math
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import soundfile

from small_e_jax.cli import UserError, one_line

PAGE = Path(__file__).parent / "web" / "index.html"
MAX_TEXT_CHARS = 2000  # a page's worth; long-form splits it into sentences
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
STREAM_CHUNK_FRAMES = 25  # codec frames per streamed piece (1/3 s at 75 frames/s)


class BadRequest(ValueError):
    """Bad input from the page; its message is shown to the user."""


def _number(name: str, value: Optional[str], kind: type, default: Any, lo: float, hi: float) -> Any:
    if value is None or not str(value).strip():
        return default
    try:
        x = kind(str(value).strip())
    except ValueError:
        raise BadRequest(f"{name} must be {'a whole number' if kind is int else 'a number'}, got {value!r}") from None
    if isinstance(x, float) and not math.isfinite(x):
        raise BadRequest(f"{name} must be a finite number, got {value!r}")
    if not lo <= x <= hi:
        raise BadRequest(f"{name} must be between {lo:g} and {hi:g}, got {value}")
    return x


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """A mono 16-bit PCM WAV file of ``audio`` (float in [-1, 1])."""
    buf = io.BytesIO()
    soundfile.write(buf, np.clip(np.asarray(audio, np.float32), -1, 1), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class Speaker:
    """The synthesizer behind the page: validates a request and speaks it, one at a time."""

    def __init__(self, synth: Any, *, max_frames: Optional[int] = None):
        self.synth, self.max_frames = synth, max_frames
        self.lock = threading.Lock()  # one synthesis at a time; the others queue on it

    def _prepare(self, text: Optional[str], *, temperature: Optional[str], top_k: Optional[str],
                 seed: Optional[str], prompt_audio: Optional[bytes], prompt_text: Optional[str]
                 ) -> tuple[str, list[str], dict[str, Any]]:
        """Checks a request: the text, its sentences and the generation keywords (the voice
        prompt made from the upload, if any); :class:`BadRequest` for bad input."""
        from small_e_jax.inference import split_sentences
        from small_e_jax.sampling import SamplingConfig

        text = (text or "").strip()
        if not text:
            raise BadRequest("Type some text to speak.")
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequest(f"The text is too long ({len(text)} characters; at most {MAX_TEXT_CHARS}).")
        sampling = SamplingConfig(temperature=_number("temperature", temperature, float, 1.0, 0.01, 5.0),
                                  top_k=_number("top-k", top_k, int, 100, 0, 100000))
        kwargs: dict[str, Any] = dict(sampling=sampling, seed=_number("seed", seed, int, 0, 0, 2**31 - 1),
                                      max_frames=self.max_frames)
        if prompt_audio:
            if len(prompt_audio) > MAX_UPLOAD_BYTES:
                raise BadRequest(f"The voice prompt is too large (at most {MAX_UPLOAD_BYTES // 2**20} MB).")
            try:
                wav, rate = soundfile.read(io.BytesIO(prompt_audio), dtype="float32")
            except Exception as exc:  # libsndfile says why (format not recognised, truncated...)
                raise BadRequest(f"The voice prompt is not audio that can be read ({one_line(exc)}); "
                                 "upload a WAV or FLAC file.") from None
            if not (prompt_text or "").strip():
                raise BadRequest("The voice prompt needs its transcript (what the clip says).")
            with self.lock:
                try:
                    kwargs["prompts"] = [self.synth.make_prompt(wav, rate, prompt_text)]
                except ValueError as exc:
                    raise BadRequest(f"Voice prompt: {one_line(exc)}") from None
        return text, split_sentences(text), kwargs

    def speak(self, text: Optional[str], *, temperature: Optional[str] = None, top_k: Optional[str] = None,
              seed: Optional[str] = None, prompt_audio: Optional[bytes] = None,
              prompt_text: Optional[str] = None) -> tuple[bytes, dict[str, Any]]:
        """WAV bytes and a few facts about them; :class:`BadRequest` for bad input."""
        text, sentences, kwargs = self._prepare(text, temperature=temperature, top_k=top_k, seed=seed,
                                                prompt_audio=prompt_audio, prompt_text=prompt_text)
        t0 = time.perf_counter()
        with self.lock:
            try:
                if len(sentences) > 1:  # long-form: the voice carries over from sentence to sentence
                    audio = np.concatenate(self.synth.decode_audio(self.synth.generate_long(text, **kwargs)))
                else:
                    audio = self.synth.synthesize([text], **kwargs)[0]
            except ValueError as exc:  # e.g. a character the tokenizer does not know
                raise BadRequest(one_line(exc)) from None
            rate = int(self.synth.sample_rate)
        elapsed = time.perf_counter() - t0
        info = {"seconds": round(len(audio) / rate, 3), "elapsed_s": round(elapsed, 3),
                "sentences": len(sentences), "sample_rate": rate}
        return wav_bytes(audio, rate), info

    def stream(self, text: Optional[str], *, temperature: Optional[str] = None, top_k: Optional[str] = None,
               seed: Optional[str] = None, prompt_audio: Optional[bytes] = None,
               prompt_text: Optional[str] = None, chunk_frames: int = STREAM_CHUNK_FRAMES
               ) -> Iterator[dict[str, Any]]:
        """The request checked now (:class:`BadRequest`), then, as it is iterated, its events:
        ``start`` (sample rate, sentences), ``audio`` per chunk (16-bit PCM, base64, and the
        sentence it belongs to), then ``done`` or ``error``. The synthesis holds the queue's
        lock while it is iterated; closing the iterator (the page went away) releases it."""
        text, sentences, kwargs = self._prepare(text, temperature=temperature, top_k=top_k, seed=seed,
                                                prompt_audio=prompt_audio, prompt_text=prompt_text)
        return self._events(text, sentences, kwargs, chunk_frames)

    def _events(self, text: str, sentences: list[str], kwargs: dict[str, Any], chunk_frames: int
                ) -> Iterator[dict[str, Any]]:
        with self.lock:
            t0 = time.perf_counter()
            rate = int(self.synth.sample_rate)
            yield {"type": "start", "sample_rate": rate, "sentences": sentences}
            samples, first_audio_s = 0, None
            try:
                for n, chunk in self.synth.stream_long(text, chunk_frames=chunk_frames, **kwargs):
                    if not len(chunk.audio):
                        continue
                    pcm = np.rint(np.clip(np.asarray(chunk.audio, np.float32), -1, 1) * 32767).astype("<i2")
                    samples += len(pcm)
                    first_audio_s = first_audio_s or round(time.perf_counter() - t0, 3)
                    yield {"type": "audio", "sentence": n, "pcm": base64.b64encode(pcm.tobytes()).decode("ascii")}
            except ValueError as exc:  # e.g. a character the tokenizer does not know
                yield {"type": "error", "error": one_line(exc)}
                return
            except Exception as exc:  # a bug: one line on the page, never a traceback
                yield {"type": "error", "error": f"Synthesis failed: {type(exc).__name__}: {one_line(exc)}"}
                return
            yield {"type": "done", "seconds": round(samples / rate, 3), "first_audio_s": first_audio_s,
                   "elapsed_s": round(time.perf_counter() - t0, 3)}


def create_app(synth: Any, *, max_frames: Optional[int] = None, title: str = "Small-E") -> Any:
    """The FastAPI app around ``synth`` (a :class:`~small_e_jax.inference.Synthesizer`)."""
    from fastapi import FastAPI, File, Form, UploadFile
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

    speaker = Speaker(synth, max_frames=max_frames)
    app = FastAPI(title=title, docs_url=None, redoc_url=None)
    app.state.speaker = speaker

    @app.exception_handler(Exception)
    async def _unexpected(request: Any, exc: Exception) -> Any:  # a bug: one line, never a traceback
        return JSONResponse({"error": f"Synthesis failed: {type(exc).__name__}: {one_line(exc)}"}, status_code=500)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {"model": title, "step": getattr(synth, "checkpoint_step", None), "busy": speaker.lock.locked()}

    def _bad_request(exc: ValueError) -> Any:
        """HTTP 400 with the message the page shows: a BadRequest's own, or e.g. SamplingConfig's."""
        return JSONResponse({"error": str(exc) if isinstance(exc, BadRequest) else one_line(exc)}, status_code=400)

    def _request(temperature: str, top_k: str, seed: str, prompt_text: str,
                 prompt_wav: Optional[UploadFile]) -> dict[str, Any]:
        data = prompt_wav.file.read() if prompt_wav is not None and prompt_wav.filename else None
        return dict(temperature=temperature, top_k=top_k, seed=seed, prompt_audio=data, prompt_text=prompt_text)

    # Plain `def`s: FastAPI runs them in its thread pool, so the page stays responsive while the
    # lock queues the syntheses.
    @app.post("/api/speak")
    def speak(text: str = Form(""), temperature: str = Form(""), top_k: str = Form(""), seed: str = Form(""),
              prompt_text: str = Form(""), prompt_wav: Optional[UploadFile] = File(None)) -> Any:
        """The whole utterance as one WAV file."""
        try:
            audio, facts = speaker.speak(text, **_request(temperature, top_k, seed, prompt_text, prompt_wav))
        except ValueError as exc:
            return _bad_request(exc)
        headers = {"X-Audio-Seconds": str(facts["seconds"]), "X-Elapsed-Seconds": str(facts["elapsed_s"]),
                   "X-Sentences": str(facts["sentences"])}
        return Response(audio, media_type="audio/wav", headers=headers)

    @app.post("/api/stream")
    def stream(text: str = Form(""), temperature: str = Form(""), top_k: str = Form(""), seed: str = Form(""),
               prompt_text: str = Form(""), prompt_wav: Optional[UploadFile] = File(None)) -> Any:
        """The utterance as it is made: one JSON event per line (:meth:`Speaker.stream`)."""
        try:
            events = speaker.stream(text, **_request(temperature, top_k, seed, prompt_text, prompt_wav))
        except ValueError as exc:
            return _bad_request(exc)

        def lines() -> Iterator[str]:
            try:
                for event in events:
                    yield json.dumps(event) + "\n"
            finally:
                events.close()  # the page went away mid-stream: stop and free the queue

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app


def load_synthesizer(checkpoint: Optional[str], *, step: Optional[int] = None,
                     codec_weights: Optional[str] = None) -> Any:
    """The checkpoint's Synthesizer, or the shipped model's when no checkpoint is given."""
    from small_e_jax.inference import Synthesizer
    from small_e_jax.pretrained import DEFAULT_MODEL, shipped_models

    if checkpoint is None:
        if DEFAULT_MODEL not in shipped_models():
            raise UserError("no model ships with the package yet: pass --checkpoint (a run's workdir, "
                            "its checkpoints folder or one step's folder)")
        return Synthesizer.from_pretrained(DEFAULT_MODEL, codec_weights=codec_weights)
    return Synthesizer.from_checkpoint(checkpoint, step=step, codec_weights=codec_weights)


if __name__ == "__main__":  # the command line: small_e_jax/cli/serve.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.serve", run_name="__main__")
