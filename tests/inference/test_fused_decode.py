"""Decoding through the fused GLA block kernels (model.decode_kernels=pallas; Pallas interpret
mode on the CPU) gives the codes of the XLA decode step (the default)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from small_e_jax.config import ConfigError
from small_e_jax.inference import GPU_MIN_ROWS, Synthesizer
from small_e_jax.model.small_e import AUTO_PALLAS_MAX_ROWS
from small_e_jax.sampling import GREEDY, SamplingConfig

from .conftest import FakeCodec, random_model, tiny_config

TEXTS = ["Hello there.", "A much longer second sentence, with a comma."]


def synthesizer(kernels: str) -> Synthesizer:
    config = tiny_config(f"model.decode_kernels={kernels}")
    return Synthesizer(random_model(config), config,
                       codec=FakeCodec(config.model.n_codebooks, config.model.codebook_size))


@pytest.fixture(scope="module")
def pair() -> tuple[Synthesizer, Synthesizer]:
    return synthesizer("xla"), synthesizer("pallas")


def test_fused_kernels_generate_the_xla_codes(pair):
    xla, fused = pair
    assert fused.model.fused_decode_weights() is not None and xla.model.fused_decode_weights() is None
    expected = xla.generate(TEXTS, sampling=GREEDY, max_frames=24)
    got = fused.generate(TEXTS, sampling=GREEDY, max_frames=24)
    for a, b in zip(expected, got):
        assert len(a) > 4  # a real run, not an immediate stop
        np.testing.assert_array_equal(b, a)


@pytest.mark.slow  # two more loop compilations (~20 s on a loaded CPU)
def test_fused_kernels_with_guidance_and_streaming(pair):
    xla, fused = pair
    guided = SamplingConfig(greedy=True, cfg_scale=2.0)
    for a, b in zip(xla.generate(TEXTS, sampling=guided, max_frames=16),
                    fused.generate(TEXTS, sampling=guided, max_frames=16)):
        np.testing.assert_array_equal(b, a)
    chunks = list(fused.stream(TEXTS[1], sampling=GREEDY, max_frames=16, chunk_frames=5, context_frames=3))
    expected = xla.generate([TEXTS[1]], sampling=GREEDY, max_frames=16)[0]
    np.testing.assert_array_equal(np.concatenate([c.codes for c in chunks]), expected)


@pytest.mark.slow  # one more loop compilation
def test_persistent_block_kernels_generate_the_xla_codes(pair):
    """model.decode_kernel_options=persistent: one kernel per block (staged on the CPU)."""
    xla, _ = pair
    config = tiny_config("model.decode_kernels=pallas", "model.decode_kernel_options=persistent")
    persistent = Synthesizer(random_model(config), config,
                             codec=FakeCodec(config.model.n_codebooks, config.model.codebook_size))
    for a, b in zip(xla.generate(TEXTS, sampling=GREEDY, max_frames=24),
                    persistent.generate(TEXTS, sampling=GREEDY, max_frames=24)):
        np.testing.assert_array_equal(b, a)


def test_auto_picks_the_fused_kernels_for_few_rows_on_a_gpu(monkeypatch):
    model = random_model(tiny_config())
    assert model.config.decode_kernels == "auto"
    assert model.fused_decode_weights(1) is None  # a CPU backend: XLA
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    for rows, fused in [(1, True), (4, True), (AUTO_PALLAS_MAX_ROWS, True),
                        (AUTO_PALLAS_MAX_ROWS + 1, False), (None, False)]:
        assert model.uses_fused_decode(rows) is fused, rows
    assert model.fused_decode_weights(1) is not None
    assert model.fused_decode_weights(AUTO_PALLAS_MAX_ROWS + 1) is None
    assert not random_model(tiny_config("model.decode_kernels=xla")).uses_fused_decode(1)
    train_mode = random_model(tiny_config("model.block_dropout=0.1"))
    train_mode.train()  # active dropout: auto keeps XLA (the fused kernels have none)
    assert not train_mode.uses_fused_decode(1)
    train_mode.eval()
    assert train_mode.uses_fused_decode(1)
    # Synthesizer: one text is decoded as one row where the fused kernels would run.
    config = tiny_config()
    synth = Synthesizer(random_model(config), config, codec=FakeCodec(config.model.n_codebooks, config.model.codebook_size))
    assert synth.min_rows == 1
    config = tiny_config("model.decode_kernels=xla")
    synth = Synthesizer(random_model(config), config, codec=FakeCodec(config.model.n_codebooks, config.model.codebook_size))
    assert synth.min_rows == GPU_MIN_ROWS


def test_pallas_packs_every_gla_block():
    model = random_model(tiny_config("model.decode_kernels=pallas"))
    weights = model.fused_decode_weights()
    assert len(weights["blocks"]) == len(model.blocks) and all(w is not None for w in weights["blocks"])
    assert weights["pos_net"] is not None
    assert weights["blocks"][0]["w_qkvg"].shape == (model.blocks[0].fused_dims().proj_dim, model.config.d_model)


def test_transformer_blocks_keep_xla_and_bad_choice_is_refused():
    model = random_model(tiny_config("model.block=transformer", "model.decode_kernels=pallas"))
    weights = model.fused_decode_weights()
    assert weights is not None and weights["blocks"] == [None] * len(model.blocks)  # only PACA's PosNet
    with pytest.raises(ConfigError, match="decode_kernels"):
        tiny_config("model.decode_kernels=triton")


def test_wide_tile_kernels_generate_the_xla_codes(pair):
    """model.decode_kernel_options=wide_tiles: 16 rows and tensor-core dots (the default carries
    2 texts as 2 rows)."""
    xla, fused = pair
    assert fused.model._fused_small_rows()
    config = tiny_config("model.decode_kernels=pallas", "model.decode_kernel_options=wide_tiles")
    wide = Synthesizer(random_model(config), config,
                       codec=FakeCodec(config.model.n_codebooks, config.model.codebook_size))
    assert not wide.model._fused_small_rows()
    for a, b in zip(xla.generate(TEXTS, sampling=GREEDY, max_frames=24),
                    wide.generate(TEXTS, sampling=GREEDY, max_frames=24)):
        assert len(a) > 4
        np.testing.assert_array_equal(b, a)
