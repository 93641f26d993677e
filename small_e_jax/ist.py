"""Initial-state tuning (IST, docs/model.md §7): learn the initial recurrent state of every audio GLA
block from a few clips of one speaker, with the model frozen; synthesize with it.

    python -m small_e_jax.ist --checkpoint DIR --clips FOLDER --out voice.npz [--steps 300]
    python -m small_e_jax.synthesize --checkpoint DIR --text "..." --out x.wav --ist voice.npz

FOLDER holds ``name.wav`` + ``name.txt`` (transcript) pairs. The clips are encoded with the
checkpoint's codec and delayed; the loss is the model's usual cross-entropy with the tuned
initial states, whose gradient flows through the GLA kernel's initial-state input.

Parameterisation (docs/model.md §7, Lina's): per block and head a rank-r state
``S_0 = 0.02 * sum_{i<r} k_i v_i^T`` (k ~ N(0, 1) [K], v ~ N(0, 0.02^2) [V]); Adam, lr 0.1.
PACA's PosNet state is not tuned (it tracks the position in the text). Choice: the model runs
in eval mode (dropout off) during tuning, so a step is a pure function of the factors.

The file is an ``.npz`` with ``layer{i}_k`` [H, r, K] and ``layer{i}_v`` [H, r, V] for each
audio block i (encoder then decoder) — a few hundred KiB for the 64M model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from small_e_jax.delay import delay
from small_e_jax.model import SmallE

SCALE = 0.02

Factors = list[dict[str, jax.Array]]  # per block {"k": [H, r, K], "v": [H, r, V]}


def init_factors(model: SmallE, rank: int = 1, seed: int = 123) -> Factors:
    """Random rank-``rank`` factors for every audio GLA block (docs/model.md §7 init)."""
    if model.config.block == "transformer":
        raise ValueError("initial-state tuning needs GLA blocks; this model uses transformer blocks")
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    keys = jax.random.split(jax.random.key(seed), 2 * len(model.blocks))
    factors = []
    for i, block in enumerate(model.blocks):
        _, H, K, V = block.init_state(1).shape
        factors.append({"k": jax.random.normal(keys[2 * i], (H, rank, K)),
                        "v": 0.02 * jax.random.normal(keys[2 * i + 1], (H, rank, V))})
    return factors


def states_from_factors(factors: Factors) -> list[jax.Array]:
    """Factors -> initial states [1, H, K, V] fp32 per block."""
    return [SCALE * jnp.einsum("hrk,hrv->hkv", f["k"], f["v"])[None].astype(jnp.float32) for f in factors]


def save_factors(path: str | Path, factors: Factors) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, f in enumerate(factors):
        arrays[f"layer{i}_k"], arrays[f"layer{i}_v"] = np.asarray(f["k"]), np.asarray(f["v"])
    np.savez(path, **arrays)
    return path


def load_factors(path: str | Path) -> Factors:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"initial-state file {path} does not exist")
    with np.load(path) as data:
        n = len([k for k in data.files if k.endswith("_k")])
        try:
            return [{"k": jnp.asarray(data[f"layer{i}_k"]), "v": jnp.asarray(data[f"layer{i}_v"])} for i in range(n)]
        except KeyError as err:
            raise ValueError(f"{path} is not an initial-state file (missing {err})") from None


def load_initial_states(path: str | Path, model: SmallE) -> list[jax.Array]:
    """The initial states saved in ``path``, checked against ``model``'s blocks."""
    states = states_from_factors(load_factors(path))
    expected = [tuple(b.init_state(1).shape) for b in model.blocks]
    got = [tuple(s.shape) for s in states]
    if got != expected:
        raise ValueError(f"{path}: initial states {got} do not fit this model's blocks {expected}")
    return states


def make_batch(clips: Sequence[tuple[np.ndarray, np.ndarray]], text_len: int) -> dict[str, jax.Array]:
    """clips: (text ids [J_i], raw codes [T_i, Q]) -> one padded batch (text, masks, delayed audio)."""
    B = len(clips)
    text = np.zeros((B, text_len), np.int32)
    for b, (ids, _) in enumerate(clips):
        text[b, :len(ids)] = ids
    T = max(len(c) for _, c in clips)
    Q = clips[0][1].shape[1]
    codes = np.zeros((B, T, Q), np.int32)
    for b, (_, c) in enumerate(clips):
        codes[b, :len(c)] = c
    audio, audio_mask = delay(codes, np.array([len(c) for _, c in clips]))
    return {"text": jnp.asarray(text), "text_mask": jnp.asarray(text != 0), "audio": jnp.asarray(audio),
            "audio_mask": jnp.asarray(audio_mask)}


def loss_with_factors(model: SmallE, factors: Factors | None, batch: dict[str, jax.Array]) -> jax.Array:
    states = None if factors is None else states_from_factors(factors)
    return model.loss(batch["text"], batch["text_mask"], batch["audio"], batch["audio_mask"],
                      initial_states=states)[0]


def tune(model: SmallE, batches: Sequence[dict[str, jax.Array]], *, steps: int = 300, rank: int = 1,
         learning_rate: float = 0.1, seed: int = 123, progress: bool = True) -> tuple[Factors, list[float]]:
    """Learn initial-state factors on ``batches`` (cycled), the model frozen. Returns (factors, losses)."""
    if not batches:
        raise ValueError("initial-state tuning needs at least one batch of clips")
    model.eval()
    graphdef, params = nnx.split(model)
    factors = init_factors(model, rank, seed)
    tx = optax.adam(learning_rate)
    opt_state = tx.init(factors)

    @jax.jit
    def step(factors, opt_state, batch):
        def loss_fn(f):
            return loss_with_factors(nnx.merge(graphdef, params), f, batch)

        loss, grads = jax.value_and_grad(loss_fn)(factors)
        updates, opt_state = tx.update(grads, opt_state, factors)
        return optax.apply_updates(factors, updates), opt_state, loss

    losses = []
    for n in tqdm(range(steps), desc="ist", unit="step", disable=not progress, mininterval=2.0):
        factors, opt_state, loss = step(factors, opt_state, batches[n % len(batches)])
        losses.append(loss)
    return factors, [float(x) for x in jax.device_get(losses)]


def read_clips(folder: Path, synth: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """``name.wav`` + ``name.txt`` pairs -> (text ids, codes [T, Q]) with the synthesizer's codec."""
    import soundfile

    pairs = []
    for wav_path in sorted(Path(folder).glob("*.wav")):
        txt = wav_path.with_suffix(".txt")
        if not txt.exists():
            raise ValueError(f"{wav_path} has no transcript {txt.name}")
        wav, rate = soundfile.read(str(wav_path), dtype="float32")
        wav = wav.mean(axis=1) if wav.ndim == 2 else wav
        codes = np.asarray(synth.codec.encode(wav[None], rate))[0].T
        pairs.append((np.asarray(synth.tokenizer.encode(txt.read_text(encoding="utf-8").strip())), codes))
    if not pairs:
        raise ValueError(f"no .wav clips in {folder}")
    return pairs


if __name__ == "__main__":  # the command line: small_e_jax/cli/ist.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.ist", run_name="__main__")
