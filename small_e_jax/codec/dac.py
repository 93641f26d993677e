"""DAC (Descript Audio Codec, Kumar et al. 2023, arXiv 2306.06546) in Flax NNX.

A re-implementation of the architecture of the MIT-licensed PyTorch DAC: a convolutional
encoder (Snake activations, dilated residual units, strided down-sampling), a residual vector
quantiser with *factorised* codes (each codebook looks up in a low-dimensional projection)
and *L2-normalised* nearest-neighbour search (cosine similarity;
:mod:`small_e_jax.codec.quantizer`), and a mirrored decoder with transposed-convolution
up-sampling. No code is shared with the PyTorch package; weights made
by it are converted with ``python -m small_e_jax.codec.convert``.

Layout: everything is channels-last (**NLC**, ``[B, L, C]``), which XLA handles best; the
PyTorch model is NCL and the converter transposes the kernels. Weight norm is folded away at
conversion time, so every convolution here is a plain kernel + bias.

Padding and batching
--------------------
DAC's own ``preprocess`` right-pads a clip with zeros to a multiple of ``hop_length`` and every
convolution zero-pads its input ("same"-style), so the codes of a clip depend on where the clip
ends. To make codes independent of how a clip is batched, every function here takes the valid
``lengths`` of the items: before each convolution with a kernel wider than one tap the
activations past an item's valid length (at that layer's resolution) are set to zero, which is
exactly the zero padding the convolution would have seen had the item been alone. So encoding a
clip alone, in a batch with longer clips, or with extra right padding (e.g. to a length bucket)
computes the same values for its valid frames (up to the float summation order that XLA picks
for a shape, which on CPU gave bit-identical results in our tests) and hence the same codes.
Decoding is masked the same way. Frames past an item's end get :data:`PAD_CODE`.

Entry points: :class:`DAC` (arrays in, arrays out; jit/shard it yourself) and
:class:`~small_e_jax.codec.dac_codec.DACCodec` (the :class:`~small_e_jax.codec.base.Codec`
interface: numpy in/out, validation, soxr resampling, length buckets, one jit-compiled call per
batch, optional batch sharding over a mesh).

This module holds the network (encoder, decoder, :class:`DAC`) and its constructors
(:func:`random_init`, :func:`abstract_model`); the config and presets are in
:mod:`small_e_jax.codec.dac_config`, the quantiser in :mod:`small_e_jax.codec.quantizer` and
the numpy I/O wrapper in :mod:`small_e_jax.codec.dac_codec`.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from small_e_jax.codec import weights
from small_e_jax.codec.base import PAD_CODE
from small_e_jax.codec.dac_config import DACConfig
from small_e_jax.codec.layers import _PRECISIONS, Conv1d, ConvTranspose1d, Snake, _mask
from small_e_jax.codec.quantizer import ResidualVectorQuantizer

Array = jax.Array


# --------------------------------------------------------------------------- network


class ResidualUnit(nnx.Module):
    """``x + Conv1x1(Snake(Conv7_dilated(Snake(x))))``; ``[B, L, C] -> [B, L, C]``."""

    def __init__(self, dim: int, dilation: int, *, precision: str = "highest", rngs: nnx.Rngs):
        self.snake1 = Snake(dim)
        self.conv1 = Conv1d(dim, dim, 7, dilation=dilation, padding=3 * dilation, precision=precision, rngs=rngs)
        self.snake2 = Snake(dim)
        self.conv2 = Conv1d(dim, dim, 1, precision=precision, rngs=rngs)

    def __call__(self, x: Array, lengths: Optional[Array] = None) -> Array:
        y = self.conv1(self.snake1(x), lengths)
        y = self.conv2(self.snake2(y), lengths)
        return x + y


class EncoderBlock(nnx.Module):
    """Three residual units (dilation 1, 3, 9) at ``dim // 2`` channels, then a strided conv.

    ``[B, L, dim // 2] -> [B, L // stride, dim]`` (for ``L`` a multiple of ``stride``).
    """

    def __init__(self, dim: int, stride: int, *, precision: str = "highest", rngs: nnx.Rngs):
        self.res_units = nnx.List([ResidualUnit(dim // 2, d, precision=precision, rngs=rngs) for d in (1, 3, 9)])
        self.snake = Snake(dim // 2)
        self.conv = Conv1d(dim // 2, dim, 2 * stride, stride=stride, padding=math.ceil(stride / 2),
                           precision=precision, rngs=rngs)

    def __call__(self, x: Array, lengths: Optional[Array] = None) -> tuple[Array, Optional[Array]]:
        for unit in self.res_units:
            x = unit(x, lengths)
        x = self.conv(self.snake(x), lengths)
        return x, None if lengths is None else self.conv.output_length(lengths)


class Encoder(nnx.Module):
    """Waveform to continuous latents: ``[B, S, 1] -> [B, S // hop, latent]``."""

    def __init__(self, cfg: DACConfig, *, precision: str = "highest", rngs: nnx.Rngs):
        dim = cfg.encoder_dim
        self.conv_in = Conv1d(1, dim, 7, padding=3, precision=precision, rngs=rngs)
        blocks = []
        for stride in cfg.encoder_rates:
            dim *= 2
            blocks.append(EncoderBlock(dim, stride, precision=precision, rngs=rngs))
        self.blocks = nnx.List(blocks)
        self.snake_out = Snake(dim)
        self.conv_out = Conv1d(dim, cfg.latent, 3, padding=1, precision=precision, rngs=rngs)

    def __call__(self, x: Array, lengths: Optional[Array] = None) -> tuple[Array, Optional[Array]]:
        x = self.conv_in(x, lengths)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        return self.conv_out(self.snake_out(x), lengths), lengths


class DecoderBlock(nnx.Module):
    """Snake, transposed conv (up-sample by ``stride``), three residual units (dilation 1, 3, 9).

    ``[B, L, in_dim] -> [B, (L - 1) stride + 2 stride - 2 ceil(stride / 2), out_dim]``
    (``L * stride`` for even strides, one sample less for odd ones, as in DAC).
    """

    def __init__(self, in_dim: int, out_dim: int, stride: int, *, precision: str = "highest", rngs: nnx.Rngs):
        self.snake = Snake(in_dim)
        self.conv_t = ConvTranspose1d(in_dim, out_dim, 2 * stride, stride=stride, padding=math.ceil(stride / 2),
                                      precision=precision, rngs=rngs)
        self.res_units = nnx.List([ResidualUnit(out_dim, d, precision=precision, rngs=rngs) for d in (1, 3, 9)])

    def __call__(self, x: Array, lengths: Optional[Array] = None) -> tuple[Array, Optional[Array]]:
        x = self.conv_t(self.snake(x), lengths)
        lengths = None if lengths is None else self.conv_t.output_length(lengths)
        for unit in self.res_units:
            x = unit(x, lengths)
        return x, lengths


class Decoder(nnx.Module):
    """Quantised latents to waveform: ``[B, F, latent] -> [B, S_out, 1]`` in ``[-1, 1]`` (tanh)."""

    def __init__(self, cfg: DACConfig, *, precision: str = "highest", rngs: nnx.Rngs):
        ch = cfg.decoder_dim
        self.conv_in = Conv1d(cfg.latent, ch, 7, padding=3, precision=precision, rngs=rngs)
        blocks = []
        for i, stride in enumerate(cfg.decoder_rates):
            blocks.append(DecoderBlock(ch // 2 ** i, ch // 2 ** (i + 1), stride, precision=precision, rngs=rngs))
        self.blocks = nnx.List(blocks)
        out_dim = ch // 2 ** len(cfg.decoder_rates)
        self.snake_out = Snake(out_dim)
        self.conv_out = Conv1d(out_dim, 1, 7, padding=3, precision=precision, rngs=rngs)

    def output_length(self, frames: Array) -> Array:
        """Samples the decoder makes from ``frames`` frames (per item)."""
        for block in self.blocks:
            frames = block.conv_t.output_length(frames)
        return frames

    def __call__(self, z: Array, lengths: Optional[Array] = None) -> tuple[Array, Optional[Array]]:
        x = self.conv_in(z, lengths)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        x = jnp.tanh(self.conv_out(self.snake_out(x), lengths))
        return _mask(x, lengths), lengths


# --------------------------------------------------------------------------- model


class DAC(nnx.Module):
    """The DAC codec model (array level, jit-able, batched, shardable).

    * :meth:`encode`: ``wav [B, S]`` (``S`` a multiple of ``hop_length``) + valid ``lengths [B]``
      -> ``codes [B, n_q, F]`` with ``F = S / hop_length`` and ``frame_lengths [B]``.
    * :meth:`decode`: ``codes [B, n, F]`` + ``frame_lengths [B]`` -> ``wav [B, F * hop_length]``.

    Build with random weights via ``DAC(cfg, rngs=nnx.Rngs(seed))`` (for tests) or load converted
    weights with :func:`small_e_jax.codec.weights.load_dac`. The parameters are ordinary NNX
    state: ``nnx.split`` it and ``jax.device_put`` the state with any ``NamedSharding``.
    """

    def __init__(self, cfg: DACConfig, *, precision: str = "highest", rngs: nnx.Rngs):
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(_PRECISIONS)}, got {precision!r}")
        self.config = cfg
        self.encoder = Encoder(cfg, precision=precision, rngs=rngs)
        self.quantizer = ResidualVectorQuantizer(cfg, precision=precision, rngs=rngs)
        self.decoder = Decoder(cfg, precision=precision, rngs=rngs)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def frame_lengths(self, lengths: Array) -> Array:
        """Valid sample lengths ``[B]`` -> valid frame counts ``ceil(length / hop)`` ``[B]``."""
        return -(-lengths // self.hop_length)

    def encode_latents(self, wav: Array, lengths: Optional[Array] = None) -> tuple[Array, Optional[Array]]:
        """``wav [B, S]`` (``S % hop == 0``) -> ``(z [B, S // hop, D], frame_lengths [B] | None)``.

        ``lengths`` are the valid samples per item; the encoder sees each item zero-padded from
        there to a multiple of ``hop_length`` (DAC's ``preprocess``), whatever the batch padding.
        """
        if wav.ndim != 2:
            raise ValueError(f"wav must be [B, S], got shape {wav.shape}")
        if wav.shape[1] % self.hop_length:
            raise ValueError(f"wav length {wav.shape[1]} is not a multiple of hop_length={self.hop_length}; "
                             "right-pad with zeros (DACCodec does this) and pass the valid lengths")
        x = wav[..., None]
        if lengths is None:
            z, _ = self.encoder(x, None)
            return z, None
        lengths = jnp.asarray(lengths, jnp.int32)
        x = _mask(x, lengths)  # the zeros of DAC's right padding
        padded = self.frame_lengths(lengths) * self.hop_length
        z, frames = self.encoder(x, padded)
        return z, frames

    def encode(self, wav: Array, lengths: Optional[Array] = None, *, n_q: Optional[int] = None
               ) -> tuple[Array, Array]:
        """``wav [B, S]`` -> ``(codes [B, n_q, S // hop] int32, frame_lengths [B] int32)``.

        Frames past an item's ``frame_lengths`` hold :data:`PAD_CODE`.
        """
        n_q = self.config.num_quantizers if n_q is None else n_q
        z, frames = self.encode_latents(wav, lengths)
        codes, _ = self.quantizer(z, n_q)
        if frames is None:
            frames = jnp.full((wav.shape[0],), z.shape[1], jnp.int32)
        else:
            valid = jnp.arange(z.shape[1])[None, None, :] < frames[:, None, None]
            codes = jnp.where(valid, codes, PAD_CODE)
        return codes, frames

    def decode(self, codes: Array, frame_lengths: Optional[Array] = None) -> Array:
        """``codes [B, n, F]`` -> ``wav [B, F * hop]`` float.

        Uses the first ``n`` codebooks. Frames at or past ``frame_lengths`` are ignored (their codes
        may be :data:`PAD_CODE`); samples past each item's decoded length are zero. The decoder
        itself makes ``decoder.output_length(F)`` samples, which is ``F * hop`` for even strides and
        a few samples less with odd ones (8 fewer for the 16/24 kHz models); the rest is zero
        padding so that frame ``f`` always starts at sample ``f * hop``.
        """
        if codes.ndim != 3:
            raise ValueError(f"codes must be [B, n_q, F], got shape {codes.shape}")
        codes = codes.astype(jnp.int32)
        f = codes.shape[2]
        if frame_lengths is not None:
            frame_lengths = jnp.asarray(frame_lengths, jnp.int32)
            valid = jnp.arange(f)[None, None, :] < frame_lengths[:, None, None]
            codes = jnp.where(valid, codes, 0)
        z_q = self.quantizer.from_codes(codes)
        wav, _ = self.decoder(z_q, frame_lengths)
        wav = wav[..., 0]
        target = f * self.hop_length
        if wav.shape[1] < target:
            wav = jnp.pad(wav, ((0, 0), (0, target - wav.shape[1])))
        return wav[:, :target]

    def __call__(self, wav: Array, lengths: Optional[Array] = None, *, n_q: Optional[int] = None
                 ) -> tuple[Array, Array, Array]:
        """Round trip: ``wav [B, S]`` -> ``(codes, frame_lengths, reconstruction [B, S])``."""
        codes, frames = self.encode(wav, lengths, n_q=n_q)
        return codes, frames, self.decode(codes, frames)

    def train_forward(self, wav: Array, n_active: Optional[Array] = None) -> dict[str, Array]:
        """Differentiable round trip of unpadded crops, for training.

        ``wav [B, S]`` (``S % hop == 0``, every sample valid), ``n_active [B]`` (codebooks kept per
        item, ``None`` = all) -> ``{"recon" [B, S], "codes" [B, N, S // hop], "commitment_loss",
        "codebook_loss"`` (scalars), ``"z_e" [N, B, S // hop, d]`` (stopped projections)``}``. The decoder output is zero-padded to ``S`` as in :meth:`decode`.
        """
        z, _ = self.encode_latents(wav)
        z_q, codes, commit, book, z_e = self.quantizer.train_forward(z, n_active)
        recon, _ = self.decoder(z_q)
        recon = recon[..., 0]
        s = wav.shape[1]
        if recon.shape[1] < s:
            recon = jnp.pad(recon, ((0, 0), (0, s - recon.shape[1])))
        return {"recon": recon[:, :s], "codes": codes, "commitment_loss": commit, "codebook_loss": book, "z_e": z_e}


def num_params(module: nnx.Module) -> int:
    """Number of scalar parameters of an NNX module (works on ``nnx.eval_shape`` results too)."""
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(nnx.state(module, nnx.Param))))


def random_init(cfg: DACConfig, seed: int = 0, *, precision: str = "highest") -> DAC:
    """A DAC with random weights (PyTorch-default-like scales); for tests and shape checks.

    Same distributions as ``DAC(cfg, rngs=nnx.Rngs(seed))`` but drawn with numpy on the host:
    on a CPU, XLA compiles every ``jax.random`` call of a new shape (~0.5 s each, a minute for a
    whole model), while numpy takes milliseconds.
    """
    model = abstract_model(cfg, precision=precision)
    rng = np.random.default_rng(seed)
    for _, module in nnx.iter_modules(model):
        if hasattr(module, "host_init"):
            module.host_init(rng)
    return model


@functools.lru_cache(maxsize=16)
def _abstract_parts(cfg: DACConfig, precision: str) -> tuple[Any, Any]:
    return nnx.split(nnx.eval_shape(lambda: DAC(cfg, precision=precision, rngs=nnx.Rngs(0))))


def abstract_model(cfg: DACConfig, *, precision: str = "highest") -> DAC:
    """A fresh model with ``jax.ShapeDtypeStruct`` leaves (no memory); to be filled by a loader.

    Tracing the constructor takes ~1 s, so its structure is cached per config; every call still
    returns new, unshared variables.
    """
    graphdef, state = _abstract_parts(cfg, precision)
    return nnx.merge(graphdef, jax.tree_util.tree_map(lambda x: x, state))


weights.register(weights.FORMAT, DACConfig, DAC, abstract_model)  # loaders find this codec by its format
