"""Inference from a training checkpoint: restore, synthesize (batched, cloned, long-form,
streamed), with the decode loop on the device as one compiled program.

    synth = Synthesizer.from_checkpoint("runs/tiny/checkpoints")
    codes = synth.generate(["Hello there.", "A second sentence."], sampling=GREEDY)  # [T_b, Q] each
    wavs = synth.synthesize(["Hello there."])                                       # [S_b] each
    for chunk in synth.stream("Hello there."): ...                                   # audio chunks
    for n, chunk in synth.stream_long("One. Two."): ...                              # per sentence

Restoring needs only the checkpoint directory: the resolved config saved with every step says
what to build (model, tokenizer, codec). Only the parameters are read (not the optimizer state),
by :func:`small_e_jax.checkpoint.restore_params`.

Generation (:mod:`small_e_jax.decoding`): texts are tokenized, padded to a multiple of
``TEXT_BUCKET`` tokens (few compiled shapes; padding is masked), the decode state is
prefilled (text encoder + memory) by one jitted call, then one jitted ``lax.while_loop`` runs
every step until each item has emitted its stop (EOA) or the length limit, and the host
undelays and cuts each item at its own stop. Sampling settings are static (a change
recompiles). Item b samples with the key ``fold_in(key(seed), b)``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from pathlib import Path
from typing import Any, Generator, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from small_e_jax import decoding
# locate_checkpoint / find_checkpoint_dir: re-exported (their home is small_e_jax.checkpoint)
from small_e_jax.checkpoint import CheckpointError, find_checkpoint_dir, locate_checkpoint, restore_params  # noqa: F401
from small_e_jax.config import Config
from small_e_jax.model import SmallE
from small_e_jax.sampling import SamplingConfig
from small_e_jax.text import load_tokenizer

log = logging.getLogger(__name__)

TEXT_BUCKET = 32  # text lengths are padded to a multiple of this (masked)
DEFAULT_SAMPLING = SamplingConfig(temperature=1.0, top_k=100)
MIN_PROMPT_S, MAX_PROMPT_S = 1.0, 15.0  # voice prompt duration limits
SILENCE_DBFS = -60.0  # a prompt quieter than this (RMS) is refused as silent
# On GPU a batch of fewer rows is decoded as this many (the extra rows copy item 0 and are
# marked finished from the start, so they never lengthen the loop; their outputs are dropped).
# Why: with one row every projection of the decode step is a vector-matrix dot, which XLA
# rewrites into a multiply kernel that writes the weight-sized product plus a reduce kernel;
# with >= 2 rows they stay GEMMs. Measured on an H200 (benchmarks/RESULTS.md, eighth GPU session,
# small_e_librilight_medium): 0.515 ms per step at batch 1, 0.481 at 2, 0.436 at 4.
GPU_MIN_ROWS = 4


# --------------------------------------------------------------------------- restore

def abstract_model(config: Config) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, abstract parameters, concrete non-parameter state) of ``config``'s model,
    without initialising any weight (random init is slow, and restore overwrites it)."""
    abstract = nnx.eval_shape(lambda: SmallE(config.model, rngs=nnx.Rngs(0)))
    graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)

    def concrete(x: Any) -> jax.Array:  # the dropout RNG streams (unused in eval mode)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.key(0) if x.shape == () else jax.random.split(jax.random.key(0), x.shape)
        return jnp.zeros(x.shape, x.dtype)

    return graphdef, params, jax.tree.map(concrete, rest)


def load_model(directory: str | Path, *, step: Optional[int] = None,
               param_dtype: Optional[str] = None, decode_kernels: Optional[str] = None
               ) -> tuple[SmallE, Config, int]:
    """Restore the model of a checkpoint: (model in eval mode, its config, step). ``directory``:
    a run's workdir, its checkpoints folder or one step's folder (:func:`locate_checkpoint`).

    step: a saved step (default: the newest one that reads back; older ones are tried when the
      newest is partial or corrupt, and one log line names the step used and the steps skipped).
    param_dtype: cast the floating-point parameters ("bfloat16" halves memory traffic for
      decoding; default: as saved).
    decode_kernels: "auto", "xla" or "pallas" (``model.decode_kernels``; default: as saved).
    Raises :class:`CheckpointError` for a missing, partial or incompatible checkpoint.

    The reading is :func:`small_e_jax.checkpoint.restore_params`; this builds the model around it.
    """
    built: dict[str, Any] = {}

    def abstract_params(config: Config) -> nnx.State:
        built["graphdef"], params, built["rest"] = abstract_model(config)
        return params

    restored = restore_params(directory, abstract_params, step=step, logger=log,
                              model_overrides=None if decode_kernels is None else {"decode_kernels": decode_kernels})
    params = restored.params
    if param_dtype is not None:
        dtype = jnp.dtype(param_dtype)
        params = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)
    model = nnx.merge(built["graphdef"], params, built["rest"])
    model.eval()
    return model, restored.config, restored.step


# --------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=1)
def _segmenter() -> Any:
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(text: str, max_chars: int = 250) -> list[str]:
    """Split long text into sentences, then at commas / spaces where one is still too long.

    Sentences come from ``pysbd`` (a maintained rule-based segmenter, the Golden Rules of
    sentence boundaries): abbreviations, prices and times do not end a sentence ("Mr. Smith
    paid $3.50 at 5 p.m. on Jan. 3rd." is one), which a split at every full stop got wrong."""
    out: list[str] = []
    for sentence in (s.strip() for s in _segmenter().segment(text.strip()) if s.strip()):
        while len(sentence) > max_chars:
            cut = max(sentence.rfind(", ", 0, max_chars), sentence.rfind(" ", 0, max_chars))
            cut = cut if cut > 0 else max_chars
            out.append(sentence[:cut + 1].strip())
            sentence = sentence[cut + 1:].strip()
        if sentence:
            out.append(sentence)
    return out


@dataclasses.dataclass
class Prompt:
    """A voice prompt for cloning: raw codes [T, Q] and their transcript."""

    codes: np.ndarray
    text: str


@dataclasses.dataclass
class StreamChunk:
    """One piece of a stream: new codes [n, Q] and the audio they complete [S] (may be empty)."""

    codes: np.ndarray
    audio: np.ndarray
    elapsed_s: float  # since the stream started


# --------------------------------------------------------------------------- synthesizer


class Synthesizer:
    """Text -> codes -> audio with a restored Small-E model (see module doc)."""

    def __init__(self, model: SmallE, config: Config, *, codec: Any = None, codec_weights: Optional[str] = None,
                 unroll: int = 1, min_rows: Optional[int] = None):
        """``codec``: a :class:`~small_e_jax.codec.Codec` (default: ``config.data.codec`` with
        ``codec_weights`` or ``config.data.codec_weights``, loaded on first use). ``unroll``:
        decode steps per loop iteration (see :func:`decoding.run_loop`; long-form uses 1).
        ``min_rows``: fewer texts than this are decoded as this many rows (None: `GPU_MIN_ROWS`
        on GPU when XLA's decode step runs, else 1); the codes do not change, only the speed."""
        if unroll < 1:
            raise ValueError(f"unroll must be >= 1, got {unroll}")
        if min_rows is None:  # XLA's one-row step is slower than its 4-row one; the fused kernels' is not
            gpu = jax.default_backend() == "gpu"
            min_rows = GPU_MIN_ROWS if gpu and not model.uses_fused_decode(1) else 1
        if min_rows < 1:
            raise ValueError(f"min_rows must be >= 1, got {min_rows}")
        self.unroll, self.min_rows = int(unroll), int(min_rows)
        self.config, self.model_config = config, config.model
        self.tokenizer = load_tokenizer()
        if self.tokenizer.vocab_size != self.model_config.text_vocab_size:
            raise CheckpointError(f"model.text_vocab_size={self.model_config.text_vocab_size} but the "
                                  f"tokenizer has {self.tokenizer.vocab_size} entries (incompatible)")
        self._codec, self._codec_weights = codec, codec_weights
        self.graphdef, self.params = decoding.split_model(model)
        self._prefill = jax.jit(self._prefill_impl, static_argnames=("guided", "max_len"))
        self._loop_jit = jax.jit(self._loop_impl, static_argnames=("sampling", "unroll"), donate_argnums=(1,))
        self.last_timing: dict[str, float] = {}
        self.checkpoint_step: Optional[int] = None  # the step restored, for from_checkpoint

    @classmethod
    def from_checkpoint(cls, directory: str | Path, *, step: Optional[int] = None,
                        param_dtype: Optional[str] = None, codec: Any = None,
                        codec_weights: Optional[str] = None, decode_kernels: Optional[str] = None,
                        min_rows: Optional[int] = None) -> "Synthesizer":
        """A Synthesizer for a checkpoint (see :func:`load_model` for the arguments)."""
        model, config, saved_step = load_model(directory, step=step, param_dtype=param_dtype,
                                               decode_kernels=decode_kernels)
        synth = cls(model, config, codec=codec, codec_weights=codec_weights, min_rows=min_rows)
        synth.checkpoint_step = saved_step
        return synth

    @classmethod
    def from_pretrained(cls, name: str = "small_e_reading", **kwargs: Any) -> "Synthesizer":
        """A Synthesizer for a model shipped in the package (``small_e_jax/pretrained/<name>``,
        see :mod:`small_e_jax.pretrained`) or an exported folder; ``kwargs`` as for
        :meth:`from_checkpoint`."""
        from small_e_jax.shipped import pretrained_path

        return cls.from_checkpoint(pretrained_path(name), **kwargs)

    @property
    def model(self) -> SmallE:
        return nnx.merge(self.graphdef, self.params)

    @property
    def codec(self) -> Any:
        if self._codec is None:
            from small_e_jax.codec import load_codec

            d = self.config.data
            self._codec = load_codec(d.codec, self._codec_weights or d.codec_weights,
                                     n_q=self.model_config.n_codebooks)
            if self._codec.codebook_size != self.model_config.codebook_size:
                raise CheckpointError(f"codec {d.codec} has {self._codec.codebook_size} codes per codebook, "
                                      f"the model {self.model_config.codebook_size}")
        return self._codec

    # ----------------------------------------------------------------------- jitted pieces

    def _prefill_impl(self, params, text, text_mask, initial_states, *, guided: bool, max_len: Optional[int]):
        model = nnx.merge(self.graphdef, params)
        return decoding.prefill(model, text, text_mask, guided, initial_states, max_len)

    def _loop_impl(self, params, carry, request, until, values, *, sampling: SamplingConfig, unroll: int):
        model = nnx.merge(self.graphdef, params)
        return decoding.run_loop(model, sampling, request, carry, until, values, unroll)

    def _loop(self, params, carry, request, until, *, sampling: SamplingConfig,
              unroll: Optional[int] = None) -> decoding.Carry:
        """Run the compiled loop until step ``until`` (the carry is donated)."""
        static, values = sampling.split()
        values = {k: jnp.float32(v) for k, v in values.items()}
        unroll = self.unroll if unroll is None else unroll
        until = jnp.int32(-(-int(until) // unroll) * unroll)
        return self._loop_jit(params, carry, request, until, values, sampling=static, unroll=unroll)

    # ----------------------------------------------------------------------- inputs

    def encode_texts(self, texts: Sequence[str], prefixes: Optional[Sequence[Optional[str]]] = None
                     ) -> tuple[jax.Array, jax.Array]:
        """Texts -> tokens [B, J] int32 and mask [B, J] (J a multiple of TEXT_BUCKET).
        ``prefixes[b]`` (a prompt transcript) is prepended to text b (docs/model.md §7)."""
        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings (got one string: wrap it in a list)")
        if not len(texts):
            raise ValueError("no text to synthesize")
        limit = self.config.data.max_text_tokens
        ids = []
        for b, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text {b} is empty")
            prefix = prefixes[b] if prefixes is not None else None
            full = f"{prefix.strip()} {text.strip()}" if prefix else text
            tokens = self.tokenizer.encode(full)  # raises for unencodable characters
            if len(tokens) > limit:
                raise ValueError(f"text {b} is {len(tokens)} tokens, more than data.max_text_tokens={limit}; "
                                 "split it (Synthesizer.generate_long does it by sentences)")
            ids.append(tokens)
        J = -(-max(map(len, ids)) // TEXT_BUCKET) * TEXT_BUCKET
        if self.model_config.compat_unmasked_text:  # padding is visible to the model: pad minimally
            J = max(map(len, ids))
        tokens = np.zeros((len(ids), J), np.int32)
        for b, row in enumerate(ids):
            tokens[b, :len(row)] = row
        return jnp.asarray(tokens), jnp.asarray(tokens != 0)

    def max_frames_default(self) -> int:
        return int(self.config.data.max_frames)

    # ----------------------------------------------------------------------- generation

    def start(self, texts: Sequence[str], *, sampling: SamplingConfig = DEFAULT_SAMPLING, seed: int = 0,
              max_frames: Optional[int] = None, prompts: Optional[Sequence[Optional[Prompt]]] = None,
              initial_states: Optional[Sequence[Any]] = None, min_frames: int = 1, unroll: Optional[int] = None
              ) -> tuple[decoding.Carry, decoding.Request]:
        """Prefill: the loop's starting carry and request for ``texts``. With fewer texts than
        ``min_rows`` the carry has ``min_rows`` rows, the extra ones finished from the start."""
        Q = self.model_config.n_codebooks
        prompts = list(prompts) if prompts is not None else [None] * len(texts)
        text, text_mask = self.encode_texts(texts, [p.text if p is not None else None for p in prompts])
        max_frames = self.max_frames_default() if max_frames is None else int(max_frames)
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        n_items = len(prompts)
        extra = max(self.min_rows - n_items, 0)
        if extra:  # copies of item 0 (validated above), finished before the first step
            text, text_mask = (jnp.concatenate([x, jnp.repeat(x[:1], extra, axis=0)]) for x in (text, text_mask))
            prompts = prompts + [prompts[0]] * extra
            if initial_states is not None:
                initial_states = [s if s is None or s.shape[0] == 1  # None: zeros; 1: broadcast
                                  else jnp.concatenate([s, jnp.repeat(s[:1], extra, axis=0)])
                                  for s in initial_states]
        request = decoding.make_request(Q, len(prompts), [p.codes if p is not None else None for p in prompts],
                                        min_frames, max_frames)
        n_steps = int(np.max(np.asarray(request.limit)))
        unroll = self.unroll if unroll is None else unroll
        n_steps = -(-n_steps // unroll) * unroll
        # Only the transformer baseline's cache depends on the length (GLA: one program for all).
        max_len = n_steps if self.model_config.block == "transformer" else None
        state = self._prefill(self.params, text, text_mask, initial_states, guided=sampling.uses_cfg,
                              max_len=max_len)
        carry = decoding.init_carry(state, request, n_steps, seed)
        if extra:
            carry = carry.replace(done=carry.done.at[n_items:].set(True))
        return carry, request

    def generate(self, texts: Sequence[str], *, sampling: SamplingConfig = DEFAULT_SAMPLING, seed: int = 0,
                 max_frames: Optional[int] = None, prompts: Optional[Sequence[Optional[Prompt]]] = None,
                 initial_states: Optional[Sequence[Any]] = None, min_frames: int = 1,
                 return_carry: bool = False, unroll: Optional[int] = None
                 ) -> list[np.ndarray] | tuple[list[np.ndarray], decoding.Carry]:
        """Codes for each text: a list of [T_b, Q] int32 arrays, each cut at its own stop.

        sampling: :class:`SamplingConfig` (``GREEDY`` for deterministic output).
        max_frames: the most new frames per item (default ``data.max_frames``).
        unroll: decode steps per loop iteration (default: the synthesizer's).
        prompts: per-item :class:`Prompt` (voice cloning by continuation) or None.
        initial_states: per-audio-block initial GLA states (initial-state tuning, long-form).
        min_frames: new frames before the stop token is allowed.
        return_carry: also return the loop's final carry (``max(len(texts), min_rows)`` rows).
        """
        t0 = time.perf_counter()
        carry, request = self.start(texts, sampling=sampling, seed=seed, max_frames=max_frames,
                                    prompts=prompts, initial_states=initial_states, min_frames=min_frames,
                                    unroll=unroll)
        n_steps = carry.outputs.shape[1]
        carry = self._loop(self.params, carry, request, jnp.int32(n_steps), sampling=sampling, unroll=unroll)
        outputs, eoa_col = jax.device_get((carry.outputs, carry.eoa_col))
        self.last_timing = {"generate_s": time.perf_counter() - t0, "steps": int(jax.device_get(carry.i))}
        codes = decoding.finish(outputs, eoa_col, np.asarray(request.prompt_frames), self.model_config.n_codebooks,
                                np.asarray(request.limit))[:len(texts)]  # without the min_rows copies
        return (codes, carry) if return_carry else codes

    def decode_audio(self, codes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per-item codes [T_b, Q] -> waveforms [T_b * hop] at ``codec.sample_rate``."""
        lengths = [len(c) for c in codes]
        out: list[np.ndarray] = [np.zeros((0,), np.float32)] * len(codes)
        keep = [b for b, n in enumerate(lengths) if n > 0]
        if not keep:
            return out
        F = max(lengths)
        batch = np.zeros((len(keep), self.model_config.n_codebooks, F), np.int32)
        for j, b in enumerate(keep):
            batch[j, :, :lengths[b]] = codes[b].T
        wav = self.codec.decode(batch, [lengths[b] for b in keep])
        hop = self.codec.hop_length
        for j, b in enumerate(keep):
            out[b] = np.asarray(wav[j, :lengths[b] * hop], np.float32)
        return out

    def synthesize(self, texts: Sequence[str], **kwargs: Any) -> list[np.ndarray]:
        """Texts -> waveforms (``generate`` then the codec); keyword arguments as ``generate``."""
        return self.decode_audio(self.generate(texts, **kwargs))

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    # ----------------------------------------------------------------------- voice cloning

    def make_prompt(self, wav: np.ndarray, sample_rate: int, text: str, *,
                    min_seconds: float = MIN_PROMPT_S, max_seconds: float = MAX_PROMPT_S) -> Prompt:
        """A voice prompt from a mono waveform [S] (float in [-1, 1]) and its transcript.

        The clip is encoded with the checkpoint's codec; generation then continues it (docs/model.md §7):
        the transcript is put before the target text and the prompt's codes are teacher-forced.
        ValueError for a prompt that is too short / too long / silent or has no transcript.
        """
        wav = np.asarray(wav, np.float32)
        if wav.ndim == 2:  # [S, C] as soundfile reads it
            wav = wav.mean(axis=1)
        if wav.ndim != 1 or wav.size == 0:
            raise ValueError(f"prompt audio must be a mono waveform [S], got shape {wav.shape}")
        seconds = wav.size / float(sample_rate)
        if seconds < min_seconds:
            raise ValueError(f"prompt audio is too short ({seconds:.2f} s < {min_seconds} s): the voice "
                             "cannot be cloned from it; use a clip of 3-10 s")
        budget = self.config.data.max_frames / self.codec.frame_rate
        if seconds > min(max_seconds, budget):
            raise ValueError(f"prompt audio is too long ({seconds:.1f} s > {min(max_seconds, budget):.1f} s): "
                             "it takes the room of the generated speech; cut it to 3-10 s")
        rms_db = 20 * np.log10(max(float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))), 1e-12))
        if rms_db < SILENCE_DBFS:
            raise ValueError(f"prompt audio is silent (RMS {rms_db:.0f} dBFS < {SILENCE_DBFS} dBFS)")
        if not text or not text.strip():
            raise ValueError("the prompt needs its transcript (--prompt-text): the model continues "
                             "transcript + text")
        self.tokenizer.encode(text)  # unencodable characters fail here, with their position
        codes = np.asarray(self.codec.encode(wav[None], int(sample_rate)))[0]  # [Q, F]
        return Prompt(codes=codes.T.astype(np.int32), text=text.strip())

    # ----------------------------------------------------------------------- long-form

    def generate_long(self, text: str, *, max_chars: int = 250, **kwargs: Any) -> list[np.ndarray]:
        """Long text: split into sentences, generate them in order carrying the audio blocks'
        recurrent states (the voice) from one sentence to the next. Returns codes per sentence.

        The text memory and PACA's position state restart with each sentence (they are about
        the text); the GLA states go on from where the previous sentence stopped, the way an
        initial-state-tuned voice is used. ``kwargs`` as :meth:`generate` (one text at a time).
        """
        states = kwargs.pop("initial_states", None)
        prompts = kwargs.pop("prompts", None)  # voice prompt: first sentence only, then the state
        pieces = []
        for n, sentence in enumerate(split_sentences(text, max_chars)):
            codes, carry = self.generate([sentence], initial_states=states, return_carry=True, unroll=1,
                                         prompts=prompts if n == 0 else None, **kwargs)
            states = self._voice_states(carry)
            pieces.append(codes[0])
        return pieces

    @staticmethod
    def _voice_states(carry: decoding.Carry) -> list[jax.Array]:
        """The audio blocks' recurrent states [1, ...] of the text's row, to go on with the voice."""
        states = list(carry.state.blocks)
        if states and not isinstance(states[0], jax.Array):
            raise ValueError("long-form carry-over needs GLA blocks (the transformer has no state)")
        return [s[:1] for s in states]  # conditional stream (CFG doubles the rows)

    # ----------------------------------------------------------------------- streaming

    def stream(self, text: str, *, chunk_frames: int = 25, context_frames: int = 16, **kwargs: Any
               ) -> Iterator[StreamChunk]:
        """Generate one text progressively: yields :class:`StreamChunk` as frames complete.

        The loop runs ``chunk_frames`` steps per call (the same compiled program as
        :meth:`generate`, so the codes are identical). A frame is complete ``Q - 1`` steps after
        it starts (delay pattern). Audio: each chunk's codes are decoded with
        ``context_frames`` frames of context on each side (the codec's convolutions look both
        ways), so the chunks concatenate to the one-shot decode up to float rounding; the last
        ``context_frames`` frames wait for the right context or the end.
        """
        yield from self._stream_one(text, chunk_frames=chunk_frames, context_frames=context_frames, **kwargs)

    def stream_long(self, text: str, *, max_chars: int = 250, chunk_frames: int = 25, context_frames: int = 16,
                    **kwargs: Any) -> Iterator[tuple[int, StreamChunk]]:
        """Long text, streamed: ``(sentence index, chunk)`` pairs as :meth:`stream` makes them,
        sentence after sentence with the voice carried over as in :meth:`generate_long` (the
        codes are the same as its pieces). ``kwargs`` as :meth:`stream`."""
        states = kwargs.pop("initial_states", None)
        prompts = kwargs.pop("prompts", None)
        for n, sentence in enumerate(split_sentences(text, max_chars)):
            pieces = self._stream_one(sentence, chunk_frames=chunk_frames, context_frames=context_frames,
                                      initial_states=states, prompts=prompts if n == 0 else None, unroll=1, **kwargs)
            while True:
                try:
                    chunk = next(pieces)
                except StopIteration as finished:  # the generator returns its final carry
                    states = self._voice_states(finished.value)
                    break
                yield n, chunk

    def _stream_one(self, text: str, *, chunk_frames: int, context_frames: int, unroll: Optional[int] = None,
                    **kwargs: Any) -> Generator[StreamChunk, None, decoding.Carry]:
        """:meth:`stream`'s loop; returns the loop's final carry (for long-form carry-over)."""
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        t0 = time.perf_counter()
        sampling = kwargs.pop("sampling", DEFAULT_SAMPLING)
        carry, request = self.start([text], sampling=sampling, unroll=unroll, **kwargs)
        Q, n_steps = self.model_config.n_codebooks, carry.outputs.shape[1]
        prompt_frames = int(np.asarray(request.prompt_frames)[0])
        n_max = n_steps - Q
        emitted_codes = emitted_audio = 0  # frames (absolute, prompt included)
        all_codes = np.zeros((0, Q), np.int32)
        hop = None
        first = True
        while True:
            i = int(jax.device_get(carry.i))
            carry = self._loop(self.params, carry, request, jnp.int32(i + chunk_frames), sampling=sampling,
                               unroll=unroll)
            i, done, eoa = jax.device_get((carry.i, carry.done[0], carry.eoa_col[0]))
            n = decoding.complete_frames(int(i), int(eoa), Q, n_max)
            if n > emitted_codes:
                outputs = np.asarray(jax.device_get(carry.outputs[:1, :max(int(i), 1)]))  # the text's row
                outputs = np.where(outputs < 0, 0, outputs)
                full = decoding.undelay_predictions(
                    np.concatenate([outputs, np.zeros((1, Q, Q), np.int32)], axis=1))[0][0]
                all_codes = full[prompt_frames:n]
                emitted_codes = n
            finished = bool(done)
            # Audio: frames [emitted_audio, ready) where ready leaves context unless finished.
            total = len(all_codes)
            ready = total if finished else max(total - context_frames, 0)
            new_codes = all_codes[emitted_audio:ready] if ready > emitted_audio else np.zeros((0, Q), np.int32)
            audio = np.zeros((0,), np.float32)
            if len(new_codes):
                lo = max(emitted_audio - context_frames, 0)
                hi = min(ready + context_frames, total)
                window = self.decode_audio([all_codes[lo:hi]])[0]
                hop = hop or self.codec.hop_length
                audio = window[(emitted_audio - lo) * hop:(ready - lo) * hop]
                emitted_audio = ready
            if len(new_codes) or finished:
                chunk = StreamChunk(codes=new_codes, audio=audio, elapsed_s=time.perf_counter() - t0)
                if first and len(audio):
                    self.last_timing = {"first_audio_s": chunk.elapsed_s}
                    first = False
                yield chunk
            if finished:
                return carry
