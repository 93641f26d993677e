"""EnCodec 24 kHz (Défossez et al. 2022, arXiv 2210.13438) in Flax NNX.

A re-implementation of the architecture of Meta's MIT-licensed PyTorch ``encodec`` package
(version 0.1.1, ``EncodecModel.encodec_model_24khz``); no code is shared with it. The model:

* **SEANet encoder**: a 7-tap conv (1 -> 32 channels), then for each stride ``2, 4, 5, 8`` a
  residual block (ELU, 3-tap conv to half width, ELU, 1x1 conv back; 1x1 conv shortcut) and an
  ELU + strided conv (kernel ``2 * stride``) doubling the width, a 2-layer LSTM (512 wide, with a
  skip connection), ELU and a 7-tap conv to the 128-dim latent. Hop 320, 75 frames/s.
* **Residual vector quantiser**: 32 Euclidean codebooks of 1024 x 128 (no projections);
  each stage picks the codeword nearest to the residual. ``n_q`` stages are used; the
  bandwidth options of the 24 kHz model are 1.5 / 3 / 6 / 12 / 24 kbps = 2 / 4 / 8 / 16 / 32
  codebooks (0.75 kbps each). Our default is 3 kbps (4 codebooks).
* **SEANet decoder**: the mirror image (7-tap conv, LSTM, transposed convs with residual
  blocks), no output activation.

All convolutions are **causal** as in the 24 kHz model: a conv with kernel ``k``, stride ``s``
and dilation ``d`` pads ``(k - 1) d - (s - 1)`` samples on the left and, on the right, just
enough for the last window to be full (strided convs: up to the next multiple of ``s``), and
both paddings are *reflections* of the signal (``pad_mode="reflect"``; for inputs no longer than
the padding, PyTorch first appends zeros and reflects those: reproduced here). Transposed convs
trim all their extra samples on the right. Weight norm is folded into plain kernels at
conversion time. Layout is channels-last (``[B, L, C]``).

Padding and batching
--------------------
Encoding a clip ``x`` of ``S`` samples gives ``ceil(S / 320)`` frames. Because the right
padding at every strided conv reflects the clip's *own* last samples, the codes of the last
frames depend on where the clip ends, and a naive batched run (shorter clips zero-padded to the
longest) would change them. Every function here therefore takes the valid ``lengths`` of the
items and builds each conv's padded input by a per-item gather that reproduces exactly the
padding the PyTorch model applies to that item alone. Everything else is causal (left-padded
convs, the LSTM, right-trimmed transposed convs), so an item's valid frames never read the
batch padding. Result: **batching and extra right padding do not change codes** — an item is
encoded as ``EncodecModel.encode`` encodes it alone (no segmenting, no normalisation: the 24 kHz
model has neither); the tests check this against the PyTorch model one item at a time, and that
an item's codes are the same alone, in a batch and with extra padding. Float summation order may
differ between shapes in principle; on CPU we saw bit-identical results. Frames past an item's
end hold :data:`PAD_CODE`. Decoding is per item the same way (``F`` frames -> ``F * 320`` samples,
samples past an item's decoded length are zero).

Official weights: ``encodec_24khz-d7cc33bc.th`` from https://dl.fbaipublicfiles.com/encodec/v0/
(the URL the ``encodec`` package downloads from; MIT licence). Download it by hand and convert
with ``python -m small_e_jax.codec.convert --from encodec_24khz-d7cc33bc.th --to DIR``; nothing in
this project downloads it.

Entry points: :class:`EnCodec` (arrays in, arrays out) and :class:`EncodecCodec` (the
:class:`~small_e_jax.codec.base.Codec` interface: numpy in/out, validation, soxr resampling,
length buckets, one jit-compiled call per batch).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from small_e_jax.codec import weights
from small_e_jax.codec.base import PAD_CODE, CodeRates
from small_e_jax.codec.dac_codec import DACCodec
from small_e_jax.codec.layers import _PRECISIONS, ConvParams, ConvTranspose1d, _host_uniform, _uniform_init, length_mask

Array = jax.Array

#: Bandwidths (kbps) the official 24 kHz model offers.
BANDWIDTHS_24KHZ = (1.5, 3.0, 6.0, 12.0, 24.0)


# --------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class EncodecConfig(CodeRates):
    """Architecture of a (mono, causal, weight-norm) EnCodec model plus the codebooks used.

    Field names follow the PyTorch ``SEANetEncoder``/``SEANetDecoder`` arguments; ``ratios`` are
    in the decoder's order (the encoder uses them reversed), as in ``encodec``. ``n_codebooks`` is
    how many codebooks the weights hold, ``n_q`` (``None`` = all) how many ``encode`` uses.
    """

    sample_rate: int = 24_000
    n_filters: int = 32
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    dimension: int = 128
    n_residual_layers: int = 1
    lstm_layers: int = 2
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    n_codebooks: int = 32
    codebook_size: int = 1024
    target_bandwidths: tuple[float, ...] = BANDWIDTHS_24KHZ
    n_q: Optional[int] = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratios", tuple(int(r) for r in self.ratios))
        object.__setattr__(self, "target_bandwidths", tuple(float(b) for b in self.target_bandwidths))
        for name in ("sample_rate", "n_filters", "dimension", "kernel_size", "last_kernel_size",
                     "residual_kernel_size", "dilation_base", "compress", "n_codebooks", "codebook_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"EncodecConfig.{name} must be a positive integer, got {value!r}")
        for name in ("n_residual_layers", "lstm_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"EncodecConfig.{name} must be a non-negative integer, got {value!r}")
        if not self.ratios or any(r <= 0 for r in self.ratios):
            raise ValueError(f"EncodecConfig.ratios must be positive integers, got {self.ratios}")
        if self.n_filters % self.compress:
            raise ValueError(f"EncodecConfig.n_filters={self.n_filters} must be divisible by compress={self.compress}")
        if self.n_q is not None and not 1 <= self.n_q <= self.n_codebooks:
            raise ValueError(f"EncodecConfig.n_q={self.n_q} must lie in 1..n_codebooks={self.n_codebooks}")

    @property
    def hop_length(self) -> int:
        """Samples per code frame (product of the strides)."""
        return int(np.prod(self.ratios))

    @property
    def bandwidth_per_codebook(self) -> float:
        """kbps one codebook adds (``encodec``: ``log2(bins) * ceil(frame_rate) / 1000``)."""
        return math.log2(self.codebook_size) * math.ceil(self.frame_rate) / 1000

    @property
    def bitrate(self) -> float:
        """Bits per second of the codes at ``num_quantizers`` codebooks."""
        return self.frame_rate * self.num_quantizers * math.log2(self.codebook_size)

    def n_q_for_bandwidth(self, bandwidth: float) -> int:
        """Codebooks for a target bandwidth in kbps (one of ``target_bandwidths``), as ``encodec`` picks."""
        if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float, np.integer, np.floating)):
            raise ValueError(f"bandwidth must be a number (kbps), got {bandwidth!r}")
        if float(bandwidth) not in self.target_bandwidths:
            raise ValueError(f"bandwidth {bandwidth!r} kbps is not supported; choose one of "
                             f"{list(self.target_bandwidths)}")
        n_q = int(max(1, math.floor(float(bandwidth) / self.bandwidth_per_codebook)))
        if n_q > self.n_codebooks:
            raise ValueError(f"bandwidth {bandwidth} kbps needs {n_q} codebooks; the weights hold {self.n_codebooks}")
        return n_q

    def replace(self, **changes: Any) -> "EncodecConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ratios"] = list(self.ratios)
        d["target_bandwidths"] = list(self.target_bandwidths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EncodecConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown EncodecConfig keys {unknown}; valid keys: {sorted(known)}")
        return cls(**d)


def encodec_24khz(n_q: Optional[int] = 4, *, bandwidth: Optional[float] = None) -> EncodecConfig:
    """Official EnCodec 24 kHz: hop 320, 75 frames/s, 32 codebooks x 1024, 14.9M parameters.

    Default 4 codebooks = 3 kbps; pass ``n_q`` or ``bandwidth`` (1.5, 3, 6, 12 or 24 kbps).
    """
    cfg = EncodecConfig(n_q=n_q)
    return cfg if bandwidth is None else cfg.replace(n_q=cfg.n_q_for_bandwidth(bandwidth))


PRESETS = {"encodec_24khz": encodec_24khz}


# --------------------------------------------------------------------------- helpers


def _extra_padding(length: Any, kernel_size: int, stride: int, padding_total: int) -> Any:
    """Right padding that makes the last window of a strided conv full (``encodec``'s rule).

    Works on Python ints and integer arrays alike (integer arithmetic only).
    """
    n_frames = -((-(length - kernel_size + padding_total)) // stride) + 1  # ceil(.../stride) + 1
    ideal = (n_frames - 1) * stride + kernel_size - padding_total
    return ideal - length


def _elu(x: Array) -> Array:
    return jnp.where(x > 0, x, jnp.expm1(jnp.minimum(x, 0)))


# --------------------------------------------------------------------------- layers


class CausalConv1d(ConvParams):
    """``encodec``'s causal ``SConv1d`` (reflect padding), channels-last.

    ``[B, L, C_in] -> [B, L_out, C_out]`` with ``L_out = ceil(L / stride)``. ``kernel`` is
    ``[K, C_in, C_out]`` (PyTorch ``[C_out, C_in, K]``), weight norm folded. With ``lengths``
    (valid input samples per item, ``[B]``) each item is padded as if it were alone.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 dilation: int = 1, precision: str = "highest", rngs: nnx.Rngs):
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.precision = precision
        self.padding_total = (kernel_size - 1) * dilation - (stride - 1)
        self.init_params(kernel_size, in_channels, out_channels, in_channels * kernel_size, rngs)

    def output_length(self, lengths: Any) -> Any:
        """Valid output frames for valid input lengths (``ceil(L / stride)``)."""
        extra = _extra_padding(lengths, self.kernel_size, self.stride, self.padding_total)
        span = self.dilation * (self.kernel_size - 1) + 1
        return (lengths + self.padding_total + extra - span) // self.stride + 1

    def _pad(self, x: Array, lengths: Optional[Array]) -> Array:
        """Per-item reflect padding exactly as ``encodec.modules.conv.pad1d`` does it for one item."""
        b, t, _ = x.shape
        pl = self.padding_total
        extra_static = _extra_padding(t, self.kernel_size, self.stride, pl)
        if pl == 0 and extra_static == 0:
            return x if lengths is None else x * length_mask(lengths, t, x.dtype)
        lens = jnp.full((b,), t, jnp.int32) if lengths is None else lengths.astype(jnp.int32)
        lens = lens[:, None]  # [B, 1]
        extra = _extra_padding(lens, self.kernel_size, self.stride, pl)
        max_pad = jnp.maximum(pl, extra)
        # pad1d appends zeros first when the input is not longer than the padding.
        ext = jnp.where(lens <= max_pad, max_pad + 1, lens)
        j = jnp.arange(pl + t + extra_static, dtype=jnp.int32)[None, :] - pl  # [1, P] position in x
        idx = jnp.where(j < 0, -j, jnp.where(j < ext, j, 2 * ext - 2 - j))
        valid = (idx >= 0) & (idx < lens) & (j < lens + extra)
        idx = jnp.clip(idx, 0, t - 1)
        gathered = jnp.take_along_axis(x, idx[..., None], axis=1)
        return jnp.where(valid[..., None], gathered, jnp.zeros((), x.dtype))

    def __call__(self, x: Array, lengths: Optional[Array] = None) -> tuple[Array, Optional[Array]]:
        """``x [B, L, C_in]`` -> ``(y [B, ceil(L / stride), C_out], valid output lengths | None)``."""
        xp = self._pad(x, lengths)
        y = jax.lax.conv_general_dilated(
            xp, self.kernel[...].astype(x.dtype), window_strides=(self.stride,), padding=[(0, 0)],
            rhs_dilation=(self.dilation,), dimension_numbers=("NWC", "WIO", "NWC"),
            precision=_PRECISIONS[self.precision])
        y = y + self.bias[...].astype(x.dtype)
        return y, None if lengths is None else self.output_length(lengths)


class CausalConvTranspose1d(nnx.Module):
    """``encodec``'s causal ``SConvTranspose1d``: ``[B, L, C_in] -> [B, L * stride, C_out]``.

    A transposed conv with kernel ``2 * stride`` whose ``kernel - stride`` surplus samples are all
    trimmed on the right (``trim_right_ratio=1``), so output sample ``t`` reads inputs ``<= t / stride``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int,
                 precision: str = "highest", rngs: nnx.Rngs):
        self.stride = stride
        self.conv = ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                                    precision=precision, rngs=rngs)

    def __call__(self, x: Array, lengths: Optional[Array] = None) -> tuple[Array, Optional[Array]]:
        y = self.conv(x)[:, :x.shape[1] * self.stride]
        return y, None if lengths is None else lengths * self.stride


class ResnetBlock(nnx.Module):
    """SEANet residual block: ``conv1x1(x) + conv1x1(elu(conv_k(elu(x))))``; ``[B, L, C] -> [B, L, C]``."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, compress: int, *, precision: str = "highest",
                 rngs: nnx.Rngs):
        hidden = dim // compress
        self.conv1 = CausalConv1d(dim, hidden, kernel_size, dilation=dilation, precision=precision, rngs=rngs)
        self.conv2 = CausalConv1d(hidden, dim, 1, precision=precision, rngs=rngs)
        self.shortcut = CausalConv1d(dim, dim, 1, precision=precision, rngs=rngs)

    def __call__(self, x: Array, lengths: Optional[Array] = None) -> Array:
        y, _ = self.conv1(_elu(x), lengths)
        y, _ = self.conv2(_elu(y), lengths)
        s, _ = self.shortcut(x, lengths)
        return s + y


class LSTMLayer(nnx.Module):
    """One unidirectional LSTM layer (PyTorch gate order i, f, g, o), ``[B, T, H] -> [B, T, H]``.

    ``kernel_ih``/``kernel_hh`` are ``[H, 4H]`` (PyTorch ``weight_ih_l*``/``weight_hh_l*`` transposed)
    and ``bias`` is ``bias_ih + bias_hh``. Zero initial state.
    """

    def __init__(self, dim: int, *, precision: str = "highest", rngs: nnx.Rngs):
        self.precision = precision
        init = _uniform_init(dim)  # PyTorch: U(-1/sqrt(H), 1/sqrt(H)) for every LSTM tensor
        self.kernel_ih = nnx.Param(init(rngs.params(), (dim, 4 * dim)))
        self.kernel_hh = nnx.Param(init(rngs.params(), (dim, 4 * dim)))
        self.bias = nnx.Param(init(rngs.params(), (4 * dim,)))

    def host_init(self, rng: np.random.Generator) -> None:
        """Re-initialise on the host (see :func:`random_init`)."""
        h = self.kernel_ih.shape[0]
        for var in (self.kernel_ih, self.kernel_hh, self.bias):
            _host_uniform(var, rng, h)

    def __call__(self, x: Array) -> Array:
        prec = _PRECISIONS[self.precision]
        h_dim = self.kernel_hh.shape[0]
        gates_x = jnp.einsum("bth,hg->btg", x, self.kernel_ih[...].astype(x.dtype), precision=prec)
        gates_x = gates_x + self.bias[...].astype(x.dtype)
        w_hh = self.kernel_hh[...].astype(x.dtype)

        def step(carry: tuple[Array, Array], gx: Array) -> tuple[tuple[Array, Array], Array]:
            h, c = carry
            g = gx + jnp.dot(h, w_hh, precision=prec)
            i, f, gg, o = (g[:, k * h_dim:(k + 1) * h_dim] for k in range(4))
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((x.shape[0], h_dim), x.dtype)
        _, hs = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(gates_x, 0, 1))
        return jnp.swapaxes(hs, 0, 1)


class SLSTM(nnx.Module):
    """Stacked LSTM with a skip connection: ``x + lstm(x)``, ``[B, T, H] -> [B, T, H]``. Causal."""

    def __init__(self, dim: int, num_layers: int, *, precision: str = "highest", rngs: nnx.Rngs):
        self.layers = nnx.List([LSTMLayer(dim, precision=precision, rngs=rngs) for _ in range(num_layers)])

    def __call__(self, x: Array) -> Array:
        y = x
        for layer in self.layers:
            y = layer(y)
        return y + x


class Encoder(nnx.Module):
    """SEANet encoder: ``[B, S, 1] -> [B, ceil(S / hop), dimension]`` latents."""

    def __init__(self, cfg: EncodecConfig, *, precision: str = "highest", rngs: nnx.Rngs):
        kw = dict(precision=precision, rngs=rngs)
        mult = 1
        self.conv_in = CausalConv1d(1, cfg.n_filters, cfg.kernel_size, **kw)
        blocks, downs = [], []
        for ratio in reversed(cfg.ratios):
            dim = mult * cfg.n_filters
            blocks.append(nnx.List([ResnetBlock(dim, cfg.residual_kernel_size, cfg.dilation_base ** j, cfg.compress,
                                                **kw) for j in range(cfg.n_residual_layers)]))
            downs.append(CausalConv1d(dim, dim * 2, ratio * 2, stride=ratio, **kw))
            mult *= 2
        self.res_blocks = nnx.List(blocks)
        self.downsample = nnx.List(downs)
        dim = mult * cfg.n_filters
        self.lstm = SLSTM(dim, cfg.lstm_layers, **kw) if cfg.lstm_layers else None
        self.conv_out = CausalConv1d(dim, cfg.dimension, cfg.last_kernel_size, **kw)

    def __call__(self, x: Array, lengths: Optional[Array] = None) -> tuple[Array, Optional[Array]]:
        x, _ = self.conv_in(x, lengths)
        for res, down in zip(self.res_blocks, self.downsample):
            for block in res:
                x = block(x, lengths)
            x, lengths = down(_elu(x), lengths)
        if self.lstm is not None:
            x = self.lstm(x)
        return self.conv_out(_elu(x), lengths)


class Decoder(nnx.Module):
    """SEANet decoder: ``[B, F, dimension] -> [B, F * hop, 1]`` (no output activation)."""

    def __init__(self, cfg: EncodecConfig, *, precision: str = "highest", rngs: nnx.Rngs):
        kw = dict(precision=precision, rngs=rngs)
        mult = 2 ** len(cfg.ratios)
        self.conv_in = CausalConv1d(cfg.dimension, mult * cfg.n_filters, cfg.kernel_size, **kw)
        self.lstm = SLSTM(mult * cfg.n_filters, cfg.lstm_layers, **kw) if cfg.lstm_layers else None
        ups, blocks = [], []
        for ratio in cfg.ratios:
            dim = mult * cfg.n_filters
            ups.append(CausalConvTranspose1d(dim, dim // 2, ratio * 2, stride=ratio, **kw))
            blocks.append(nnx.List([ResnetBlock(dim // 2, cfg.residual_kernel_size, cfg.dilation_base ** j,
                                                cfg.compress, **kw) for j in range(cfg.n_residual_layers)]))
            mult //= 2
        self.upsample = nnx.List(ups)
        self.res_blocks = nnx.List(blocks)
        self.conv_out = CausalConv1d(cfg.n_filters, 1, cfg.last_kernel_size, **kw)

    def __call__(self, z: Array, lengths: Optional[Array] = None) -> tuple[Array, Optional[Array]]:
        x, _ = self.conv_in(z, lengths)
        if self.lstm is not None:
            x = self.lstm(x)
        for up, res in zip(self.upsample, self.res_blocks):
            x, lengths = up(_elu(x), lengths)
            for block in res:
                x = block(x, lengths)
        return self.conv_out(_elu(x), lengths)


class ResidualVectorQuantizer(nnx.Module):
    """Residual VQ with Euclidean codebooks ``codebook [N, K, D]`` (stacked; no projections).

    Stage ``q`` picks ``argmax_k -(|r|^2 - 2 r . e_k + |e_k|^2)`` (the nearest codeword, computed
    with the same formula as ``encodec`` so that near-ties resolve alike) and subtracts it from the
    residual ``r``.
    """

    def __init__(self, cfg: EncodecConfig, *, precision: str = "highest", rngs: nnx.Rngs):
        self.precision = precision
        self.codebook = nnx.Param(jax.random.normal(rngs.params(), (cfg.n_codebooks, cfg.codebook_size,
                                                                    cfg.dimension)))

    def host_init(self, rng: np.random.Generator) -> None:
        """Re-initialise on the host (see :func:`random_init`)."""
        self.codebook.set_value(jnp.asarray(rng.standard_normal(self.codebook.shape).astype(np.float32)))

    def encode(self, z: Array, n_q: int) -> Array:
        """``z [B, F, D]`` -> ``codes [B, n_q, F]`` int32."""
        if not 1 <= n_q <= self.codebook.shape[0]:
            raise ValueError(f"n_q={n_q} must lie in 1..{self.codebook.shape[0]}")
        prec = _PRECISIONS[self.precision]
        residual = z
        codes = []
        for q in range(n_q):
            book = self.codebook[q].astype(z.dtype)  # [K, D]
            dist = -(jnp.sum(jnp.square(residual), -1, keepdims=True)
                     - 2 * jnp.einsum("bfd,kd->bfk", residual, book, precision=prec)
                     + jnp.sum(jnp.square(book), -1)[None, None, :])
            idx = jnp.argmax(dist, axis=-1).astype(jnp.int32)
            residual = residual - jnp.take(book, idx, axis=0)
            codes.append(idx)
        return jnp.stack(codes, axis=1)

    def decode(self, codes: Array) -> Array:
        """``codes [B, n, F]`` (valid indices) -> ``z [B, F, D]``: the sum of the codewords."""
        out = jnp.zeros((), self.codebook.dtype)
        for q in range(codes.shape[1]):
            out = out + jnp.take(self.codebook[q], codes[:, q], axis=0)
        return out


# --------------------------------------------------------------------------- model


class EnCodec(nnx.Module):
    """EnCodec (mono, causal): waveform ``[B, S]`` <-> codes ``[B, n_q, ceil(S / hop)]``.

    Array-level API; :class:`EncodecCodec` adds validation, resampling and jit.
    """

    def __init__(self, cfg: EncodecConfig, *, precision: str = "highest", rngs: nnx.Rngs):
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
        """``wav [B, S]`` -> ``(z [B, ceil(S / hop), D], frame_lengths [B] | None)``.

        ``lengths`` are the valid samples per item; each item is encoded as if it were alone
        (whatever follows its end in ``wav`` is never read).
        """
        if wav.ndim != 2:
            raise ValueError(f"wav must be [B, S], got shape {wav.shape}")
        x = wav[..., None]
        if lengths is None:
            z, _ = self.encoder(x, None)
            return z, None
        lengths = jnp.asarray(lengths, jnp.int32)
        return self.encoder(x, lengths)

    def encode(self, wav: Array, lengths: Optional[Array] = None, *, n_q: Optional[int] = None
               ) -> tuple[Array, Array]:
        """``wav [B, S]`` -> ``(codes [B, n_q, ceil(S / hop)] int32, frame_lengths [B] int32)``.

        Frames past an item's ``frame_lengths`` hold :data:`PAD_CODE`.
        """
        n_q = self.config.num_quantizers if n_q is None else n_q
        z, frames = self.encode_latents(wav, lengths)
        codes = self.quantizer.encode(z, n_q)
        if frames is None:
            frames = jnp.full((wav.shape[0],), z.shape[1], jnp.int32)
        else:
            valid = jnp.arange(z.shape[1])[None, None, :] < frames[:, None, None]
            codes = jnp.where(valid, codes, PAD_CODE)
        return codes, frames.astype(jnp.int32)

    def decode(self, codes: Array, frame_lengths: Optional[Array] = None) -> Array:
        """``codes [B, n, F]`` -> ``wav [B, F * hop]`` float (the first ``n`` codebooks are used).

        Frames at or past ``frame_lengths`` are ignored (they may hold :data:`PAD_CODE`) and the
        samples past each item's ``frame_lengths * hop`` are zero.
        """
        if codes.ndim != 3:
            raise ValueError(f"codes must be [B, n_q, F], got shape {codes.shape}")
        codes = codes.astype(jnp.int32)
        f = codes.shape[2]
        lengths = None
        if frame_lengths is not None:
            lengths = jnp.asarray(frame_lengths, jnp.int32)
            valid = jnp.arange(f)[None, None, :] < lengths[:, None, None]
            codes = jnp.where(valid, codes, 0)
        z = self.quantizer.decode(codes)
        wav, out_lengths = self.decoder(z, lengths)
        wav = wav[..., 0]
        if out_lengths is not None:
            wav = wav * length_mask(out_lengths, wav.shape[1], wav.dtype)[..., 0]
        return wav

    def __call__(self, wav: Array, lengths: Optional[Array] = None, *, n_q: Optional[int] = None
                 ) -> tuple[Array, Array, Array]:
        """Round trip: ``wav [B, S]`` -> ``(codes, frame_lengths, reconstruction [B, F * hop])``."""
        codes, frames = self.encode(wav, lengths, n_q=n_q)
        return codes, frames, self.decode(codes, frames)


def random_init(cfg: EncodecConfig, seed: int = 0, *, precision: str = "highest") -> EnCodec:
    """An EnCodec with random weights drawn on the host with numpy (fast); tests and shape checks."""
    model = abstract_model(cfg, precision=precision)
    rng = np.random.default_rng(seed)
    for _, module in nnx.iter_modules(model):
        if isinstance(module, (CausalConv1d, LSTMLayer, ResidualVectorQuantizer, ConvTranspose1d)):
            module.host_init(rng)
    return model


@functools.lru_cache(maxsize=16)
def _abstract_parts(cfg: EncodecConfig, precision: str) -> tuple[Any, Any]:
    return nnx.split(nnx.eval_shape(lambda: EnCodec(cfg, precision=precision, rngs=nnx.Rngs(0))))


def abstract_model(cfg: EncodecConfig, *, precision: str = "highest") -> EnCodec:
    """A fresh model with ``jax.ShapeDtypeStruct`` leaves (no memory); to be filled by a loader."""
    graphdef, state = _abstract_parts(cfg, precision)
    return nnx.merge(graphdef, jax.tree_util.tree_map(lambda x: x, state))


weights.register(weights.FORMAT_ENCODEC, EncodecConfig, EnCodec, abstract_model)  # loaders find this codec by its format


# --------------------------------------------------------------------------- codec (numpy I/O)


class EncodecCodec(DACCodec):
    """EnCodec behind the :class:`~small_e_jax.codec.base.Codec` interface (numpy in, numpy out).

    Same behaviour as :class:`~small_e_jax.codec.dac_codec.DACCodec` (validation, soxr resampling,
    mono mixdown, length buckets, one jit-compiled call per batch, optional mesh sharding,
    ``encode_with_lengths``, ``decode(codes, frame_lengths)``). The bucket padding is never read
    (see the module docstring), so codes do not depend on batching. ``bandwidth`` (kbps: 1.5, 3,
    6, 12 or 24) is an alternative to ``n_q``.
    """

    def __init__(self, model: EnCodec, *, n_q: Optional[int] = None, bandwidth: Optional[float] = None,
                 **kwargs: Any):
        if not isinstance(model, EnCodec):
            raise ValueError(f"EncodecCodec needs an EnCodec model, got {type(model).__name__}")
        if bandwidth is not None:
            if n_q is not None:
                raise ValueError("pass n_q or bandwidth, not both")
            n_q = model.config.n_q_for_bandwidth(bandwidth)
        super().__init__(model, n_q=n_q, **kwargs)

    @classmethod
    def random_init(cls, cfg: Optional[EncodecConfig] = None, seed: int = 0, *, precision: str = "highest",
                    **kwargs: Any) -> "EncodecCodec":
        """A codec with random weights (tests, benchmarks); default config: :func:`encodec_24khz`."""
        return cls(random_init(cfg or encodec_24khz(), seed, precision=precision), **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str, *, n_q: Optional[int] = None, bandwidth: Optional[float] = None,
                        precision: str = "highest", **kwargs: Any) -> "EncodecCodec":
        """Load weights written by ``python -m small_e_jax.codec.convert`` (``n_q``/``bandwidth`` override)."""
        return cls(weights.load_encodec(directory, precision=precision), n_q=n_q, bandwidth=bandwidth, **kwargs)

    @property
    def bandwidth(self) -> float:
        """kbps of the codes (``n_q * 0.75`` for the 24 kHz model)."""
        return self.n_q * self.config.bandwidth_per_codebook
