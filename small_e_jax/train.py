"""Training: train state, a jit-compiled step on a device mesh, validation, and the loop
(logging, checkpoints, SIGTERM, NaN guard).

    result = run(config, source)        # resumes from <checkpoint dir> if it holds a checkpoint

``source`` is any object with ``train_iterator()`` -> an infinite iterator of local batches
whose position can be saved (a grain ``DatasetIterator``: ``get_state``/``set_state``) and
``eval_batches()`` -> a finite iterable of local batches (may be empty). A local batch is this
process's rows of the global batch::

    text [b, J] int32, text_mask [b, J] bool, audio [b, L, Q] int32 (delayed), audio_mask [b, L] bool

and the global batch is ``b * process_count`` rows (``jax.make_array_from_process_local_data``),
split over the mesh's batch axes. Multi-host: call
``sharding.initialize_distributed(config.trainer.distributed)`` before anything else touches
JAX (the experiment entry points do).

One step (:func:`make_train_step`): the global batch is cut into ``optimizer.grad_accumulation``
micro-batches (rows ``a::A``, so each stays spread over the data shards), summed gradients of
``loss x n_targets`` are divided by the total target count (= exactly the full-batch mean loss),
then clip + AdamW. A step whose loss or gradient norm is not finite leaves parameters and
optimizer state unchanged (the step counter and dropout RNG still advance) and is reported;
``trainer.max_consecutive_bad_steps`` such steps in a row stop the run with
:class:`TrainingDiverged`. Parameters stay in ``model.param_dtype`` (fp32); the model computes in
``model.dtype`` (bf16).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Protocol, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from small_e_jax import sharding as shd
from small_e_jax.checkpoint import Checkpointer
from small_e_jax.config import Config, config_to_dict
from small_e_jax.guidance import drop_text
from small_e_jax.metrics import MetricLogger, ValidationTrend, flatten_metrics
from small_e_jax.model import SmallE
from small_e_jax.optim import learning_rate_schedule, make_optimizer, update_count
from small_e_jax.workdir_lock import WorkdirLock

log = logging.getLogger(__name__)

Batch = Mapping[str, Any]
BATCH_KEYS = ("text", "text_mask", "audio", "audio_mask")


class DataSource(Protocol):
    """What the trainer reads; a source may also have ``describe() -> str`` (its name and sizes,
    for the start banner)."""

    def train_iterator(self) -> Iterator[Batch]: ...

    def eval_batches(self) -> Iterable[Batch]: ...


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes. step: [] int32, completed steps; params: the
    model's ``nnx.Param`` state (fp32); rngs: its dropout RNG streams; opt_state: optax state."""

    step: jax.Array
    params: nnx.State
    rngs: nnx.State
    opt_state: Any


@dataclasses.dataclass
class RunResult:
    step: int  # completed steps
    stopped: str  # "done" | "sigterm" | "stop_at_step"
    losses: dict[int, float]  # step number (1-based, after the update) -> training loss
    val_losses: dict[int, float]
    bad_steps: list[int]  # steps whose update was skipped
    state: Optional[TrainState] = None  # the final train state


# --------------------------------------------------------------------------- the step


def _split(model: SmallE) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    return nnx.split(model, nnx.Param, ...)


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, accumulation: int = 1, *, text_dropout: float = 0.0,
                    seed: int = 0) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]:
    """A pure ``(state, batch, poison) -> (state, metrics)`` (not jitted). ``poison`` ([] bool)
    replaces the gradients by NaN: fault injection for tests of the NaN guard, an input rather
    than a compile-time option so that one compiled step serves both.

    ``text_dropout`` (``trainer.cfg_text_dropout``): probability that a row's text is replaced
    by the null text (classifier-free guidance, :mod:`small_e_jax.guidance`); the rows are drawn
    with ``fold_in(key(seed), step)``, so a resumed run drops the same rows."""

    def summed_loss(model: SmallE, batch: Batch):
        _, m = model.loss(batch["text"], batch["text_mask"], batch["audio"], batch["audio_mask"])
        n = m["targets_per_codebook"]  # [Q]
        sums = {"nll": m["loss_per_codebook"] * n, "correct": m["accuracy_per_codebook"] * n, "n": n}
        return sums["nll"].sum(), sums

    # nnx.value_and_grad (not jax's) so that the dropout RNG counters may advance inside it.
    grad_fn = nnx.value_and_grad(summed_loss, argnums=nnx.DiffState(0, nnx.Param), has_aux=True)

    def micro_step(params: nnx.State, rngs: nnx.State, batch: Batch):
        """(gradients of the summed loss, per-codebook sums, advanced RNG state)."""
        model = nnx.merge(graphdef, params, rngs)
        (_, sums), grads = grad_fn(model, batch)
        return grads, sums, nnx.state(model, nnx.RngState)

    def step(state: TrainState, batch: Batch, poison: jax.Array) -> tuple[TrainState, dict]:
        text_dropped = jnp.zeros((), jnp.float32)
        if text_dropout > 0:
            key = jax.random.fold_in(jax.random.key(seed), state.step)
            text, text_mask, dropped = drop_text(batch["text"], batch["text_mask"], key, text_dropout)
            batch = {**batch, "text": text, "text_mask": text_mask}
            text_dropped = dropped.astype(jnp.float32).mean()
        if accumulation == 1:
            grads, sums, rngs = micro_step(state.params, state.rngs, batch)
        else:
            def split(x):  # [B, ...] -> [A, B/A, ...], micro-batch a = rows a::A
                return jnp.swapaxes(x.reshape(x.shape[0] // accumulation, accumulation, *x.shape[1:]), 0, 1)

            def body(carry, micro):
                # params ride in the carry (unchanged): nnx refuses Variables of an outer trace.
                params, grads_acc, sums_acc, rngs = carry
                grads, sums, rngs = micro_step(params, rngs, micro)
                return (params, jax.tree.map(jnp.add, grads_acc, grads), jax.tree.map(jnp.add, sums_acc, sums),
                        rngs), None

            zeros = jax.tree.map(jnp.zeros_like, state.params)
            q = batch["audio"].shape[-1]
            zsums = {k: jnp.zeros((q,), jnp.float32) for k in ("nll", "correct", "n")}
            (_, grads, sums, rngs), _ = jax.lax.scan(body, (state.params, zeros, zsums, state.rngs),
                                                     {k: split(batch[k]) for k in BATCH_KEYS})
        total = jnp.maximum(sums["n"].sum(), 1.0)
        grads = jax.tree.map(lambda g: g / total, grads)
        grads = jax.tree.map(lambda g: jnp.where(poison, jnp.nan, g), grads)
        loss = sums["nll"].sum() / total
        grad_norm = optax.tree.norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        lr = schedule(update_count(state.opt_state))
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        new_state = TrainState(step=state.step + 1, params=keep(new_params, state.params), rngs=rngs,
                               opt_state=keep(new_opt, state.opt_state))
        count = jnp.maximum(sums["n"], 1.0)
        metrics = {"loss": loss, "perplexity": jnp.exp(loss), "loss_per_codebook": sums["nll"] / count,
                   "accuracy_per_codebook": sums["correct"] / count, "grad_norm": grad_norm,
                   "learning_rate": lr, "ok": ok, "frames": batch["audio_mask"].sum(),
                   "columns": jnp.asarray(batch["audio_mask"].size, jnp.float32)}
        if text_dropout > 0:
            metrics["text_dropped"] = text_dropped
        return new_state, metrics

    return step


# --------------------------------------------------------------------------- trainer


class Trainer:
    """The model structure, mesh, shardings and compiled functions of one config."""

    def __init__(self, config: Config, mesh: Optional[Mesh] = None):
        self.config = config
        self.mesh = mesh if mesh is not None else shd.make_mesh(config.mesh)
        self.rules = config.mesh.logical_axis_rules
        self.tx = make_optimizer(config.optimizer, config.trainer.steps)
        self.schedule = learning_rate_schedule(config.optimizer, config.trainer.steps)
        seed = config.trainer.seed
        abstract = nnx.eval_shape(lambda: SmallE(config.model, rngs=nnx.Rngs(seed)))
        self.graphdef, abs_params, _ = _split(abstract)
        abstract.eval()  # dropout off: a second structure for validation
        self.eval_graphdef = _split(abstract)[0]
        self.param_sharding = shd.param_shardings(abs_params, self.mesh, self.rules)
        self.batch_sharding = shd.batch_sharding(self.mesh, self.rules)
        self.replicated = shd.replicated(self.mesh)
        self._step: Optional[Callable] = None
        self._eval: Optional[Callable] = None
        self._init: Optional[Callable] = None
        self._poison: dict[bool, jax.Array] = {}  # the two values of the step's fault-injection flag

    def compatible(self, config: Config) -> bool:
        """Whether this trainer (structure, schedule, mesh) can train ``config``."""
        mine = self.config
        return (mine.model, mine.optimizer, mine.mesh, mine.trainer.steps, mine.trainer.seed) == (
            config.model, config.optimizer, config.mesh, config.trainer.steps, config.trainer.seed)

    # ----------------------------------------------------------------------- state

    def init_state(self) -> TrainState:
        """Fresh parameters (created sharded), optimizer state, step 0."""
        cfg = self.config
        if self._init is None:
            def init() -> tuple[nnx.State, nnx.State]:
                _, params, rngs = _split(SmallE(cfg.model, rngs=nnx.Rngs(cfg.trainer.seed)))
                return params, rngs

            self._init = jax.jit(init, out_shardings=(self.param_sharding, self.replicated))
        params, rngs = self._init()
        opt_state = self._on_mesh(self.tx.init(params))  # zeros_like keeps each parameter's sharding
        step = self._on_mesh(np.int32(0))
        return TrainState(step=step, params=params, rngs=rngs, opt_state=opt_state)

    def _on_mesh(self, tree: Any) -> Any:
        """Leaves not yet laid out on the mesh (scalars, host values) -> replicated."""

        def place(x: Any) -> Any:
            if isinstance(x, jax.Array) and isinstance(x.sharding, NamedSharding) and x.sharding.mesh == self.mesh:
                return x
            value = np.asarray(x)
            return jax.make_array_from_callback(value.shape, self.replicated, lambda index: value[index])

        return jax.tree.map(place, tree)

    def model(self, state: TrainState, *, train: bool = False) -> SmallE:
        """The nnx model holding ``state``'s parameters (eval mode unless ``train``)."""
        return nnx.merge(self.graphdef if train else self.eval_graphdef, state.params, state.rngs)

    def shard_batch(self, local: Batch) -> dict[str, jax.Array]:
        """Local rows (numpy) -> global arrays split over the batch axes."""
        missing = [k for k in BATCH_KEYS if k not in local]
        if missing:
            raise KeyError(f"batch is missing {missing}; expected keys {list(BATCH_KEYS)}")
        return shd.global_batch({k: local[k] for k in BATCH_KEYS}, self.batch_sharding)

    # ----------------------------------------------------------------------- compiled functions

    def step(self, state: TrainState, batch: Mapping[str, jax.Array], poison: bool = False
             ) -> tuple[TrainState, dict]:
        """One optimizer step (compiled on first use; ``state`` is donated). ``poison``: NaN
        gradients (fault injection, see :func:`make_train_step`)."""
        if self._step is None:
            state_sharding = jax.tree.map(lambda x: x.sharding, state)
            fn = make_train_step(self.graphdef, self.tx, self.schedule, self.config.optimizer.grad_accumulation,
                                 text_dropout=self.config.trainer.cfg_text_dropout, seed=self.config.trainer.seed)
            self._step = jax.jit(fn, in_shardings=(state_sharding, self.batch_sharding, self.replicated),
                                 out_shardings=(state_sharding, self.replicated), donate_argnums=0)
        if bool(poison) not in self._poison:
            self._poison[bool(poison)] = self._on_mesh(np.bool_(poison))
        # The ambient mesh lets opaque kernels (Pallas GLA) run per device under shard_map
        # instead of being gathered onto every device (kernels/gla/sharded.py).
        with jax.set_mesh(self.mesh):
            return self._step(state, batch, self._poison[bool(poison)])

    def compiled_step(self, state: TrainState, batch: Mapping[str, jax.Array]) -> Any:
        """The XLA executable of :meth:`step` for these arguments (cost analysis, optimized HLO
        text); a cache hit once :meth:`step` has run with them."""
        if self._step is None or False not in self._poison:
            raise RuntimeError("Trainer.compiled_step: run Trainer.step once first")
        with jax.set_mesh(self.mesh):
            return self._step.lower(state, batch, self._poison[False]).compile()

    def evaluate(self, state: TrainState, batches: Iterable[Batch], max_batches: int) -> Optional[float]:
        """Mean validation loss over up to ``max_batches`` batches (dropout off); None if none."""
        if self._eval is None:
            graphdef = self.eval_graphdef

            def eval_fn(params, rngs, batch):
                model = nnx.merge(graphdef, params, rngs)
                _, m = model.loss(batch["text"], batch["text_mask"], batch["audio"], batch["audio_mask"])
                return (m["loss_per_codebook"] * m["targets_per_codebook"]).sum(), m["targets_per_codebook"].sum()

            self._eval = jax.jit(eval_fn, out_shardings=self.replicated)
        nll, count = 0.0, 0.0
        for i, local in enumerate(batches):
            if i >= max_batches:
                break
            with jax.set_mesh(self.mesh):
                s, n = self._eval(state.params, state.rngs, self.shard_batch(local))
            nll, count = nll + float(s), count + float(n)
        return nll / count if count else None


# --------------------------------------------------------------------------- the loop


class _StopFlag:
    """Set by SIGTERM while installed (main thread only); restores the old handler on exit."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)

    def should_stop(self, step: int) -> bool:
        if jax.process_count() > 1:  # all hosts must agree on the step to stop at
            from jax.experimental import multihost_utils
            return bool(multihost_utils.reached_preemption_sync_point(step)) or self.requested
        return self.requested


def _agree(flag: bool) -> bool:
    """Process 0's decision, on every process (time-based decisions differ between hosts)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils
    return bool(multihost_utils.broadcast_one_to_all(np.int32(flag)))


def checkpoint_dir(config: Config) -> str:
    """``checkpoint.directory``, default ``<trainer.workdir>/checkpoints`` (may be a gs:// URL)."""
    return config.checkpoint.directory or str(Path(config.trainer.workdir) / "checkpoints")


LOCK_NAME = "trainer.lock"


def parameter_count(params: Any) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def start_banner(config: Config, trainer: Trainer, state: TrainState, source: Any, start: int) -> list[str]:
    """The lines a run starts with: devices, model size, data, where things are written."""
    tc = config.trainer
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    n = parameter_count(state.params)
    describe = getattr(source, "describe", None)
    workdir = Path(tc.workdir).absolute()
    lines = [f"devices: {len(devices)} x {', '.join(kinds)} ({jax.default_backend()}), "
             f"{jax.process_count()} process(es); mesh {dict(trainer.mesh.shape)}",
             f"model: {config.name or 'small_e'}, {n / 1e6:.2f}M parameters ({config.model.block} blocks, "
             f"{config.model.cross_attention} cross-attention)",
             f"data: {describe() if callable(describe) else type(source).__name__}",
             f"steps: {start} -> {tc.steps}" + (" (resumed)" if start else ""),
             f"workdir: {workdir}; checkpoints: {checkpoint_dir(config)}"]
    if tc.tensorboard:
        lines.append(f"TensorBoard: tensorboard --logdir {workdir / 'tensorboard'}")
    return lines


def lock_path(config: Config) -> Optional[Path]:
    """The trainer lock: ``<checkpoint dir>/trainer.lock`` (what two trainers would corrupt),
    or ``<trainer.workdir>/trainer.lock`` when the checkpoints are remote (gs://); None when
    both are remote."""
    for directory in (checkpoint_dir(config), config.trainer.workdir):
        if "://" not in str(directory):
            return Path(directory).absolute() / LOCK_NAME
    return None


def run(config: Config, source: DataSource, *, trainer: Optional[Trainer] = None,
        stop_at_step: Optional[int] = None, nan_steps: Sequence[int] = ()) -> RunResult:
    """Train ``config`` on ``source`` (see :func:`_run`) holding the workdir's trainer lock
    (:func:`lock_path`; process 0 only): :class:`WorkdirLocked` if another live trainer holds
    it. The lock is released on every exit (done, exception, SIGTERM save); a run killed
    outright leaves a stale lock, which the next run takes over with a warning."""
    path = lock_path(config) if jax.process_index() == 0 else None
    if path is None and jax.process_index() == 0:
        log.warning("trainer lock: checkpoint directory and workdir are both remote; not locked")
    lock = WorkdirLock(path) if path is not None else contextlib.nullcontext()
    # SIGTERM is caught from here on (restore, compile included): it ends on the save path.
    with _StopFlag() as stop, lock:
        return _run(config, source, stop, trainer=trainer, stop_at_step=stop_at_step, nan_steps=nan_steps)


def _run(config: Config, source: DataSource, stop: _StopFlag, *, trainer: Optional[Trainer] = None,
         stop_at_step: Optional[int] = None, nan_steps: Sequence[int] = ()) -> RunResult:
    """Train ``config`` on ``source`` until ``trainer.steps`` (resuming from the newest
    checkpoint in the checkpoint directory that restores, if any; newer corrupt or partial
    steps are moved aside and saved again by this run, see :meth:`Checkpointer.restore`).

    ``trainer``: a :class:`Trainer` of this config to reuse (its compiled step; default: a new
    one on the config's mesh). ``stop_at_step`` stops early as if preempted there (save,
    return). ``nan_steps``: 0-based steps whose gradients are replaced by NaN (tests)."""
    tc, cc = config.trainer, config.checkpoint
    if trainer is None:
        trainer = Trainer(config)
    elif not trainer.compatible(config):
        raise ValueError("run: the trainer was built for another model/optimizer/mesh/steps/seed")
    config_dict = config_to_dict(config)
    state = trainer.init_state()
    iterator = source.train_iterator()
    ckpt = Checkpointer(checkpoint_dir(config), cc)
    try:
        # quarantine: a newer step that does not restore is moved aside, so this run saves it again.
        restored = ckpt.restore(state, iterator, config_dict, quarantine=True)
    except BaseException:
        ckpt.close()  # no orbax threads left to fail noisily at interpreter exit
        raise
    if restored is not None:
        state = restored[0]
    start = int(jax.device_get(state.step))
    is_main = jax.process_index() == 0
    logger = MetricLogger(tc.workdir, tc.steps, start, enabled=is_main, progress_bar=tc.progress_bar,
                          tensorboard=tc.tensorboard)
    if restored is not None:
        moved = [f"{step} -> {name}" for step, _, name in ckpt.skipped if name is not None]
        logger.message(f"resumed from {ckpt.directory}/{start} (step {start}"
                       + (f"; corrupt steps moved aside: {', '.join(moved)})" if moved else ")"))
    for line in start_banner(config, trainer, state, source, start):
        logger.message(line)
    result = RunResult(step=start, stopped="done", losses={}, val_losses={}, bad_steps=[])
    trend = ValidationTrend(tc.warn_val_rise)
    bad_in_a_row = 0
    window = {"start": time.perf_counter(), "frames": 0.0, "steps": 0}
    last_save = time.monotonic()

    def handle(step: int, metrics: dict) -> None:
        """Host side of a finished step: NaN accounting, progress, periodic logging."""
        nonlocal bad_in_a_row
        m = jax.device_get(metrics)
        loss = float(m["loss"])
        result.losses[step] = loss
        window["frames"] += float(m["frames"])
        window["steps"] += 1
        if not bool(m["ok"]):
            bad_in_a_row += 1
            result.bad_steps.append(step)
            logger.message(f"step {step}: non-finite loss {loss} or grad norm {float(m['grad_norm'])}; "
                           f"update skipped ({bad_in_a_row} in a row)")
            if bad_in_a_row >= tc.max_consecutive_bad_steps:
                raise TrainingDiverged(
                    f"{bad_in_a_row} consecutive steps (up to step {step}) had a non-finite loss or "
                    f"gradient (trainer.max_consecutive_bad_steps={tc.max_consecutive_bad_steps}); "
                    "stopping. Lower optimizer.learning_rate or check the data; the last checkpoint "
                    "holds the last good state.")
        else:
            bad_in_a_row = 0
        logger.update(step, loss)
        if step % tc.log_every == 0 or step == tc.steps:
            elapsed = max(time.perf_counter() - window["start"], 1e-9)
            scalars = flatten_metrics({k: v for k, v in m.items() if k not in ("ok", "frames", "columns")})
            scalars.update(frames_per_s=window["frames"] / elapsed,
                           codes_per_s=config.model.n_codebooks * window["frames"] / elapsed,
                           step_time_s=elapsed / window["steps"],
                           padding=1.0 - float(m["frames"]) / max(float(m["columns"]), 1.0))
            logger.write(step, scalars, "train")
            window.update(start=time.perf_counter(), frames=0.0, steps=0)

    def save(step: int, val_loss: Optional[float]) -> None:
        nonlocal last_save
        ckpt.save(step, state, iterator, config_dict, val_loss=val_loss)
        last_save = time.monotonic()

    pending: Optional[tuple[int, dict]] = None
    profiling = False
    try:
        for step in range(start, tc.steps):
            if stop.should_stop(step):
                result.stopped = "sigterm"
                break
            if step in tc.profile_steps and not profiling:
                jax.profiler.start_trace(str(Path(tc.workdir) / "profile"))
                profiling = True
            first = step == start
            if first:
                logger.message("compiling the training step…")
                compile_start = time.perf_counter()
            state, metrics = trainer.step(state, trainer.shard_batch(next(iterator)), step in nan_steps)
            if first:  # jit compiles on the first call; waiting for its result adds the first step's run
                jax.block_until_ready(metrics["loss"])
                logger.message(f"compiled and ran the first step in {time.perf_counter() - compile_start:.1f} s")
            if pending is not None:  # one step behind, so the host never stalls the device
                handle(*pending)
            pending = (step + 1, metrics)
            done = step + 1
            if profiling and step not in tc.profile_steps:
                jax.profiler.stop_trace()
                profiling = False
            val_loss = None
            if tc.eval_batches and (done % tc.eval_every == 0 or done == tc.steps):
                handle(*pending)
                pending = None
                val_loss = trainer.evaluate(state, source.eval_batches(), tc.eval_batches)
                if val_loss is not None:
                    result.val_losses[done] = val_loss
                    logger.write(done, {"loss": val_loss, "perplexity": float(np.exp(val_loss))}, "eval")
                    warning = trend.add(done, val_loss)
                    if warning:
                        logger.message(warning)
            timed = cc.save_every_minutes > 0 and time.monotonic() - last_save >= 60 * cc.save_every_minutes
            # Several hosts must agree (a broadcast): only ask them every log_every steps.
            timed = (jax.process_count() == 1 or done % tc.log_every == 0) and _agree(timed)
            if (done % cc.save_every_steps == 0 or done == tc.steps or timed
                    or (val_loss is not None and cc.keep_best)):
                save(done, val_loss)
            if stop_at_step is not None and done >= stop_at_step:
                result.stopped = "stop_at_step"
                break
        if pending is not None:
            handle(*pending)
            pending = None
        result.step = int(jax.device_get(state.step))
        result.state = state
        if result.stopped != "done" or result.step == tc.steps:
            save(result.step, None)
        if result.stopped == "sigterm":
            logger.message(f"SIGTERM: saved step {result.step} to {ckpt.directory}; exiting")
    finally:
        if profiling:
            jax.profiler.stop_trace()
        ckpt.close()
        logger.close()
    return result
