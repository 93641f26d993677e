"""Perplexity and attention maps from a checkpoint (tiny model, a few synthetic steps).

The two checkpoint tests are slow: training 4 steps, restoring and compiling the evaluation
take ~2-4 min on a loaded 2-core CPU (mostly XLA compilation); `pytest -m slow tests/eval`.
"""

import numpy as np
import pytest

from small_e_jax.config import load_config
from small_e_jax.synthetic_data import SyntheticSource, SyntheticSpec

OVERRIDES = ("trainer.steps=4", "trainer.log_every=2", "trainer.eval_batches=0", "trainer.progress_bar=false",
             "trainer.tensorboard=true", "optimizer.warmup_steps=1", "checkpoint.save_every_steps=4",
             "checkpoint.async_save=false", "model.text_layers=1", "mesh.data=1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from small_e_jax import train
    workdir = tmp_path_factory.mktemp("run")
    config = load_config("tiny", [f"trainer.workdir={workdir}", *OVERRIDES])
    source = SyntheticSource(config.model, SyntheticSpec(batch_size=2, text_len=8, frames=12, n_eval=6))
    result = train.run(config, source)
    return config, source, result, workdir


@pytest.mark.slow
def test_perplexity_from_checkpoint_matches_the_loss(trained):
    from small_e_jax.checkpoint import flatten_state
    from small_e_jax.eval.model_eval import load_checkpoint, perplexity
    config, source, result, workdir = trained
    loaded = load_checkpoint(workdir / "checkpoints")
    assert loaded.step == 4 and loaded.config.model == config.model
    for a, b in zip(flatten_state(loaded.state.params).values(), flatten_state(result.state.params).values()):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    out = perplexity(loaded.trainer, loaded.state, source.eval_batches(), progress=False)
    assert out["batches"] == 3 and len(out["loss_per_codebook"]) == config.model.n_codebooks
    # Reference path 1: the trainer's own validation loss on the same batches.
    val = loaded.trainer.evaluate(loaded.state, source.eval_batches(), 100)
    assert out["loss"] == pytest.approx(val, rel=1e-6) and out["perplexity"] == pytest.approx(np.exp(val), rel=1e-6)
    # Reference path 2: model.loss batch by batch, pooled by target counts per codebook.
    model = loaded.trainer.model(loaded.state)
    nll = np.zeros(config.model.n_codebooks)
    count = np.zeros(config.model.n_codebooks)
    for b in source.eval_batches():
        _, m = model.loss(b["text"], b["text_mask"], b["audio"], b["audio_mask"])
        nll += np.asarray(m["loss_per_codebook"]) * np.asarray(m["targets_per_codebook"])
        count += np.asarray(m["targets_per_codebook"])
    np.testing.assert_allclose(out["loss_per_codebook"], nll / count, rtol=1e-5)
    np.testing.assert_allclose(out["perplexity_per_codebook"], np.exp(nll / count), rtol=1e-5)
    assert out["targets_per_codebook"] == count.tolist()


@pytest.mark.slow
def test_attention_maps_are_cropped_distributions(trained):
    from small_e_jax.eval.attention_alignment import alignment_events, alignment_path
    from small_e_jax.eval.model_eval import load_checkpoint, attention_maps
    _, source, _, workdir = trained
    loaded = load_checkpoint(workdir / "checkpoints")
    batch = next(iter(source.eval_batches()))
    maps = attention_maps(loaded.trainer, loaded.state, batch)
    assert len(maps) == 2
    for i, att in enumerate(maps):
        assert att.shape == (2, int(batch["audio_mask"][i, :-1].sum()), int(batch["text_mask"][i].sum()))
        np.testing.assert_allclose(att.sum(axis=-1), 1.0, atol=1e-4)  # softmax rows over real tokens
        alignment_events(alignment_path(att), att.shape[-1])  # a valid path


def test_load_checkpoint_errors(tmp_path):
    from small_e_jax.eval.model_eval import load_checkpoint
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint steps"):
        load_checkpoint(tmp_path / "empty")
