"""Shared pieces of the inference tests: a tiny model with random weights (filled from numpy:
random init through JAX compiles dozens of programs, slow on a loaded CPU), a fake codec with
a known finite receptive field, and a helper that writes a checkpoint like the trainer's."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from small_e_jax.checkpoint import save_params_checkpoint
from small_e_jax.config import Config, config_to_dict, load_config
from small_e_jax.inference import Synthesizer, abstract_model
from small_e_jax.model import SmallE

OVERRIDES = ("model.text_layers=1", "data.max_frames=40")


def tiny_config(*overrides: str) -> Config:
    return load_config("tiny", [*OVERRIDES, *overrides])


def random_model(config: Config, seed: int = 0) -> SmallE:
    """The model of ``config`` with random weights of sensible scale (eval mode)."""
    graphdef, params, rest = abstract_model(config)
    rng = np.random.default_rng(seed)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]

    def value(path, x) -> np.ndarray:
        name = jax.tree_util.keystr(path)
        if "bias" in name:
            return np.zeros(x.shape, x.dtype)
        if "audio_embed" in name:
            return rng.normal(0, 1, x.shape).astype(x.dtype)
        if len(x.shape) == 1:
            return np.ones(x.shape, x.dtype)
        fan_in = x.shape[-2]
        return rng.normal(0, 1.5 / np.sqrt(fan_in), x.shape).astype(x.dtype)

    leaves = [jnp.asarray(value(p, x)) for p, x in flat]
    params = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), leaves)
    model = nnx.merge(graphdef, params, rest)
    model.eval()
    return model


class FakeCodec:
    """decode: per-frame value sum_k (k + 1) * code_k, smoothed over +-2 frames (zero-padded
    edges), repeated ``hop_length`` times: a codec whose receptive field is 2 frames each way."""

    sample_rate, hop_length, frame_rate = 80, 4, 20.0

    def __init__(self, n_q: int, codebook_size: int):
        self.n_q, self.codebook_size = n_q, codebook_size

    def decode(self, codes, frame_lengths=None):
        codes = np.asarray(codes)
        B, Q, F = codes.shape
        fl = np.full(B, F) if frame_lengths is None else np.asarray(frame_lengths)
        out = np.zeros((B, F * self.hop_length), np.float32)
        for b in range(B):
            per_frame = (codes[b, :, :fl[b]] * (np.arange(Q)[:, None] + 1)).sum(0).astype(np.float64)
            smooth = np.convolve(per_frame, np.array([1, 2, 3, 2, 1]) / 9.0, mode="full")[2:2 + fl[b]] / 1000.0
            out[b, :fl[b] * self.hop_length] = np.repeat(smooth, self.hop_length)
        return out

    def encode(self, wav, sample_rate, lengths=None):
        """wav [B, S] -> codes [B, Q, S // hop]: the frame's mean level, shifted per codebook."""
        wav = np.asarray(wav, np.float64)
        frames = wav[:, :wav.shape[1] // self.hop_length * self.hop_length].reshape(wav.shape[0], -1, self.hop_length)
        level = (np.abs(frames).mean(-1) * 1000).astype(np.int64)  # [B, F]
        return ((level[:, None, :] + 17 * np.arange(self.n_q)[None, :, None]) % self.codebook_size).astype(np.int32)


def save_checkpoint(directory: Path, model: SmallE, config: Config, step: int = 10,
                    config_dict: dict | None = None) -> Path:
    """Write ``model``'s parameters as the trainer does (items ``state`` and ``meta``)."""
    save_params_checkpoint(directory, nnx.state(model, nnx.Param),
                           config_dict if config_dict is not None else config_to_dict(config), step)
    return Path(directory)


@pytest.fixture(scope="session")
def tiny() -> tuple[SmallE, Config]:
    config = tiny_config()
    return random_model(config), config


@pytest.fixture(scope="session")
def synth(tiny) -> Synthesizer:
    model, config = tiny
    return Synthesizer(model, config, codec=FakeCodec(config.model.n_codebooks, config.model.codebook_size))
