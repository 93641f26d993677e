"""Codec discriminators: output structure, GAN / feature-matching loss properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from small_e_jax.codec.training import discriminators as disc

CFG = disc.DiscriminatorConfig(periods=(2, 3), period_channels=(4, 8), stft_windows=(128,), stft_channels=4,
                               stft_layers=2)


@pytest.fixture(scope="module")
def model():
    # Shapes from eval_shape, values from numpy: jax.random would compile once per kernel shape.
    graphdef, state = nnx.split(nnx.eval_shape(lambda: disc.Discriminators(CFG, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(0)
    state = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.normal(0.0, 0.3, x.shape).astype(np.float32)), state)
    return nnx.merge(graphdef, state)


def test_structure(model):
    wav = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 1001)).astype(np.float32))
    feats = model(wav)
    assert len(feats) == 3  # 2 periods + 1 STFT window
    for f in feats[:2]:
        assert len(f) == 3 and f[-1].shape[0] == 2 and f[-1].shape[-1] == 1
    assert feats[2][-1].shape[:2] == (2, 1001 // 32 + 1)


def test_losses(model):
    rng = np.random.default_rng(1)
    real = jnp.asarray(rng.uniform(-0.5, 0.5, (2, 800)).astype(np.float32))
    fake = jnp.asarray(rng.uniform(-0.5, 0.5, (2, 800)).astype(np.float32))
    graphdef, params = nnx.split(model)

    @jax.jit
    def all_losses(params, real, fake):
        d = nnx.merge(graphdef, params)
        fr, ff = d(real), d(fake)
        return (disc.feature_matching_loss(fr, fr), disc.feature_matching_loss(fr, ff),
                disc.discriminator_loss(fr, ff), disc.generator_loss(ff), disc.discriminator_loss(fr, ff, "hinge"),
                jax.grad(lambda f: disc.feature_matching_loss(fr, d(f)) + disc.generator_loss(d(f)))(fake))

    fm_same, fm, d_loss, g_loss, d_hinge, g_fake = all_losses(params, real, fake)
    assert float(fm_same) == 0.0 and float(fm) > 0
    assert float(d_loss) > 0 and float(g_loss) > 0 and float(d_hinge) > 0
    assert np.all(np.isfinite(np.asarray(g_fake))) and np.abs(np.asarray(g_fake)).max() > 0
    # Perfect discriminator outputs: LSGAN discriminator loss 0, generator loss 1 per discriminator.
    perfect_real = [[jnp.ones((1, 4, 1, 1))]] * 2
    perfect_fake = [[jnp.zeros((1, 4, 1, 1))]] * 2
    assert float(disc.discriminator_loss(perfect_real, perfect_fake)) == 0.0
    assert float(disc.generator_loss(perfect_fake)) == pytest.approx(2.0)
