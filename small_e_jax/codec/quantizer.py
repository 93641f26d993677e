"""DAC's residual vector quantiser and the helpers that train it.

:class:`ResidualVectorQuantizer` quantises with *factorised* codes (each codebook looks up in a
low-dimensional projection of the residual) and *L2-normalised* nearest-neighbour search
(cosine similarity), as DAC (Kumar et al. 2023, arXiv 2306.06546) does; it encodes, decodes
from codes and has a straight-through training pass with DAC's commitment and codebook losses.
Training helpers: :func:`restart_dead_codes` (re-seeds codewords that went unused) and
:func:`quantizer_dropout_counts` (DAC's quantizer dropout). Channels-last (``[B, F, D]``) like
the rest of the codec; :class:`~small_e_jax.codec.dac.DAC` puts it between encoder and decoder.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from small_e_jax.codec.dac_config import DACConfig
from small_e_jax.codec.layers import _PRECISIONS, _host_uniform, _uniform_init

Array = jax.Array


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
        """Re-initialise on the host (see :func:`~small_e_jax.codec.dac.random_init`)."""
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
