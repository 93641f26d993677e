"""Decode speed: frames/s, real-time factor and streaming time to first audio.

    python -m benchmarks.bench_decode [--preset small_e_librilight_medium] [--batch 1,8,32,64]
        [--text-len 300] [--frames 750] [--dtype bfloat16] [--unroll 4] [--out benchmarks/results.jsonl]
        [--trace]    # also: kernels per decode step, device busy/idle time, busiest kernels
        [--hlo-dir D]  # also: the compiled loop's optimized HLO, D/decode_loop_B{batch}.hlo.txt.gz

Random weights (speed does not depend on them). Each item gets ``--text-len`` random text
tokens and decodes exactly ``--frames`` frames (the stop token is held off with ``min_frames``)
through the same compiled program as :class:`~small_e_jax.inference.Synthesizer`: one prefill
call, then one ``lax.while_loop`` over every step with no host round trip in between.

Figures (each the median of ``--repeats`` timed runs after a warm-up/compile run):

* ``frames_per_s`` (the record's ``fwd_tokens_per_s``): B x frames / loop time — every item
  advances one frame (Q codes) per step;
* ``rtf``: loop time / seconds of audio of one item (< 1 is faster than real time), at
  ``--frame-rate`` (75 frames/s for DAC 24 kHz);
* ``prefill_ms``: text encoder + decode-state set-up;
* ``first_audio_ms`` (batch 1): a streaming start as ``Synthesizer.stream`` does it — prefill,
  the loop until the first ``--first-chunk`` frames and ``--context-frames`` frames of codec
  right context are complete (delay pattern: Q - 1 more steps), and the codec decode of them
  (random-weight DAC 24 kHz), all synchronised.

Writes one JSON line per batch size in the format of :mod:`benchmarks.record`.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.record import append_records, make_record
from small_e_jax import decoding
from small_e_jax.config import Config, load_config
from small_e_jax.inference import abstract_model
from small_e_jax.model import SmallE
from small_e_jax.sampling import SamplingConfig
from small_e_jax.cli import ArgumentParser, entry_point


def random_model(config: Config, param_dtype: str, seed: int = 0) -> SmallE:
    """``config``'s model with random weights drawn on the host (JAX's per-initialiser programs
    take minutes to compile on a CPU; the values do not matter for speed)."""
    graphdef, abstract, rest = abstract_model(config)
    leaves, treedef = jax.tree_util.tree_flatten(abstract)
    dtype = jnp.dtype(param_dtype)
    rng = np.random.default_rng(seed)

    def init(x: Any) -> jax.Array:
        fan_in = x.shape[-2] if len(x.shape) > 1 else 1
        value = rng.standard_normal(x.shape, np.float32) / np.float32(np.sqrt(fan_in))
        return jnp.asarray(value, dtype)

    params = jax.tree_util.tree_unflatten(treedef, [init(x) for x in leaves])
    model = nnx.merge(graphdef, params, rest)
    model.eval()
    return model


class Bench:
    """Compiled prefill / loop for one model, and the timing of one batch size."""

    def __init__(self, model: SmallE, sampling: SamplingConfig, unroll: int):
        self.graphdef, self.params = decoding.split_model(model)
        self.Q = model.config.n_codebooks
        self.vocab = model.config.text_vocab_size
        self.static, values = sampling.split()
        self.values = {k: jnp.float32(v) for k, v in values.items()}
        self.unroll = unroll
        self.start = jax.jit(self._start, static_argnames=("n_steps",))
        self.loop = jax.jit(self._loop, donate_argnums=(1,))

    def _start(self, params, text, text_mask, request, *, n_steps):
        model = nnx.merge(self.graphdef, params)
        max_len = n_steps if model.config.block == "transformer" else None
        state = decoding.prefill(model, text, text_mask, self.static.uses_cfg, max_len=max_len)
        return decoding.init_carry(state, request, n_steps, 0)

    def _loop(self, params, carry, request, until):
        model = nnx.merge(self.graphdef, params)
        return decoding.run_loop(model, self.static, request, carry, until, self.values, self.unroll)

    def inputs(self, batch: int, text_len: int, frames: int):
        rng = np.random.default_rng(batch)
        text = rng.integers(3, self.vocab, (batch, text_len)).astype(np.int32)
        text[:, 0], text[:, -1] = 1, 2  # BOS ... EOS
        request = decoding.make_request(self.Q, batch, min_frames=frames, max_frames=frames)
        n_steps = -(-(frames + self.Q) // self.unroll) * self.unroll
        return jnp.asarray(text), jnp.ones(text.shape, bool), request, n_steps

    def run_once(self, batch: int, text_len: int, frames: int) -> tuple[float, float, int]:
        """(prefill seconds, loop seconds, steps) of one synchronised run."""
        text, mask, request, n_steps = self.inputs(batch, text_len, frames)
        t0 = time.perf_counter()
        carry = self.start(self.params, text, mask, request, n_steps=n_steps)
        jax.block_until_ready(carry)
        t1 = time.perf_counter()
        carry = self.loop(self.params, carry, request, jnp.int32(n_steps))
        steps = int(jax.device_get(carry.i))  # also waits for the loop
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, steps

    def first_audio(self, text_len: int, chunk: int, codec: Any, frames: int, context: int = 16) -> float:
        """Seconds from text tokens to the first decoded audio chunk (batch 1), as
        :meth:`Synthesizer.stream` does it: the first ``chunk`` frames are decoded once
        ``context`` more frames (the codec's right context) are complete. Uses the buffers of a
        ``frames``-frame run, so the programs compiled for it are reused."""
        if not 1 <= chunk + context <= frames:
            raise ValueError(f"the first chunk + context ({chunk} + {context} frames) must be in 1..{frames}")
        text, mask, request, n_steps = self.inputs(1, text_len, frames)
        need = chunk + context
        t0 = time.perf_counter()
        carry = self.start(self.params, text, mask, request, n_steps=n_steps)
        carry = self.loop(self.params, carry, request, jnp.int32(-(-(need + self.Q - 1) // self.unroll) * self.unroll))
        outputs = np.asarray(jax.device_get(carry.outputs[0, :need + self.Q - 1]))
        codes = decoding.undelay_predictions(np.concatenate([outputs, np.zeros((1, self.Q), np.int32)])[None])[0][0]
        np.asarray(codec.decode(np.maximum(codes[:need].T[None], 0)))[0, :chunk * codec.hop_length]  # host copy = done
        return time.perf_counter() - t0


def trace_loop(bench: Bench, batch: int, text_len: int, frames: int, top: int = 15,
               hlo_text: Optional[Callable[[], str]] = None) -> dict[str, Any]:
    """Trace one run (prefill + loop) and print the device timeline per decode step and the
    busiest kernels: at batch 1 a step is a chain of small kernels, and this says how many and
    how long the device waits between them. ``hlo_text``: the compiled loop's HLO (default:
    compiled here, only if there is a device plane). Returns the timeline per step (ns; {} on a
    CPU)."""
    from benchmarks.kernels.trace_summary import origin_lines, run_traced, summarize, table, timeline_lines

    try:  # run_once waits for the loop (it reads the step count back)
        (_, _, steps), path = run_traced(lambda: bench.run_once(batch, text_len, frames),
                                         prefix="small_e_decode_trace_")
        summary = summarize(path)
    except RuntimeError:
        summary = None
    if not summary or not summary["device_planes"]:
        print(f"  B={batch}: no device plane in the trace (CPU run): no timeline")
        return {}
    print(f"  B={batch}: {steps} decode steps traced (plus the prefill)")
    for line in timeline_lines(summary["timeline"], steps):
        print("  " + line)
    for line in table("  busiest kernels", summary["by_kernel"], summary["total_ns"], top, steps):
        print("  " + line)
    origins = loop_kernel_origins(bench, batch, text_len, frames, hlo_text)
    if origins:
        print("  where the busiest kernels come from (optimized HLO metadata)")
        for line in origin_lines(summary["by_kernel"], steps, top, origins, name_width=40, origin_width=160):
            print("  " + line)
    return {k: v / steps for k, v in summary["timeline"].items()}


def loop_kernel_origins(bench: Bench, batch: int, text_len: int, frames: int,
                        hlo_text: Optional[Callable[[], str]] = None) -> dict[str, str]:
    """{kernel (fusion) name: the JAX op and source line it was made from} for the decode loop's
    compiled program; {} when the program text cannot be had (a convenience, never fatal)."""
    from benchmarks.profile_step import hlo_origins

    try:
        return hlo_origins(hlo_text() if hlo_text else loop_hlo_text(bench, batch, text_len, frames))
    except Exception as e:  # noqa: BLE001
        print(f"  (no kernel origins: {type(e).__name__}: {e})")
        return {}


def loop_hlo_text(bench: Bench, batch: int, text_len: int, frames: int) -> str:
    """The decode loop's compiled (optimized) HLO at this batch size, as text."""
    text, mask, request, n_steps = bench.inputs(batch, text_len, frames)
    carry = bench.start(bench.params, text, mask, request, n_steps=n_steps)
    return bench.loop.lower(bench.params, carry, request, jnp.int32(n_steps)).compile().as_text()


def save_loop_hlo(hlo_text: str, batch: int, directory: Path) -> Path:
    """Write the decode loop's optimized HLO to ``directory/decode_loop_B{batch}.hlo.txt.gz``
    (what each fused kernel contains, to read a GPU trace against)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"decode_loop_B{batch}.hlo.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write(hlo_text)
    return path


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m benchmarks.bench_decode", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small_e_librilight_medium")
    p.add_argument("--batch", default="1,8,32,64", help="comma-separated batch sizes")
    p.add_argument("--text-len", type=int, default=300)
    p.add_argument("--frames", type=int, default=750, help="frames decoded per item (10 s at 75 frames/s)")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"), help="compute and parameter dtype")
    p.add_argument("--unroll", type=int, default=4, help="decode steps per loop iteration")
    p.add_argument("--top-k", type=int, default=100, help="sampling top-k (0 with --greedy for argmax)")
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--frame-rate", type=float, default=75.0)
    p.add_argument("--first-chunk", type=int, default=10, help="frames in the first streamed chunk (0 = skip)")
    p.add_argument("--context-frames", type=int, default=16, help="codec right context before audio is final")
    p.add_argument("--codec", default="dac_24khz", help="codec for the time-to-first-audio figure")
    p.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    p.add_argument("--trace", action="store_true",
                   help="also trace one timed loop per batch size and print, per decode step, the "
                        "kernels launched, the device's busy and idle time and the top kernels")
    p.add_argument("--hlo-dir", type=Path, default=None,
                   help="write each batch size's compiled decode loop (optimized HLO text, gzip) here")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    return p.parse_args(argv)


@entry_point
def main(argv: Sequence[str] | None = None, *, codec: Any = None) -> int:
    """``codec``: the codec of the first-audio figure (default: ``--codec`` with random weights)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    batches = [int(b) for b in args.batch.split(",") if b]
    config = load_config(args.preset, [f"model.dtype={args.dtype}", *args.overrides])
    model = random_model(config, args.dtype)
    sampling = SamplingConfig(greedy=True) if args.greedy else SamplingConfig(top_k=args.top_k)
    bench = Bench(model, sampling, args.unroll)
    if args.first_chunk > 0 and codec is None:
        from small_e_jax.codec import load_codec

        codec = load_codec(args.codec, None, n_q=config.model.n_codebooks)
    records = []
    for batch in batches:
        bench.run_once(batch, args.text_len, args.frames)  # compile + warm-up
        runs = [bench.run_once(batch, args.text_len, args.frames) for _ in range(args.repeats)]
        prefill = statistics.median(r[0] for r in runs)
        loop = statistics.median(r[1] for r in runs)
        steps = runs[0][2]
        frames_per_s = batch * args.frames / loop
        rtf = loop / (args.frames / args.frame_rate)
        extra: dict[str, Any] = {
            "frames": args.frames, "steps": steps, "unroll": args.unroll, "prefill_ms": 1e3 * prefill,
            "loop_s": loop, "rtf": rtf, "frame_rate": args.frame_rate,
            "sampling": "greedy" if args.greedy else f"top_k={args.top_k}",
            "step_ms": 1e3 * loop / steps, "params_dtype": args.dtype,
            "decode_kernels": config.model.decode_kernels,  # as configured (auto: see _used)
            "decode_kernels_used": "pallas" if model.uses_fused_decode(batch) else "xla",
            "decode_kernel_options": config.model.decode_kernel_options,
            # XLA flags change what is measured (e.g. CUDA graphs over the loop): keep them.
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        }
        if batch == 1 and args.first_chunk > 0:
            fa = lambda: bench.first_audio(args.text_len, args.first_chunk, codec, args.frames, args.context_frames)
            fa()  # compile the codec
            extra["first_audio_ms"] = 1e3 * statistics.median(fa() for _ in range(args.repeats))
            extra["first_chunk_frames"], extra["context_frames"] = args.first_chunk, args.context_frames
        record = make_record(name=f"decode/{config.name}", backend="while_loop",
                             shape={"B": batch, "J": args.text_len, "frames": args.frames,
                                    "Q": config.model.n_codebooks},
                             dtype=args.dtype, fwd_tokens_per_s=frames_per_s, fwd_bwd_tokens_per_s=None,
                             extra=extra)
        records.append(record)
        first = f", first audio {extra['first_audio_ms']:.0f} ms" if "first_audio_ms" in extra else ""
        print(f"B={batch:3d}: {frames_per_s:,.0f} frames/s, rtf {rtf:.4f}, step {extra['step_ms']:.3f} ms, "
              f"prefill {extra['prefill_ms']:.1f} ms{first}", flush=True)
        # The compiled loop's HLO, compiled at most once for --trace's origins and --hlo-dir.
        hlo_text = functools.cache(lambda: loop_hlo_text(bench, batch, args.text_len, args.frames))
        if args.trace:  # after the timed runs, so the profiler does not disturb them
            record["extra"]["trace_per_step"] = trace_loop(bench, batch, args.text_len, args.frames,
                                                           hlo_text=hlo_text)
        if args.hlo_dir is not None:
            print(f"  wrote {save_loop_hlo(hlo_text(), batch, args.hlo_dir)}")
    if args.out is not None:
        append_records(records, args.out)
        print(f"appended {len(records)} records to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
