"""Teacher-forced forward: causality over the delayed audio, text masks, numerics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from small_e_jax.delay import delay


@pytest.mark.parametrize("block", ["gla", "simple_gla", "transformer"])
def test_changing_a_code_changes_no_earlier_logits(kit, block):
    """Frame f of codebook k sits at delayed column f + k + 1: logits before it are untouched,
    the logits at it (which predict the next column) change."""
    model = kit.model(f"model.block={block}", "model.cross_attention=paca")
    cfg = model.config
    b = kit.batch(cfg)
    base, _ = kit.forward(model, b["text"], b["text_mask"], b["audio"], b["audio_mask"])
    frame = 2
    for k in range(cfg.n_codebooks):
        codes = b["codes"].copy()
        codes[:, frame, k] = (codes[:, frame, k] + 1 + 97 * k) % cfg.codebook_size
        audio, _ = delay(codes, np.array([6, 4]), codebook_size=cfg.codebook_size)
        column = frame + k + 1
        changed_columns = np.flatnonzero((np.asarray(audio) != np.asarray(b["audio"])).any(axis=(0, 2)))
        assert changed_columns.tolist() == [column]
        logits, _ = kit.forward(model, b["text"], b["text_mask"], jnp.asarray(audio), b["audio_mask"])
        np.testing.assert_allclose(logits[:, :column], base[:, :column], atol=1e-6, rtol=0)
        assert float(jnp.abs(logits[:, column] - base[:, column]).max()) > 1e-4


@pytest.mark.parametrize("cross", ["paca", "plain"])
def test_padded_text_is_masked(kit, cross):
    """Changing text tokens under the padding mask changes nothing (SPEC §9.4)."""
    model = kit.model(f"model.cross_attention={cross}")
    b = kit.batch(model.config)
    other_text = b["text"].at[1, 5:].set(jnp.array([17, 99]))
    base, _ = kit.forward(model, b["text"], b["text_mask"], b["audio"], b["audio_mask"])
    logits, _ = kit.forward(model, other_text, b["text_mask"], b["audio"], b["audio_mask"])
    np.testing.assert_allclose(logits, base, atol=1e-6, rtol=0)
    # ... while a real token does matter.
    real_change, _ = kit.forward(model, b["text"].at[1, 0].set(42), b["text_mask"], b["audio"], b["audio_mask"])
    assert float(jnp.abs(real_change[1] - base[1]).max()) > 1e-4
    np.testing.assert_allclose(real_change[0], base[0], atol=1e-6, rtol=0)  # items are independent


def test_compat_unmasked_text_attends_to_padding(kit):
    """The authors' no-op masks (compat flag): padded text tokens leak into the output."""
    model = kit.model("model.compat_unmasked_text=true")
    b = kit.batch(model.config)
    base, attention = kit.forward(model, b["text"], b["text_mask"], b["audio"], b["audio_mask"])
    other, _ = kit.forward(model, b["text"].at[1, 5:].set(jnp.array([17, 99])), b["text_mask"],
                           b["audio"], b["audio_mask"])
    assert float(jnp.abs(other[1] - base[1]).max()) > 1e-4
    assert float(attention[1, ..., 5:].max()) > 1e-4  # padded keys get attention weight


def test_bfloat16_compute_keeps_fp32_params_and_states(kit):
    model = kit.model("model.dtype=bfloat16")
    reference = kit.model()  # same seed, fp32 compute: the same parameters
    b = kit.batch(model.config)
    params = nnx.state(model, nnx.Param)
    assert {v.dtype for v in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    np.testing.assert_array_equal(model.head[...], reference.head[...])
    logits, _ = kit.forward(model, b["text"], b["text_mask"], b["audio"], b["audio_mask"])
    expected, _ = kit.forward(reference, b["text"], b["text_mask"], b["audio"], b["audio_mask"])
    assert logits.dtype == jnp.float32 and np.isfinite(np.asarray(logits)).all()
    kit.assert_close(logits, expected, 0.1)  # bf16 matmuls: ~2-3 significant digits
    state = nnx.eval_shape(lambda m: m.init_decode_state(b["text"], b["text_mask"]), model)
    assert all(s.dtype == jnp.float32 for s in state.blocks) and state.cross.dtype == jnp.float32
