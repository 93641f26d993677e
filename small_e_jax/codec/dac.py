"""DAC (Descript Audio Codec, Kumar et al. 2023, arXiv 2306.06546) in Flax NNX.

A re-implementation of the architecture of the MIT-licensed PyTorch DAC: a convolutional
encoder (Snake activations, dilated residual units, strided down-sampling), a residual vector
quantiser with *factorised* codes (each codebook looks up in a low-dimensional projection)
and *L2-normalised* nearest-neighbour search (cosine similarity), and a mirrored decoder with
transposed-convolution up-sampling. No code is shared with the PyTorch package; weights made
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

Entry points: :class:`DAC` (arrays in, arrays out; jit/shard it yourself) and :class:`DACCodec`
(the :class:`~small_e_jax.codec.base.Codec` interface: numpy in/out, validation, soxr resampling,
length buckets, one jit-compiled call per batch, optional batch sharding over a mesh).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from small_e_jax.codec import weights
from small_e_jax.codec.base import PAD_CODE, bucket_frames_up, prepare_audio
# The layers DAC shares with EnCodec (re-exported here, where callers look for them):
from small_e_jax.codec.layers import (_PRECISIONS, CONV_IMPLS, Conv1d, ConvTranspose1d, Snake,  # noqa: F401
                                      _host_uniform, _mask, _uniform_init, conv1d, length_mask)

Array = jax.Array



# --------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class DACConfig:
    """Architecture of a DAC model (the keyword arguments of the PyTorch ``DAC``) plus ``n_q``.

    ``n_codebooks`` is how many codebooks the weights hold; ``n_q`` (``None`` = all) is how many
    the codec uses to encode (the residual quantiser's first ``n_q`` stages; each adds
    ``log2(codebook_size) * frame_rate`` bits/s).
    """

    sample_rate: int = 24_000
    encoder_dim: int = 64
    encoder_rates: tuple[int, ...] = (2, 4, 5, 8)
    latent_dim: Optional[int] = None  # None: encoder_dim * 2 ** len(encoder_rates), as DAC does
    decoder_dim: int = 1536
    decoder_rates: tuple[int, ...] = (8, 5, 4, 2)
    n_codebooks: int = 32
    codebook_size: int = 1024
    codebook_dim: int = 8
    n_q: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoder_rates", tuple(int(r) for r in self.encoder_rates))
        object.__setattr__(self, "decoder_rates", tuple(int(r) for r in self.decoder_rates))
        for name in ("sample_rate", "encoder_dim", "decoder_dim", "n_codebooks", "codebook_size",
                     "codebook_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"DACConfig.{name} must be a positive integer, got {value!r}")
        if not self.encoder_rates or any(r <= 0 for r in self.encoder_rates):
            raise ValueError(f"DACConfig.encoder_rates must be positive integers, got {self.encoder_rates}")
        if not self.decoder_rates or any(r <= 0 for r in self.decoder_rates):
            raise ValueError(f"DACConfig.decoder_rates must be positive integers, got {self.decoder_rates}")
        if self.decoder_dim % 2 ** len(self.decoder_rates):
            raise ValueError(f"DACConfig.decoder_dim={self.decoder_dim} must be divisible by "
                             f"2**len(decoder_rates)={2 ** len(self.decoder_rates)}")
        if self.latent_dim is not None and self.latent_dim <= 0:
            raise ValueError(f"DACConfig.latent_dim must be positive or None, got {self.latent_dim}")
        if self.n_q is not None and not 1 <= self.n_q <= self.n_codebooks:
            raise ValueError(f"DACConfig.n_q={self.n_q} must lie in 1..n_codebooks={self.n_codebooks}")

    @property
    def latent(self) -> int:
        """Latent width D between encoder, quantiser and decoder."""
        return self.latent_dim if self.latent_dim is not None else self.encoder_dim * 2 ** len(self.encoder_rates)

    @property
    def hop_length(self) -> int:
        """Samples per code frame (product of the encoder strides)."""
        return int(np.prod(self.encoder_rates))

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def num_quantizers(self) -> int:
        """Codebooks used to encode (``n_q`` resolved)."""
        return self.n_codebooks if self.n_q is None else self.n_q

    @property
    def bitrate(self) -> float:
        """Bits per second of the codes at ``num_quantizers`` codebooks."""
        return self.frame_rate * self.num_quantizers * math.log2(self.codebook_size)

    def replace(self, **changes: Any) -> "DACConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["encoder_rates"] = list(self.encoder_rates)
        d["decoder_rates"] = list(self.decoder_rates)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DACConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DACConfig keys {unknown}; valid keys: {sorted(known)}")
        return cls(**d)


def dac_16khz(n_q: Optional[int] = None) -> DACConfig:
    """Official 16 kHz model (release 0.0.5): hop 320, 50 frames/s, 12 codebooks."""
    return DACConfig(sample_rate=16_000, encoder_dim=64, encoder_rates=(2, 4, 5, 8), decoder_dim=1536,
                     decoder_rates=(8, 5, 4, 2), n_codebooks=12, codebook_size=1024, codebook_dim=8, n_q=n_q)


def dac_24khz(n_q: Optional[int] = 4) -> DACConfig:
    """Official 24 kHz model (release 0.0.4): hop 320, 75 frames/s, 32 codebooks, 74.7M params.

    Our default uses the first 4 codebooks: 4 x 10 bits x 75 frames/s = 3 kbps.
    """
    return DACConfig(sample_rate=24_000, encoder_dim=64, encoder_rates=(2, 4, 5, 8), decoder_dim=1536,
                     decoder_rates=(8, 5, 4, 2), n_codebooks=32, codebook_size=1024, codebook_dim=8, n_q=n_q)


def dac_44khz(n_q: Optional[int] = None) -> DACConfig:
    """Official 44.1 kHz model (8 kbps, release 0.0.1): hop 512, ~86.1 frames/s, 9 codebooks."""
    return DACConfig(sample_rate=44_100, encoder_dim=64, encoder_rates=(2, 4, 8, 8), decoder_dim=1536,
                     decoder_rates=(8, 8, 4, 2), n_codebooks=9, codebook_size=1024, codebook_dim=8, n_q=n_q)


def dac_mini24(n_q: Optional[int] = None) -> DACConfig:
    """Our compact 24 kHz model, trained on the bundled mini corpus (``python -m small_e_jax.codec.train``).

    Same layout as the official 24 kHz model (hop 320, 75 frames/s, codebooks of 1024 x dim 8) but
    narrow (encoder_dim 16, decoder_dim 256: 3.0M parameters) and only the 4 codebooks the TTS
    model reads (3 kbps). Small enough that its train state (parameters + AdamW moments, ~36 MB)
    fits the few-minute GPU runs it is trained in and its weights (~12 MB) ship in the repo.
    """
    return DACConfig(sample_rate=24_000, encoder_dim=16, encoder_rates=(2, 4, 5, 8), decoder_dim=256,
                     decoder_rates=(8, 5, 4, 2), n_codebooks=4, codebook_size=1024, codebook_dim=8, n_q=n_q)


PRESETS = {"dac_16khz": dac_16khz, "dac_24khz": dac_24khz, "dac_44khz": dac_44khz, "dac_mini24": dac_mini24}


def preset(name: str, n_q: Optional[int] = None) -> DACConfig:
    """A preset config by name (``dac_16khz``, ``dac_24khz``, ``dac_44khz``, ``dac_mini24``); ``n_q`` overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown DAC preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    return cfg if n_q is None else cfg.replace(n_q=n_q)


# --------------------------------------------------------------------------- helpers


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


def _l2_normalize(x: Array, eps: float = 1e-12) -> Array:
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)


def _nearest_code(z_e: Array, book: Array, precision: Any) -> Array:
    """``z_e [B, F, d]``, ``book [K, d]`` -> ``[B, F]`` int32: the codeword of largest cosine similarity."""
    enc = _l2_normalize(z_e)
    nbook = _l2_normalize(book)
    # Squared euclidean distance between unit vectors, written as DAC writes it.
    dist = (jnp.sum(jnp.square(enc), -1, keepdims=True)
            - 2.0 * jnp.matmul(enc, nbook.T, precision=precision)
            + jnp.sum(jnp.square(nbook), -1)[None, None, :])
    return jnp.argmax(-dist, axis=-1).astype(jnp.int32)


class ResidualVectorQuantizer(nnx.Module):
    """Residual VQ with factorised, L2-normalised codebooks; the codebooks' parameters are stacked.

    Stage ``q`` projects the residual ``[B, F, D]`` to ``[B, F, d]`` (``in_kernel[q]``: a folded
    weight-normed 1x1 conv), picks the codeword with the largest cosine similarity (the nearest
    neighbour after L2-normalising both the projection and the codebook), takes the *raw*
    codeword ``codebook[q][code]``, projects it back (``out_kernel[q]``) and subtracts that from
    the residual. Parameters: ``in_kernel [N, D, d]``, ``in_bias [N, d]``, ``out_kernel [N, d, D]``,
    ``out_bias [N, D]``, ``codebook [N, K, d]``.
    """

    def __init__(self, cfg: DACConfig, *, precision: str = "highest", rngs: nnx.Rngs):
        n, dl, d, k = cfg.n_codebooks, cfg.latent, cfg.codebook_dim, cfg.codebook_size
        self.precision = precision
        self.in_kernel = nnx.Param(_uniform_init(dl)(rngs.params(), (n, dl, d)))
        self.in_bias = nnx.Param(_uniform_init(dl)(rngs.params(), (n, d)))
        self.out_kernel = nnx.Param(_uniform_init(d)(rngs.params(), (n, d, dl)))
        self.out_bias = nnx.Param(_uniform_init(d)(rngs.params(), (n, dl)))
        self.codebook = nnx.Param(jax.random.normal(rngs.params(), (n, k, d), jnp.float32))

    def host_init(self, rng: np.random.Generator) -> None:
        """Re-initialise on the host (see :func:`random_init`)."""
        _host_uniform(self.in_kernel, rng, self.in_kernel.shape[1])
        _host_uniform(self.in_bias, rng, self.in_kernel.shape[1])
        _host_uniform(self.out_kernel, rng, self.out_kernel.shape[1])
        _host_uniform(self.out_bias, rng, self.out_kernel.shape[1])
        self.codebook.set_value(jnp.asarray(rng.standard_normal(self.codebook.shape).astype(np.float32)))

    @property
    def n_codebooks(self) -> int:
        return self.codebook.shape[0]

    def _out_proj(self, q: int, z_p: Array) -> Array:
        w = self.out_kernel[q].astype(z_p.dtype)
        return jnp.matmul(z_p, w, precision=_PRECISIONS[self.precision]) + self.out_bias[q].astype(z_p.dtype)

    def __call__(self, z: Array, n_q: int) -> tuple[Array, Array]:
        """``z [B, F, D]`` -> ``(codes [B, n_q, F] int32, z_q [B, F, D])``."""
        if not 1 <= n_q <= self.n_codebooks:
            raise ValueError(f"n_q={n_q} must lie in 1..{self.n_codebooks}")
        prec = _PRECISIONS[self.precision]
        residual, z_q, codes = z, jnp.zeros_like(z), []
        for q in range(n_q):
            z_e = jnp.matmul(residual, self.in_kernel[q].astype(z.dtype), precision=prec) + self.in_bias[q].astype(z.dtype)
            book = self.codebook[q].astype(z.dtype)
            idx = _nearest_code(z_e, book, prec)  # [B, F]
            z_q_i = self._out_proj(q, jnp.take(book, idx, axis=0))
            z_q = z_q + z_q_i
            residual = residual - z_q_i
            codes.append(idx)
        return jnp.stack(codes, axis=1), z_q

    def train_forward(self, z: Array, n_active: Optional[Array] = None
                      ) -> tuple[Array, Array, Array, Array, Array]:
        """Training pass: straight-through quantisation of all codebooks, with their losses.

        ``z [B, F, D]``; ``n_active [B]`` int (``None`` = all codebooks): how many codebooks
        item ``b`` keeps (DAC's quantizer dropout; see :func:`quantizer_dropout_counts`).
        Returns ``(z_q [B, F, D], codes [B, N, F] int32, commitment_loss, codebook_loss,
        z_e [N, B, F, d])`` (``z_e``: each stage's projected residual, for dead-code restarts).

        As in DAC, both losses are MSEs in the projected ``d``-dim space between the projection
        ``z_e`` and the raw codeword ``c``: the commitment loss pulls ``z_e`` towards a stopped
        ``c``, the codebook loss pulls ``c`` towards a stopped ``z_e``. The decoder receives
        ``out_proj(z_e + stop_gradient(c - z_e))`` (straight-through: the forward value is the
        codeword, the gradient flows to the encoder as if quantisation were the identity). Each
        stage's loss and contribution count only for items that keep that stage; the residual
        passes to every stage, so the codes equal :meth:`__call__`'s.
        """
        prec = _PRECISIONS[self.precision]
        n = self.n_codebooks
        b = z.shape[0]
        if n_active is None:
            n_active = jnp.full((b,), n, jnp.int32)
        residual, z_q, codes, projections = z, jnp.zeros_like(z), [], []
        commitment = jnp.zeros((), z.dtype)
        codebook_loss = jnp.zeros((), z.dtype)
        for q in range(n):
            z_e = jnp.matmul(residual, self.in_kernel[q].astype(z.dtype), precision=prec) + self.in_bias[q].astype(z.dtype)
            book = self.codebook[q].astype(z.dtype)
            idx = _nearest_code(z_e, book, prec)  # [B, F]; no gradient flows through the argmax
            c = jnp.take(book, idx, axis=0)  # [B, F, d]
            keep = (q < n_active).astype(z.dtype)  # [B]
            per_item_commit = jnp.mean(jnp.square(z_e - jax.lax.stop_gradient(c)), axis=(1, 2))
            per_item_book = jnp.mean(jnp.square(c - jax.lax.stop_gradient(z_e)), axis=(1, 2))
            commitment = commitment + jnp.mean(per_item_commit * keep)
            codebook_loss = codebook_loss + jnp.mean(per_item_book * keep)
            z_st = z_e + jax.lax.stop_gradient(c - z_e)
            z_q_i = self._out_proj(q, z_st)
            z_q = z_q + z_q_i * keep[:, None, None]
            residual = residual - z_q_i
            codes.append(idx)
            projections.append(jax.lax.stop_gradient(z_e))
        return z_q, jnp.stack(codes, axis=1), commitment, codebook_loss, jnp.stack(projections)

    def from_codes(self, codes: Array) -> Array:
        """``codes [B, n, F]`` (``n <= n_codebooks``, values in ``[0, K)``) -> ``z_q [B, F, D]``."""
        n = codes.shape[1]
        if not 1 <= n <= self.n_codebooks:
            raise ValueError(f"codes carry {n} codebooks; this model has 1..{self.n_codebooks}")
        z_q = None
        for q in range(n):
            book = self.codebook[q]
            z_q_i = self._out_proj(q, jnp.take(book, codes[:, q], axis=0, mode="clip"))
            z_q = z_q_i if z_q is None else z_q + z_q_i
        return z_q


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


def restart_dead_codes(codebook: Array, usage: Array, codes: Array, z_e: Array, key: Array, *,
                       decay: float = 0.99, threshold: float = 0.01) -> tuple[Array, Array, Array]:
    """Replace codewords that have gone unused by vectors the encoder currently produces.

    ``codebook [N, K, d]``, ``usage [N, K]`` (exponential moving average of hits per step),
    ``codes [B, N, F]`` (this step's), ``z_e [N, B, F, d]`` (this step's projections).
    A codeword is dead when its average falls below ``threshold`` times the mean hits per
    codeword (``B F / K``); it is then set to a random projection of this batch and its
    average reset to the mean. Why: a codeword that no projection is near never receives a
    gradient (only the chosen codeword gets the codebook loss), so it stays dead for good;
    this is the standard remedy (Jukebox, EnCodec's expiry) for codebook collapse.
    Returns ``(codebook, usage, dead_fraction)``.
    """
    n, k, d = codebook.shape
    hits = jax.vmap(lambda c: jnp.bincount(c.reshape(-1), length=k))(jnp.swapaxes(codes, 0, 1)).astype(jnp.float32)
    usage = decay * usage + (1.0 - decay) * hits
    mean_hits = codes.shape[0] * codes.shape[2] / k
    dead = usage < threshold * mean_hits  # [N, K]
    pool = z_e.reshape(n, -1, d)
    pick = jax.random.randint(key, (n, k), 0, pool.shape[1])
    candidates = jnp.take_along_axis(pool, pick[..., None], axis=1)  # [N, K, d]
    codebook = jnp.where(dead[..., None], candidates.astype(codebook.dtype), codebook)
    usage = jnp.where(dead, mean_hits, usage)
    return codebook, usage, jnp.mean(dead.astype(jnp.float32))


def quantizer_dropout_counts(key: Array, batch: int, n_codebooks: int, rate: float) -> Array:
    """DAC's quantizer dropout: ``[B]`` int32 codebooks kept per item.

    The first ``int(batch * rate)`` items keep a uniformly drawn ``1..n_codebooks`` codebooks, the
    rest keep all, so the decoder also learns to work from the coarse codebooks alone.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"quantizer dropout rate must lie in [0, 1], got {rate}")
    drawn = jax.random.randint(key, (batch,), 1, n_codebooks + 1, jnp.int32)
    return jnp.where(jnp.arange(batch) < int(batch * rate), drawn, n_codebooks).astype(jnp.int32)


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


# --------------------------------------------------------------------------- codec (numpy I/O)


class DACCodec:
    """DAC behind the :class:`~small_e_jax.codec.base.Codec` interface (numpy in, numpy out).

    ``encode`` validates, mixes down and resamples (soxr) the audio, right-pads every item with
    zeros to a multiple of ``hop_length`` (DAC's ``preprocess``) and the batch to a length bucket
    (:func:`~small_e_jax.codec.base.bucket_frames_up` of ``bucket_frames``, so that few shapes get
    compiled), then runs one jit-compiled call; per-item length masking makes the codes of an item independent of the batch it is in.

    Sharding: pass ``mesh`` (a ``jax.sharding.Mesh``) to replicate the parameters over it and
    split the batch over ``batch_axis`` (the batch is padded with silent dummy items to a
    multiple of that axis' size). The array-level :class:`DAC` methods take arrays with any
    ``NamedSharding`` directly.
    """

    def __init__(self, model: DAC, *, n_q: Optional[int] = None, mesh: Optional[jax.sharding.Mesh] = None,
                 batch_axis: str | tuple[str, ...] = "data", bucket_frames: int = 32):
        n_q = model.config.num_quantizers if n_q is None else int(n_q)
        if not 1 <= n_q <= model.config.n_codebooks:
            raise ValueError(f"n_q={n_q} must lie in 1..{model.config.n_codebooks} (codebooks in the weights)")
        if bucket_frames < 1:
            raise ValueError(f"bucket_frames must be >= 1, got {bucket_frames}")
        self.model = model
        self.config = model.config.replace(n_q=n_q)
        self.bucket_frames = int(bucket_frames)
        self.mesh, self.batch_axis = mesh, batch_axis
        self._graphdef, state = nnx.split(model)
        if mesh is not None:
            state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
            axes = (batch_axis,) if isinstance(batch_axis, str) else tuple(batch_axis)
            self._batch_multiple = int(np.prod([mesh.shape[a] for a in axes]))
            self._batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(batch_axis))
        else:
            self._batch_multiple, self._batch_sharding = 1, None
        self._state = state
        #: How many times each entry point was traced (compiled); for tests and diagnostics.
        self.trace_counts = {"encode": 0, "decode": 0}
        self._encode_fn = jax.jit(self._encode_impl)
        self._decode_fn = jax.jit(self._decode_impl)

    # -- constructors
    @classmethod
    def random_init(cls, cfg: DACConfig, seed: int = 0, *, precision: str = "highest", **kwargs: Any) -> "DACCodec":
        """A codec with random weights (tests, benchmarks)."""
        return cls(random_init(cfg, seed, precision=precision), **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str, *, n_q: Optional[int] = None, precision: str = "highest",
                        **kwargs: Any) -> "DACCodec":
        """Load weights written by ``python -m small_e_jax.codec.convert`` (``n_q`` overrides theirs).

        ``precision`` ("highest" | "high" | "default") is the matmul/conv precision: "highest" keeps
        fp32 codes identical to PyTorch's on GPUs too (no TF32). Measured on one H100 (24 kHz model,
        16 x 10 s): "highest" encodes ~650x / decodes ~320x real time, "default" ~2500x / ~1650x
        with 99.5% of the codes unchanged. On CPU the setting makes no difference.
        """
        return cls(weights.load_dac(directory, precision=precision), n_q=n_q, **kwargs)

    # -- Codec properties
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def n_q(self) -> int:
        return self.config.num_quantizers

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def num_frames(self, num_samples: int, sample_rate: Optional[int] = None) -> int:
        """Frames ``encode`` makes from ``num_samples`` samples at ``sample_rate`` (default: ours).

        With resampling this is exact only for soxr's output length, ``ceil(S * sr_out / sr_in)``.
        """
        if sample_rate is not None and sample_rate != self.sample_rate:
            num_samples = math.ceil(num_samples * self.sample_rate / sample_rate)
        return -(-int(num_samples) // self.hop_length)

    # -- jitted bodies
    def _encode_impl(self, state: Any, wav: Array, lengths: Array) -> tuple[Array, Array]:
        self.trace_counts["encode"] += 1
        model = nnx.merge(self._graphdef, state)
        return model.encode(wav, lengths, n_q=self.n_q)

    def _decode_impl(self, state: Any, codes: Array, frame_lengths: Array) -> Array:
        self.trace_counts["decode"] += 1
        model = nnx.merge(self._graphdef, state)
        return model.decode(codes, frame_lengths)

    def _pad_batch(self, *arrays: np.ndarray, fill: Sequence[Any]) -> tuple[int, list[np.ndarray]]:
        b = arrays[0].shape[0]
        extra = (-b) % self._batch_multiple
        out = []
        for a, v in zip(arrays, fill):
            if extra:
                pad = np.full((extra,) + a.shape[1:], v, a.dtype)
                a = np.concatenate([a, pad])
            out.append(a)
        return b, out

    def _put(self, a: np.ndarray) -> Array:
        return jnp.asarray(a) if self._batch_sharding is None else jax.device_put(a, self._batch_sharding)

    # -- Codec methods
    def encode_with_lengths(self, wav: Any, sample_rate: int, lengths: Optional[Sequence[int]] = None
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`encode`, also returning the valid frames per item ``[B]`` (int32)."""
        audio, lens = prepare_audio(wav, sample_rate, self.sample_rate, lengths)
        hop = self.hop_length
        frames = -(-lens // hop)
        f_max = int(frames.max())
        f_pad = bucket_frames_up(f_max, self.bucket_frames)
        # Trim padding beyond the bucket first: the input may be wider than its longest valid item.
        audio = audio[:, :f_pad * hop]
        audio = np.pad(audio, ((0, 0), (0, f_pad * hop - audio.shape[1])))
        b, (audio, lens_p) = self._pad_batch(audio, lens.astype(np.int32), fill=(0.0, hop))
        codes, frame_lengths = self._encode_fn(self._state, self._put(audio), self._put(lens_p))
        codes = np.asarray(codes)[:b, :, :f_max]
        return codes, np.asarray(frame_lengths)[:b]

    def encode(self, wav: Any, sample_rate: int, lengths: Optional[Sequence[int]] = None) -> np.ndarray:
        """``wav [B, S]`` / ``[B, C, S]`` at ``sample_rate`` -> ``codes [B, n_q, F]`` int32.

        ``F = ceil(S' / hop_length)`` with ``S'`` the (resampled) longest valid length; frames past
        an item's valid length (``ceil(length' / hop)``) hold ``PAD_CODE`` (-1).
        """
        return self.encode_with_lengths(wav, sample_rate, lengths)[0]

    def decode(self, codes: Any, frame_lengths: Optional[Sequence[int]] = None) -> np.ndarray:
        """``codes [B, n, F]`` (``n <= n_codebooks``) -> ``wav [B, F * hop_length]`` float32.

        With ``frame_lengths`` only the first ``frame_lengths[i]`` frames of item ``i`` are read
        (padding frames may hold ``PAD_CODE``) and its samples past them are zero.
        """
        arr = np.asarray(codes)
        if arr.ndim != 3:
            raise ValueError(f"codes must be [B, n_q, F], got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"codes must be integers, got dtype {arr.dtype}")
        b, n, f = arr.shape
        if b == 0 or f == 0:
            raise ValueError(f"codes are empty (shape {arr.shape})")
        if not 1 <= n <= self.config.n_codebooks:
            raise ValueError(f"codes carry {n} codebooks; this model has 1..{self.config.n_codebooks}")
        if frame_lengths is None:
            fl = np.full((b,), f, np.int32)
        else:
            fl = np.asarray(frame_lengths)
            if fl.shape != (b,) or not np.issubdtype(fl.dtype, np.integer) or np.any(fl < 1) or np.any(fl > f):
                raise ValueError(f"frame_lengths must be {b} integers in 1..{f}, got {frame_lengths!r}")
            fl = fl.astype(np.int32)
        valid = np.arange(f)[None, None, :] < fl[:, None, None]
        bad = valid & ((arr < 0) | (arr >= self.codebook_size))
        if bad.any():
            i, q, t = (int(v[0]) for v in np.nonzero(bad))
            raise ValueError(f"code {int(arr[i, q, t])} at item {i}, codebook {q}, frame {t} is outside "
                             f"[0, {self.codebook_size}) (pass frame_lengths if these are padding frames)")
        arr = np.where(valid, arr, 0).astype(np.int32)
        f_pad = bucket_frames_up(f, self.bucket_frames)
        arr = np.pad(arr, ((0, 0), (0, 0), (0, f_pad - f)))
        b, (arr, fl) = self._pad_batch(arr, fl, fill=(0, 1))
        wav = self._decode_fn(self._state, self._put(arr), self._put(fl))
        return np.asarray(wav)[:b, :f * self.hop_length]
