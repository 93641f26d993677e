"""Checkpoint-side evaluation: load a trained model, per-codebook perplexity on validation
batches, and teacher-forced cross-attention maps.

Batches are the trainer's (``text [B, J]``, ``text_mask [B, J]``, ``audio [B, L, Q]`` delayed,
``audio_mask [B, L]``); the loss is exactly :meth:`SmallE.loss` (same masking as training), so
the overall perplexity equals ``exp`` of the trainer's validation loss on the same batches.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import jax
import numpy as np
from flax import nnx
from tqdm import tqdm

from small_e_jax.checkpoint import CheckpointError, CheckpointReader
from small_e_jax.checkpoint.layout import one_line
from small_e_jax.config import Config, config_to_dict
from small_e_jax.train import TrainState, Trainer

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedModel:
    config: Config
    trainer: Trainer
    state: TrainState
    step: int


def load_checkpoint(directory: str | Path, step: Optional[int] = None) -> LoadedModel:
    """The model of a training checkpoint: a run's workdir, its ``checkpoints`` folder or one
    step's folder (that step, unless ``step`` says otherwise).

    The config comes from the checkpoint's metadata; the mesh is reset to all local devices on
    the data axis (the one the run used may not exist here). ``step`` = None: the newest step
    that reads back (a partial or corrupt newer one is skipped with a warning naming it); all
    unreadable: :class:`CheckpointError`. Only the train state is read, not the data-iterator
    position (:class:`CheckpointReader`).
    """
    if "://" in str(directory):
        reader = CheckpointReader(directory)
    else:
        try:
            reader = CheckpointReader.open(directory)
        except CheckpointError as err:  # this function's callers expect FileNotFoundError
            if Path(directory).is_dir():
                raise FileNotFoundError(f"no checkpoint steps in {directory}: pass a run's workdir, its "
                                        "checkpoints folder or one step's folder") from None
            raise FileNotFoundError(str(err)) from None
        step = reader.default_step if step is None else step
    with reader:
        steps = reader.all_steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint steps in {reader.directory}")
        if step is not None and step not in steps:
            raise FileNotFoundError(f"step {step} not in {reader.directory} (it has {steps})")
        # No step named: the newest that reads back, as synthesis does (restore_params); a step
        # named is read or fails as it is.
        failures = []
        for candidate in ([step] if step is not None else sorted(steps, reverse=True)):
            try:
                config = reader.read_config(candidate, reset_mesh=True)
                trainer = Trainer(config)
                state = reader.restore_state(candidate, trainer.init_state())  # structure, dtypes, shardings
            except Exception as err:  # noqa: BLE001 - any read error means "unusable step"
                if step is not None:
                    raise
                failures.append(f"step {candidate}: {one_line(err, 200)}")
                continue
            step = candidate
            break
        else:
            raise CheckpointError(f"no readable checkpoint in {reader.directory}: " + "; ".join(failures))
        if failures:
            log.warning("evaluating step %d of %s; skipped the newer unreadable %s", step, reader.directory,
                        "; ".join(failures))
    return LoadedModel(config, trainer, state, int(step))


def _sums_fn(trainer: Trainer):
    graphdef = trainer.eval_graphdef

    def sums(params, rngs, batch):
        model = nnx.merge(graphdef, params, rngs)
        _, m = model.loss(batch["text"], batch["text_mask"], batch["audio"], batch["audio_mask"])
        n = m["targets_per_codebook"]
        return m["loss_per_codebook"] * n, m["accuracy_per_codebook"] * n, n

    return jax.jit(sums, out_shardings=trainer.replicated)


def perplexity(trainer: Trainer, state: TrainState, batches: Iterable[Mapping[str, Any]], *,
               max_batches: Optional[int] = None, progress: bool = True) -> dict[str, Any]:
    """Per-codebook and overall perplexity over ``batches`` (dropout off).

    Returns ``loss`` (mean NLL per valid target, nats), ``perplexity`` = exp(loss),
    ``loss_per_codebook`` [Q], ``perplexity_per_codebook`` [Q], ``accuracy_per_codebook`` [Q]
    (top-1), ``targets_per_codebook`` [Q] and ``batches``. Overall = pooled over all targets
    (codebooks weighted by their target counts, equal in practice), as the training loss.
    """
    fn = _sums_fn(trainer)
    q = trainer.config.model.n_codebooks
    nll, correct, count = np.zeros(q), np.zeros(q), np.zeros(q)
    seen = 0
    for batch in tqdm(batches, desc="perplexity", unit="batch", disable=not progress, total=max_batches):
        if max_batches is not None and seen >= max_batches:
            break
        s, c, n = jax.device_get(fn(state.params, state.rngs, trainer.shard_batch(batch)))
        nll, correct, count, seen = nll + s, correct + c, count + n, seen + 1
    if count.sum() == 0:
        raise ValueError("no validation targets: the batches were empty or fully masked")
    per = nll / np.maximum(count, 1)
    loss = float(nll.sum() / count.sum())
    return {"loss": loss, "perplexity": float(np.exp(loss)), "loss_per_codebook": per.tolist(),
            "perplexity_per_codebook": np.exp(per).tolist(),
            "accuracy_per_codebook": (correct / np.maximum(count, 1)).tolist(),
            "targets_per_codebook": count.tolist(), "batches": seen}


def _attention_fn(trainer: Trainer):
    graphdef = trainer.eval_graphdef

    def attention(params, rngs, text, text_mask, audio):
        model = nnx.merge(graphdef, params, rngs)
        return model(text, text_mask, audio, return_attention=True)[1]["attention"]

    return jax.jit(attention, out_shardings=trainer.replicated)


def attention_maps(trainer: Trainer, state: TrainState, batch: Mapping[str, Any],
                   fn: Optional[Any] = None) -> list[np.ndarray]:
    """Teacher-forced cross-attention of every real row of ``batch``: one ``[A, L_i, J_i]`` map
    per utterance (A = 2 for PACA's [A1, A2], H heads for plain), cropped to its real audio
    columns and text tokens. Inputs are columns 0…L-2 as in the loss. ``fn``: a compiled
    function from :func:`_attention_fn` to reuse across batches (default: compiled here)."""
    fn = fn or _attention_fn(trainer)
    sharded = trainer.shard_batch(batch)
    att = fn(state.params, state.rngs, sharded["text"], sharded["text_mask"], sharded["audio"][:, :-1])
    att = np.asarray(jax.device_get(att), np.float32)
    audio_mask, text_mask = np.asarray(batch["audio_mask"]), np.asarray(batch["text_mask"])
    maps = []
    for i in range(att.shape[0]):
        frames, tokens = int(audio_mask[i, :-1].sum()), int(text_mask[i].sum())
        if frames and tokens:
            maps.append(att[i, :, :frames, :tokens])
    return maps


def config_summary(config: Config) -> dict[str, Any]:
    """The model fields a report shows beside its numbers."""
    m = config_to_dict(config)["model"]
    keys = ("block", "cross_attention", "d_model", "encoder_layers", "decoder_layers", "n_codebooks",
            "codebook_size")
    return {k: m.get(k) for k in keys}
