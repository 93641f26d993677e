"""The README's main job: one utterance of the bundled corpus, learnt and spoken back.

    python -m experiments.quickstart [--steps 150] [--out runs/quickstart] [--config PRESET] [key=value ...]

The smallest end-to-end run through the real pieces: one utterance of the bundled mini corpus
(``CLIP``, Festival's slt voice: "Do that with a wooden stick.") and its text; the text through
the BPE tokenizer; the audio through the codec the repository ships (``dac_mini24``, trained by
``python -m small_e_jax.codec.train`` on the mini corpus; ``data.codec`` / ``data.codec_weights``
choose another); the codes through the delay pattern; ``--steps`` Adam steps of the ``tiny``
Small-E model memorising that one pair; an orbax checkpoint of it (``OUT/checkpoint``, the
trainer's layout); greedy generation from that checkpoint through the product's decode loop
(:meth:`small_e_jax.inference.Synthesizer.from_checkpoint`: one compiled ``lax.while_loop`` over
``decode_step``, stopping on EOA, undelayed); the codec's decoder; ``OUT/sample.wav``, which
speaks the sentence. It reports how many generated codes equal the trained ones.

This is memorisation, not text-to-speech: a model that reads new sentences needs the full
corpus and a GPU (``python -m experiments.librilight_medium``, README).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import soundfile
from flax import nnx
from tqdm import tqdm

from small_e_jax.codec import load_codec
from small_e_jax.codec.training.data import MINI_CORPUS, decode_clip, read_manifest
from small_e_jax.checkpoint import save_params_checkpoint
from small_e_jax.config import Config, ConfigError, config_to_dict, parse_cli
from small_e_jax.delay import delay
from small_e_jax.inference import Synthesizer
from small_e_jax.model import SmallE
from small_e_jax.sampling import GREEDY
from small_e_jax.text import load_tokenizer
from small_e_jax.cli import ArgumentParser, entry_point

CLIP = "audio/festival_slt/h213_festival_slt.ogg"  # 1.5 s, in the corpus' training split
DEFAULT_CODEC = ["data.codec=dac_mini24", "data.codec_weights=bundled"]  # the codec we ship


def corpus_utterance(path: str, sample_rate: int, corpus_dir: Path = MINI_CORPUS) -> tuple[np.ndarray, str]:
    """(mono waveform [S] at ``sample_rate``, its transcript) of one clip of the mini corpus."""
    rows = [r for r in read_manifest(corpus_dir, "train") if r["path"] == path]
    if not rows:
        raise ConfigError(f"{path} is not in the training split of {corpus_dir / 'manifest.jsonl'}")
    return decode_clip(corpus_dir, rows[0], sample_rate).audio.astype(np.float32), rows[0]["text"]


def train(model: SmallE, batch: dict[str, jax.Array], steps: int, learning_rate: float) -> list[float]:
    """``steps`` Adam updates on one batch; returns the losses."""
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)

    @nnx.jit
    def step(model: SmallE, optimizer: nnx.Optimizer) -> jax.Array:
        def loss_fn(model: SmallE):
            return model.loss(batch["text"], batch["text_mask"], batch["audio"], batch["audio_mask"])

        (loss, _), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        return loss

    losses = []
    with tqdm(range(steps), desc="train", unit="step", mininterval=2.0) as bar:
        for _ in bar:
            losses.append(float(step(model, optimizer)))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    return losses


def run(config: Config, steps: int, out_dir: Path) -> int:
    m = config.model
    tokenizer = load_tokenizer()
    if tokenizer.vocab_size != m.text_vocab_size:
        raise ConfigError(f"model.text_vocab_size={m.text_vocab_size} but the tokenizer has "
                          f"{tokenizer.vocab_size} entries")
    start = time.perf_counter()
    codec = load_codec(config.data.codec, config.data.codec_weights, n_q=m.n_codebooks)
    if codec.codebook_size != m.codebook_size:
        raise ConfigError(f"model.codebook_size={m.codebook_size} but codec {config.data.codec} "
                          f"has {codec.codebook_size} entries per codebook")
    wav, sentence = corpus_utterance(CLIP, codec.sample_rate)
    print(f"utterance {CLIP}: {sentence!r}")
    text = jnp.asarray([tokenizer.encode(sentence)], jnp.int32)
    text_mask = jnp.ones(text.shape, bool)
    codes = np.asarray(codec.encode(wav[None], codec.sample_rate))  # [1, Q, F]
    frames = codes.shape[-1]
    print(f"codec {config.data.codec} ({'random weights' if config.data.codec_weights is None else config.data.codec_weights}): "
          f"{len(wav) / codec.sample_rate:.1f} s -> codes {codes.shape} in {time.perf_counter() - start:.1f} s")

    audio, audio_mask = delay(np.swapaxes(codes, 1, 2), np.array([frames]), codebook_size=m.codebook_size)
    batch = {"text": text, "text_mask": text_mask, "audio": jnp.asarray(audio),
             "audio_mask": jnp.asarray(audio_mask)}
    model = SmallE(config, rngs=nnx.Rngs(config.trainer.seed))
    model.train()
    losses = train(model, batch, steps, config.optimizer.learning_rate)
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.4f} after {steps} steps")

    # A checkpoint as the trainer writes one (parameters + resolved config), and the product's
    # inference path from it: one compiled while-loop over decode_step, greedy, stop on EOA.
    checkpoint = out_dir / "checkpoint"
    if checkpoint.exists():  # this command's own output from an earlier run: replaced, as sample.wav is
        shutil.rmtree(checkpoint)
    save_params_checkpoint(checkpoint, nnx.state(model, nnx.Param), config_to_dict(config), steps)
    print(f"saved {checkpoint}")
    synthesizer = Synthesizer.from_checkpoint(checkpoint, codec=codec)
    max_frames = frames + 8
    generated = synthesizer.generate([sentence], sampling=GREEDY, max_frames=max_frames)[0]  # [T, Q]
    stopped = len(generated) < max_frames
    n = min(len(generated), frames)
    match = float((generated[:n] == codes[0].T[:n]).mean()) if n else 0.0
    print(f"generated {len(generated)} frames ({'stopped on EOA' if stopped else 'no stop token'}); "
          f"{match:.1%} of codes equal the trained ones")

    path = out_dir / "sample.wav"
    audio_out = synthesizer.decode_audio([generated])[0]
    soundfile.write(path, np.clip(audio_out, -1.0, 1.0), codec.sample_rate)
    print(f"wrote {path} ({len(audio_out) / codec.sample_rate:.2f} s at {codec.sample_rate} Hz)")
    return 0


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="Adam steps on the one example")
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="output folder")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    try:
        # The shipped codec unless the command line names one (later overrides win).
        config = parse_cli(rest if any(a.startswith(("--config", "-c")) for a in rest)
                           else ["--config", "tiny", *DEFAULT_CODEC, *rest])
        return run(config, args.steps, args.out)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
