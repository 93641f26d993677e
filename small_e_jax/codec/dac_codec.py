"""The DAC codec behind the :class:`~small_e_jax.codec.base.Codec` interface (numpy in, numpy out).

:class:`DACCodec` wraps a :class:`~small_e_jax.codec.dac.DAC`: it validates, mixes down and
resamples (soxr) the audio, pads items to whole frames and the batch to a length bucket, runs one
jit-compiled call per batch (optionally with the batch sharded over a mesh) and hands back numpy
arrays. How padding and batching keep an item's codes independent of its batch is explained in
:mod:`small_e_jax.codec.dac`.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from small_e_jax.codec import weights
from small_e_jax.codec.base import bucket_frames_up, prepare_audio
from small_e_jax.codec.dac import DAC, random_init
from small_e_jax.codec.dac_config import DACConfig

Array = jax.Array


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
