"""The quantiser's training pass: same codes as inference, straight-through gradients, VQ losses, dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from small_e_jax.codec.dac import random_init
from small_e_jax.codec.dac_config import DACConfig
from small_e_jax.codec.quantizer import ResidualVectorQuantizer, quantizer_dropout_counts, restart_dead_codes

CFG = DACConfig(sample_rate=8000, encoder_dim=2, encoder_rates=(2, 4), decoder_dim=8, decoder_rates=(4, 2),
                n_codebooks=3, codebook_size=16, codebook_dim=4)


@pytest.fixture(scope="module")
def rvq():
    rvq = random_init(CFG, 0).quantizer  # host-side init: no per-shape jax.random compiles
    assert isinstance(rvq, ResidualVectorQuantizer)
    return rvq


@pytest.fixture(scope="module")
def z():
    return jnp.asarray(np.random.default_rng(1).standard_normal((2, 5, CFG.latent)).astype(np.float32))


def test_train_forward_matches_inference(rvq, z):
    codes, z_q = rvq(z, CFG.n_codebooks)
    z_q_t, codes_t, commit, book, z_e = rvq.train_forward(z)
    assert z_e.shape == (CFG.n_codebooks, 2, 5, CFG.codebook_dim)
    np.testing.assert_array_equal(np.asarray(codes_t), np.asarray(codes))
    np.testing.assert_allclose(np.asarray(z_q_t), np.asarray(z_q), rtol=1e-5, atol=1e-5)
    # Forward values of both losses are the same MSE between projection and codeword.
    assert float(commit) == pytest.approx(float(book)) and float(commit) > 0


def test_straight_through_and_stopped_gradients(rvq, z):
    graphdef, params = nnx.split(rvq)

    def part(params, z, which):
        out = nnx.merge(graphdef, params).train_forward(z)
        return {"zq": jnp.sum(out[0] ** 2), "commit": out[2], "book": out[3]}[which]

    grads = jax.jit(lambda p, z: (jax.grad(part, argnums=1)(p, z, "zq"), jax.grad(part)(p, z, "commit"),
                                  jax.grad(part)(p, z, "book")))
    g_z, g_commit, g_book = grads(params, z)
    assert np.abs(np.asarray(g_z)).max() > 0  # gradient passes the argmax to the encoder side
    # Commitment moves the projection, never the codebook; the codebook loss the reverse.
    assert np.abs(np.asarray(g_commit["codebook"][...])).max() == 0
    assert np.abs(np.asarray(g_commit["in_kernel"][...])).max() > 0
    assert np.abs(np.asarray(g_book["in_kernel"][...])).max() == 0
    assert np.abs(np.asarray(g_book["codebook"][...])).max() > 0


def test_quantizer_dropout_masks_stages(rvq, z):
    graphdef, params = nnx.split(rvq)
    fwd = jax.jit(lambda p, z, n: nnx.merge(graphdef, p).train_forward(z, n))
    full = fwd(params, z, jnp.array([3, 3]))
    one = fwd(params, z, jnp.array([1, 1]))
    _, z_q_1 = rvq(z, 1)
    np.testing.assert_allclose(np.asarray(one[0]), np.asarray(z_q_1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(one[1]), np.asarray(full[1]))  # codes unaffected
    assert float(one[2]) < float(full[2])
    # Item-wise: item 0 keeps everything, item 1 only the first stage.
    mixed = fwd(params, z, jnp.array([3, 1]))
    np.testing.assert_allclose(np.asarray(mixed[0][0]), np.asarray(full[0][0]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(mixed[0][1]), np.asarray(z_q_1[1]), rtol=1e-5, atol=1e-5)


def test_quantizer_dropout_counts():
    key = jax.random.key(0)
    assert np.all(np.asarray(quantizer_dropout_counts(key, 8, 4, 0.0)) == 4)
    c = np.asarray(quantizer_dropout_counts(key, 64, 4, 0.5))
    assert np.all(c[32:] == 4) and c[:32].min() >= 1 and c[:32].max() <= 4 and len(set(c[:32])) > 1
    with pytest.raises(ValueError, match="dropout"):
        quantizer_dropout_counts(key, 8, 4, 1.5)


def test_model_train_forward_codes_match_encode():
    graphdef, params = nnx.split(random_init(CFG, 0))
    wav = jnp.asarray(np.random.default_rng(2).uniform(-0.5, 0.5, (2, 8 * CFG.hop_length)).astype(np.float32))
    out, (codes, _) = jax.jit(lambda p, w: (nnx.merge(graphdef, p).train_forward(w),
                                             nnx.merge(graphdef, p).encode(w)))(params, wav)
    np.testing.assert_array_equal(np.asarray(out["codes"]), np.asarray(codes))
    assert out["recon"].shape == wav.shape


def test_restart_dead_codes():
    rng = np.random.default_rng(3)
    book = jnp.asarray(rng.standard_normal((2, 8, 4)).astype(np.float32))
    codes = jnp.zeros((2, 2, 5), jnp.int32).at[:, :, 1:].set(3)  # only codes 0 and 3 are used
    z_e = jnp.asarray(rng.standard_normal((2, 2, 5, 4)).astype(np.float32))
    mean_hits = 2 * 5 / 8
    usage = jnp.full((2, 8), mean_hits).at[:, 5].set(0.0)  # code 5 has been unused for long
    new_book, new_usage, dead = restart_dead_codes(book, usage, codes, z_e, jax.random.key(0))
    nb, b = np.asarray(new_book), np.asarray(book)
    np.testing.assert_array_equal(np.delete(nb, 5, axis=1), np.delete(b, 5, axis=1))  # live codes kept
    pool = np.asarray(z_e).reshape(2, -1, 4)
    for q in range(2):  # the dead one became one of this batch's projections
        assert np.any(np.all(np.isclose(pool[q], nb[q, 5]), axis=-1))
    assert float(dead) == pytest.approx(1 / 8)
    assert np.asarray(new_usage)[0, 5] == pytest.approx(mean_hits)
    assert np.asarray(new_usage)[0, 3] > mean_hits  # hit 8 times this step
