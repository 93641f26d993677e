"""The exported (serialized StableHLO) decode step reloads and gives the model's outputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from small_e_jax import export
from small_e_jax.decoding import prefill


def test_exported_decode_step_round_trip(tiny, tmp_path):
    model, _ = tiny
    B, J = 2, 8
    path = export.save(export.export_decode_step(model, B, J), tmp_path / "step.jaxexport")
    step = export.load(path, model, B, J)

    rng = np.random.default_rng(0)
    text = jnp.asarray(rng.integers(3, 256, (B, J)), jnp.int32)
    mask = jnp.ones((B, J), bool).at[1, 5:].set(False)
    graphdef, params = nnx.split(model)

    @jax.jit
    def reference(params, state, codes):
        return nnx.merge(graphdef, params).decode_step(state, codes)

    state = jax.jit(lambda p: prefill(nnx.merge(graphdef, p), text, mask, False))(params)
    ref_state = state
    for t in range(3):  # a few chained steps
        codes = jnp.asarray(rng.integers(3, 1027, (B, 4)), jnp.int32)
        logits, state = step(params, state, codes)
        ref_logits, ref_state = reference(params, ref_state, codes)
        np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), rtol=1e-5, atol=1e-5)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(ref_state)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    assert int(state.step) == 3
    with pytest.raises(ValueError, match="does not exist"):
        export.load(tmp_path / "missing", model, B, J)
