"""Initial-state tuning: tuned states lower the loss on held-out clips of the same 'speaker',
and they round-trip through the saved file and plug into generation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from small_e_jax import ist
from small_e_jax.sampling import GREEDY


def speaker_clips(n, rng, vocab, text_vocab):
    """A 'speaker': codes drawn from a small speaker-specific subset of each codebook."""
    palette = np.array([[11, 12, 13], [21, 22, 23], [31, 32, 33], [41, 42, 43]])
    clips = []
    for _ in range(n):
        T = int(rng.integers(6, 10))
        codes = palette[None, :, :].repeat(T, 0)[np.arange(T)[:, None], np.arange(4)[None], rng.integers(0, 3, (T, 4))]
        text = np.concatenate([[1], rng.integers(3, text_vocab, int(rng.integers(3, 8))), [2]])
        clips.append((text, codes))
    return clips


@pytest.mark.slow  # ~70 s on a loaded 2-core CPU (compiling the gradient through the model)
def test_ist_lowers_held_out_loss(tiny, synth, tmp_path):
    model, config = tiny
    rng = np.random.default_rng(0)
    clips = speaker_clips(12, rng, config.model.codebook_size, config.model.text_vocab_size)
    batches = [ist.make_batch(clips[i:i + 4], 10) for i in (0, 4)]
    held_out = ist.make_batch(clips[8:12], 10)
    factors, losses = ist.tune(model, batches, steps=30, learning_rate=0.1, progress=False)
    assert losses[-1] < losses[0]

    graphdef, params = nnx.split(model)

    @jax.jit
    def held_out_loss(f):
        return ist.loss_with_factors(nnx.merge(graphdef, params), f, held_out)

    zero = jax.tree.map(jnp.zeros_like, factors)  # S_0 = 0: the default state
    tuned_loss, default_loss = float(held_out_loss(factors)), float(held_out_loss(zero))
    assert tuned_loss < default_loss - 0.1, (tuned_loss, default_loss)

    states = ist.load_initial_states(ist.save_factors(tmp_path / "voice.npz", factors), model)
    codes = synth.generate(["Hello there."], sampling=GREEDY, max_frames=8, initial_states=states)[0]
    assert codes.shape[1] == 4 and len(codes) >= 1


def test_ist_file_round_trip(tiny, tmp_path):
    model, config = tiny
    rng = np.random.default_rng(0)  # numpy factors: init_factors is exercised by the slow test
    factors = [{"k": jnp.asarray(rng.normal(size=(H, 2, K)), jnp.float32),
                "v": jnp.asarray(rng.normal(size=(H, 2, V)), jnp.float32)}
               for _, H, K, V in (b.init_state(1).shape for b in model.blocks)]
    path = ist.save_factors(tmp_path / "voice.npz", factors)
    states = ist.load_initial_states(path, model)
    assert len(states) == config.model.encoder_layers + config.model.decoder_layers
    for a, b, block in zip(states, ist.states_from_factors(factors), model.blocks):
        assert a.shape == block.init_state(1).shape and float(jnp.abs(a).max()) > 0
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    with pytest.raises(ValueError, match="does not exist"):
        ist.load_factors(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", layer0_k=np.zeros((2, 1, 3)), layer0_v=np.zeros((2, 1, 3)))
    with pytest.raises(ValueError, match="do not fit"):
        ist.load_initial_states(tmp_path / "other.npz", model)
