"""The trainer's data sources: seeded synthetic batches, or a dataset built by ``data_pipeline.build``.

``--data`` of the training command line (``small_e_jax.cli.train``) picks one of
:func:`data_choices`; :func:`make_source` opens it. The evaluation command reads its checkpoints'
data through the same sources.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, Iterator

SYNTHETIC = "synthetic"  # seeded random batches (small_e_jax.synthetic_data), no dataset on disk


def data_choices() -> tuple[str, ...]:
    """What ``--data`` accepts: ``synthetic`` and every dataset of the builder registry
    (``data_pipeline.builders.BUILDERS``; importing it imports tensorflow_datasets, hence lazily)."""
    from data_pipeline.builders import BUILDERS

    return (SYNTHETIC, *sorted(BUILDERS))


class LoaderSource:
    """The trainer's data-source interface over ``data_pipeline.loader`` (grain)."""

    _evaluated = False  # set once eval_batches has run (its loader warnings given)

    def __init__(self, config: Any):
        import jax
        from data_pipeline import loader

        self.config, self.loader = config, loader
        # Codec, weights and codebooks from the built dataset where the config leaves them at defaults.
        for note in loader.resolve_codec(config.data, config.model):
            print(f"note: {note}", file=sys.stderr)
        config.validate()
        self.kw = dict(n_q=config.model.n_codebooks, codebook_size=config.model.codebook_size,
                       process_index=jax.process_index(), process_count=jax.process_count())
        # Fail now, with the data pipeline's message, if the dataset is not built.
        sizes = loader.split_sizes(config.data.dataset, data_dir=config.data.data_dir, codec=config.data.codec,
                                   n_q=config.model.n_codebooks)
        if "train" not in sizes:
            raise ValueError(f"{config.data.dataset} has no split 'train'; it has {sorted(sizes)}")
        self.sizes = {"train": sizes["train"], "validation": sizes.get("validation", 0)}  # 0: the banner says none

    def describe(self) -> str:
        """The dataset, its codec and split sizes (the trainer's start banner)."""
        d = self.config.data
        return (f"{d.dataset} ({d.codec}, {self.config.model.n_codebooks} codebooks) in {d.data_dir or 'the TFDS default'}: "
                + ", ".join(f"{split} {n} utterances" for split, n in self.sizes.items()))

    def train_iterator(self) -> Iterator[dict]:
        return iter(self.loader.make_loader(self.config.data, "train", **self.kw))

    def eval_batches(self, split: str = "validation") -> Iterable[dict]:
        """One pass over ``split`` ("validation" for the trainer; the evaluation CLI can ask
        for "train", e.g. to tell memorisation from generalisation)."""
        import logging

        loader_log = logging.getLogger("data_pipeline.loader")
        level = loader_log.level
        if self._evaluated:  # the loader's warnings (e.g. filler rows) were given at the first evaluation
            loader_log.setLevel(logging.ERROR)
        self._evaluated = True
        try:
            return iter(self.loader.make_loader(self.config.data, split, num_epochs=1, **self.kw))
        except Exception as err:  # noqa: BLE001 - a dataset without a validation split
            print(f"warning: no {split} batches ({type(err).__name__}: {err})", file=sys.stderr)
            return iter(())
        finally:
            loader_log.setLevel(level)


def make_source(data: str, config: Any) -> Any:
    if data == SYNTHETIC:
        from small_e_jax.synthetic_data import SyntheticSpec, synthetic_source
        return synthetic_source(config.model, SyntheticSpec(batch_size=8, text_len=32, frames=64,
                                                            seed=config.data.shuffle_seed))
    return LoaderSource(config)
