"""How well a codec resynthesises held-out speech: ``python -m small_e_jax.codec.quality``.

    python -m small_e_jax.codec.quality --codec dac_mini24 --weights runs/codec_mini/export/dac_mini24 \\
        [--split validation] [--write-wavs DIR] [--asr whisper|MODULE:FUNCTION] [--json OUT.json]

Every clip of ``--split`` (default: the mini corpus' 72 validation utterances, sentences never
seen in training) is encoded and decoded; reported (means over clips):

* ``mel_distance``: DAC's multi-scale log-mel L1 (:func:`~small_e_jax.codec.training.losses.multiscale_mel_loss`;
  0 = identical; DAC's paper reports ~0.8-1.1 for its codecs on real speech — ours is not comparable
  across corpora, only between checkpoints on this one);
* ``stft_distance``: the multi-scale STFT loss (log-magnitude L1 + magnitude L1);
* ``codebook_usage``: per codebook, the fraction of its entries used and the perplexity of the codes.

``--asr whisper`` (the offline Whisper tiny.en of ``requirements-eval.txt``) or ``--asr
MODULE:FUNCTION`` (``FUNCTION(wavs: list[np.ndarray], sample_rate: int) -> list[str]``)
transcribes the clips; the command then reports the word and character error rates of the
original and of the resynthesised audio against the manifest text (:mod:`small_e_jax.eval.wer`:
jiwer after the Whisper's English normaliser) and the WER ratio (the target: resynthesised within
1.5x of the original's). ``--write-wavs DIR`` saves the
first ``--n-wavs`` originals and resyntheses for listening.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from small_e_jax.codec.training import losses
from small_e_jax.codec.training.data import MINI_CORPUS, load_clips, read_manifest

#: Clips are compared on their first whole multiple of this many seconds (few shapes to compile).
COMPARE_QUANTUM_S = 0.25


def resynthesize(codec: Any, clips: Sequence[np.ndarray], batch_size: int = 16) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Encode + decode ``clips`` (each ``[S]`` at ``codec.sample_rate``) -> (wavs ``[S]``, codes ``[n_q, F]``)."""
    out_wavs: list[np.ndarray] = []
    out_codes: list[np.ndarray] = []
    for i in range(0, len(clips), batch_size):
        group = clips[i:i + batch_size]
        lengths = np.array([len(c) for c in group])
        batch = np.zeros((len(group), int(lengths.max())), np.float32)
        for j, c in enumerate(group):
            batch[j, :len(c)] = c
        codes, frames = codec.encode_with_lengths(batch, codec.sample_rate, lengths)
        wavs = codec.decode(codes, frames)
        for j, c in enumerate(group):
            out_wavs.append(np.asarray(wavs[j, :len(c)], np.float32))
            out_codes.append(np.asarray(codes[j, :, :frames[j]]))
    return out_wavs, out_codes


def spectral_distances(refs: Sequence[np.ndarray], preds: Sequence[np.ndarray], sample_rate: int
                       ) -> dict[str, float]:
    """Mean multi-scale mel and STFT distances over clip pairs (each ``[S]``), on whole quanta."""
    quantum = int(COMPARE_QUANTUM_S * sample_rate)
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(refs):
        n = len(r) // quantum * quantum
        if n == 0:
            raise ValueError(f"clip {i} is shorter than {COMPARE_QUANTUM_S} s")
        groups.setdefault(n, []).append(i)
    mel_fn = jax.jit(lambda p, t: jax.vmap(lambda a, b: losses.multiscale_mel_loss(a[None], b[None], sample_rate))(p, t))
    stft_fn = jax.jit(lambda p, t: jax.vmap(lambda a, b: losses.multiscale_stft_loss(a[None], b[None]))(p, t))
    mel, stft = np.zeros(len(refs)), np.zeros(len(refs))
    for n, idx in groups.items():
        r = jnp.asarray(np.stack([refs[i][:n] for i in idx]))
        p = jnp.asarray(np.stack([preds[i][:n] for i in idx]))
        mel[idx] = np.asarray(mel_fn(p, r))
        stft[idx] = np.asarray(stft_fn(p, r))
    return {"mel_distance": float(mel.mean()), "stft_distance": float(stft.mean())}


def codebook_usage(codes: Sequence[np.ndarray], codebook_size: int) -> dict[str, list[float]]:
    """Per codebook: fraction of entries used and perplexity (``exp`` of the code entropy)."""
    allc = np.concatenate([c for c in codes], axis=1)  # [n_q, total frames]
    used, ppl = [], []
    for row in allc:
        counts = np.bincount(row, minlength=codebook_size).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        used.append(float((counts > 0).mean()))
        ppl.append(float(np.exp(-(p * np.log(p)).sum())))
    return {"used_fraction": used, "perplexity": ppl}


def load_asr(spec: str) -> Callable[[list[np.ndarray], int], list[str]]:
    """``"whisper"`` -> the offline Whisper of :mod:`small_e_jax.eval.asr` (``requirements-eval.txt``);
    ``"package.module:function"`` -> that function."""
    if spec == "whisper":
        from small_e_jax.eval.asr import WhisperASR

        return WhisperASR().transcribe
    if ":" not in spec:
        raise ValueError(f"--asr must be 'whisper' or look like package.module:function, got {spec!r}")
    module, name = spec.split(":", 1)
    return getattr(importlib.import_module(module), name)


def evaluate(codec: Any, corpus_dir: str | Path = MINI_CORPUS, split: str = "validation", *,
             limit: Optional[int] = None, asr: Optional[Callable] = None, write_wavs: Optional[str] = None,
             n_wavs: int = 4) -> dict[str, Any]:
    """Resynthesise ``split`` of the corpus with ``codec`` and measure it (see the module docstring)."""
    sr = codec.sample_rate
    clips = load_clips(corpus_dir, split, sr, limit=limit, progress=False)
    refs = [c.audio for c in clips]
    preds, codes = resynthesize(codec, refs)
    result: dict[str, Any] = {"clips": len(refs), "seconds": float(sum(len(r) for r in refs) / sr),
                              **spectral_distances(refs, preds, sr),
                              "codebook_usage": codebook_usage(codes, codec.codebook_size)}
    if asr is not None:
        from small_e_jax.eval.wer import error_rates  # jiwer, after the Whisper's English normaliser

        texts = [r["text"] for r in read_manifest(corpus_dir, split)[:limit]]
        orig, resyn = error_rates(texts, asr(refs, sr)), error_rates(texts, asr(preds, sr))
        result.update(wer_original=orig.wer, wer_resynthesized=resyn.wer,
                      wer_ratio=resyn.wer / orig.wer if orig.wer > 0 else float("inf"),
                      cer_original=orig.cer, cer_resynthesized=resyn.cer)
    if write_wavs:
        import soundfile as sf

        out = Path(write_wavs)
        out.mkdir(parents=True, exist_ok=True)
        for clip, ref, pred in list(zip(clips, refs, preds))[:n_wavs]:
            stem = Path(clip.path).stem
            sf.write(out / f"{stem}_original.wav", ref, sr)
            sf.write(out / f"{stem}_codec.wav", pred, sr)
        result["wavs"] = str(out)
    return result


if __name__ == "__main__":  # the command line: small_e_jax/cli/codec_quality.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.codec_quality", run_name="__main__")
