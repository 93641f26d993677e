"""The README's main job while no trained codec ships (issue 11).

    python -m experiments.quickstart [--steps 150] [--out runs/quickstart] [--config PRESET] [key=value ...]

The smallest end-to-end run that exists, through the real pieces: one sentence through the BPE
tokenizer; a synthetic 1.2 s voiced tone through the DAC codec (random weights: no trained
codec can be downloaded here, so the codes mean nothing acoustically); the codes through the
delay pattern; ``--steps`` Adam steps of the ``tiny`` Small-E model memorising that one pair;
greedy generation through the product's decode loop (:class:`small_e_jax.inference.Synthesizer`:
one compiled ``lax.while_loop`` over ``decode_step``, stopping on EOA, undelayed); the codec's
decoder; a wav file. It reports how many generated codes equal the trained ones.
"""

from __future__ import annotations

import argparse
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
from small_e_jax.config import Config, ConfigError, parse_cli
from small_e_jax.delay import delay
from small_e_jax.inference import Synthesizer
from small_e_jax.model import SmallE
from small_e_jax.sampling import GREEDY
from small_e_jax.text import load_tokenizer

SENTENCE = "The quick brown fox jumps over the lazy dog."


def synthetic_voice(sample_rate: int, seconds: float = 1.2) -> np.ndarray:
    """A vowel-like test signal [S]: 140 Hz harmonics with vibrato and a soft envelope."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    phase = 2 * np.pi * np.cumsum(140.0 * (1.0 + 0.03 * np.sin(2 * np.pi * 5.0 * t))) / sample_rate
    wave = sum(np.sin(h * phase) / h for h in range(1, 9))
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    return (0.3 * wave * envelope / np.abs(wave).max()).astype(np.float32)


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
    text = jnp.asarray([tokenizer.encode(SENTENCE)], jnp.int32)
    text_mask = jnp.ones(text.shape, bool)

    start = time.perf_counter()
    codec = load_codec(config.data.codec, config.data.codec_weights, n_q=m.n_codebooks)
    if codec.codebook_size != m.codebook_size:
        raise ConfigError(f"model.codebook_size={m.codebook_size} but codec {config.data.codec} "
                          f"has {codec.codebook_size} entries per codebook")
    wav = synthetic_voice(codec.sample_rate)
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

    model.eval()
    # The product's decode path: one compiled while-loop over decode_step, greedy, stop on EOA.
    synthesizer = Synthesizer(model, config, codec=codec)
    max_frames = frames + 8
    generated = synthesizer.generate([SENTENCE], sampling=GREEDY, max_frames=max_frames)[0]  # [T, Q]
    stopped = len(generated) < max_frames
    n = min(len(generated), frames)
    match = float((generated[:n] == codes[0].T[:n]).mean()) if n else 0.0
    print(f"generated {len(generated)} frames ({'stopped on EOA' if stopped else 'no stop token'}); "
          f"{match:.1%} of codes equal the trained ones")

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "sample.wav"
    audio_out = synthesizer.decode_audio([generated])[0]
    soundfile.write(path, np.clip(audio_out, -1.0, 1.0), codec.sample_rate)
    print(f"wrote {path} ({len(audio_out) / codec.sample_rate:.2f} s at {codec.sample_rate} Hz)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="Adam steps on the one example")
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="output folder")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    try:
        config = parse_cli(rest if any(a.startswith(("--config", "-c")) for a in rest)
                           else ["--config", "tiny", *rest])
        return run(config, args.steps, args.out)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
