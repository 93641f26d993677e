"""Optional adversarial training for the codec: discriminators and GAN / feature-matching losses.

* :class:`PeriodDiscriminator` / multi-period (HiFi-GAN, used by DAC): the waveform folded into
  ``[T / p, p]`` for periods 2, 3, 5, 7, 11, then 2-D convolutions along time.
* :class:`StftDiscriminator` / multi-scale STFT (EnCodec's MS-STFT; DAC's multi-resolution
  discriminator without its band split): 2-D convolutions over the real and imaginary parts
  of complex STFTs at several window sizes.
* :func:`discriminator_loss`, :func:`generator_loss` (LSGAN, as DAC, or hinge) and
  :func:`feature_matching_loss` (L1 between the discriminators' hidden features of real and
  generated audio, as DAC).

Channels-last throughout (``[B, H, W, C]``). Widths are a fraction of DAC's so that the
discriminators stay comparable in cost to the 3M-parameter codec.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from small_e_jax.codec.training.losses import stft

Array = jax.Array
Features = list[Array]  # hidden activations of one discriminator, last = logits


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """Sizes of the multi-period and multi-scale STFT discriminators."""

    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    period_channels: tuple[int, ...] = (16, 32, 64, 128, 128)
    stft_windows: tuple[int, ...] = (2048, 1024, 512)
    stft_channels: int = 16
    stft_layers: int = 4


def _leaky(x: Array) -> Array:
    return jax.nn.leaky_relu(x, 0.1)


def _conv_features(convs: Sequence[nnx.Conv], post: nnx.Conv, x: Array) -> Features:
    """The conv stack's activations (leaky ReLU after each conv), then the logits of ``post``."""
    feats = []
    for conv in convs:
        x = _leaky(conv(x))
        feats.append(x)
    feats.append(post(x))
    return feats


class PeriodDiscriminator(nnx.Module):
    """``wav [B, S]`` -> features; the last is ``[B, H, p, 1]`` logits."""

    def __init__(self, period: int, channels: Sequence[int], *, rngs: nnx.Rngs):
        self.period = period
        convs, c_in = [], 1
        for i, c in enumerate(channels):
            stride = 3 if i < len(channels) - 1 else 1
            convs.append(nnx.Conv(c_in, c, (5, 1), strides=(stride, 1), padding=((2, 2), (0, 0)), rngs=rngs))
            c_in = c
        self.convs = nnx.List(convs)
        self.post = nnx.Conv(c_in, 1, (3, 1), padding=((1, 1), (0, 0)), rngs=rngs)

    def __call__(self, wav: Array) -> Features:
        b, s = wav.shape
        pad = (-s) % self.period
        x = jnp.pad(wav, ((0, 0), (0, pad)), mode="reflect") if pad else wav
        return _conv_features(self.convs, self.post, x.reshape(b, -1, self.period, 1))


class StftDiscriminator(nnx.Module):
    """``wav [B, S]`` -> features over the complex STFT ``[B, frames, bins, 2]``; last = logits."""

    def __init__(self, window: int, channels: int, layers: int, *, rngs: nnx.Rngs):
        self.window = window
        convs = [nnx.Conv(2, channels, (3, 9), padding="SAME", rngs=rngs)]
        for _ in range(layers - 1):
            convs.append(nnx.Conv(channels, channels, (3, 9), strides=(1, 2), padding="SAME", rngs=rngs))
        self.convs = nnx.List(convs)
        self.post = nnx.Conv(channels, 1, (3, 3), padding="SAME", rngs=rngs)

    def __call__(self, wav: Array) -> Features:
        spec = stft(wav, self.window)
        x = jnp.stack([jnp.real(spec), jnp.imag(spec)], axis=-1)  # [B, F, bins, 2]
        return _conv_features(self.convs, self.post, x)


class Discriminators(nnx.Module):
    """All discriminators: ``wav [B, S]`` -> one feature list per discriminator."""

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig(), *, rngs: nnx.Rngs):
        self.mpd = nnx.List([PeriodDiscriminator(p, cfg.period_channels, rngs=rngs) for p in cfg.periods])
        self.msd = nnx.List([StftDiscriminator(w, cfg.stft_channels, cfg.stft_layers, rngs=rngs)
                             for w in cfg.stft_windows])

    def __call__(self, wav: Array) -> list[Features]:
        return [d(wav) for d in self.mpd] + [d(wav) for d in self.msd]


GanKind = Literal["lsgan", "hinge"]


def discriminator_loss(real: list[Features], fake: list[Features], kind: GanKind = "lsgan") -> Array:
    """Sum over discriminators of the real/fake classification loss on their logits; scalar."""
    total = jnp.zeros((), jnp.float32)
    for r, f in zip(real, fake, strict=True):
        lr, lf = r[-1].astype(jnp.float32), f[-1].astype(jnp.float32)
        if kind == "lsgan":
            total = total + jnp.mean(jnp.square(1.0 - lr)) + jnp.mean(jnp.square(lf))
        else:
            total = total + jnp.mean(jax.nn.relu(1.0 - lr)) + jnp.mean(jax.nn.relu(1.0 + lf))
    return total


def generator_loss(fake: list[Features], kind: GanKind = "lsgan") -> Array:
    """Sum over discriminators of the generator's adversarial loss; scalar."""
    total = jnp.zeros((), jnp.float32)
    for f in fake:
        lf = f[-1].astype(jnp.float32)
        total = total + (jnp.mean(jnp.square(1.0 - lf)) if kind == "lsgan" else jnp.mean(-lf))
    return total


def feature_matching_loss(real: list[Features], fake: list[Features]) -> Array:
    """Sum over discriminators and hidden layers of ``L1(fake - stop_gradient(real))``; scalar."""
    total = jnp.zeros((), jnp.float32)
    for r, f in zip(real, fake, strict=True):
        for hr, hf in zip(r[:-1], f[:-1], strict=True):
            total = total + jnp.mean(jnp.abs(hf.astype(jnp.float32) - jax.lax.stop_gradient(hr).astype(jnp.float32)))
    return total
