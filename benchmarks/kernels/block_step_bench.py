"""Time one GLA block's decode step per call: XLA (`LCLMBlock.step`), the five fused kernels
(`kernels/gla/block_step.py`) and the persistent kernel (`block_persistent.py`) with ablations,
all in one run on one device, at the 64M model's block (d 512, 4 heads, K 128, V 256, F 682).

    python -m benchmarks.kernels.block_step_bench --batch 1 --out benchmarks/results.jsonl
    python -m benchmarks.kernels.block_step_bench --variants "five=,persistent=persistent,\\
        no_barriers=persistent:no_barriers"

A variant is LABEL=OPTIONS[:ABLATION+ABLATION] (OPTIONS: `model.decode_kernel_options`;
ablations of the persistent kernel: late_loads, no_barriers, no_phases — the last two give
wrong results and exist to price the barriers); "xla" is the XLA step. Each is a jitted loop of
``--calls`` chained block steps, timed as the median of ``--repeats`` runs; µs per call and the
ratio to the first variant are printed and recorded.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional

DEFAULT_VARIANTS = ("xla=xla,five=,persistent=persistent,persistent_w4=persistent+warps4,"
                    "late_loads=persistent:late_loads,no_barriers=persistent:no_barriers,"
                    "barriers_only=persistent:no_phases")


def parse_variants(spec: str) -> list[tuple[str, Optional[str], frozenset]]:
    """"label=opt+opt:abl+abl,..." -> [(label, options or None for XLA, ablations)]."""
    out = []
    for item in filter(None, (p.strip() for p in spec.split(","))):
        label, _, rest = item.partition("=")
        if rest == "xla":
            out.append((label, None, frozenset()))
            continue
        options, _, ablate = rest.partition(":")
        out.append((label, options.replace("+", ","), frozenset(filter(None, ablate.split("+")))))
    return out


def make_block(options: str, dtype: str):
    """The 64M model's GLA block with random weights, eval mode."""
    from flax import nnx

    from small_e_jax.config import ModelConfig
    from small_e_jax.model.lclm import make_block as build

    config = ModelConfig(d_model=512, heads=4, dtype=dtype, gate_low_rank=16, block_dropout=0.0,
                         decode_kernel_options=options)
    block = build("gla", 512, 4, config, nnx.Rngs(0))
    block.eval()
    return block


def time_variant(label: str, options: Optional[str], ablate: frozenset, batch: int, dtype: str,
                 calls: int, repeats: int) -> float:
    """Median seconds per block step."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from kernels.gla import block_persistent, block_step

    block = make_block(options or "", dtype)
    m = block.mixer
    rng = np.random.default_rng(0)
    state = jnp.asarray(0.1 * rng.standard_normal((batch, m.heads, m.head_k, m.head_v)), jnp.float32)
    if options is None:
        x = jnp.asarray(rng.standard_normal((batch, 512)), dtype)
        step = lambda x, s: block.step(x, s, 0)
    else:
        weights, dims = block.fused_weights(), block.fused_dims()
        x = jnp.asarray(rng.standard_normal((block_step.padded_rows(batch, dims.small_rows), 512)), dtype)
        if ablate:
            step = lambda x, s: block_persistent.gla_block_step_persistent(x, s, weights, dims, ablate=ablate)
        else:
            step = lambda x, s: block.step(x, s, 0, weights=weights)

    @jax.jit
    def loop(x, s):
        return jax.lax.fori_loop(0, calls, lambda _, c: step(*c), (x, s))

    jax.block_until_ready(loop(x, state))  # compile
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(loop(x, state))
        samples.append((time.perf_counter() - start) / calls)
    return float(np.median(samples))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--calls", type=int, default=500, help="block steps per timed loop")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="append JSON lines here")
    args = parser.parse_args(argv)
    from benchmarks.record import append_records, make_record

    variants = parse_variants(args.variants)
    results, records = {}, []
    for label, options, ablate in variants:
        try:
            seconds = time_variant(label, options, ablate, args.batch, args.dtype, args.calls, args.repeats)
        except Exception as err:  # one failing variant must not hide the others' numbers
            print(f"{label:>16}: failed: {type(err).__name__}: {str(err)[:300]}", flush=True)
            continue
        results[label] = seconds
        base = results[next(iter(results))]
        print(f"{label:>16}: {seconds * 1e6:7.2f} us per block step  ({base / seconds:.2f}x the first)", flush=True)
        records.append(make_record(
            name="block_decode_step/small_e_librilight_medium", backend=label,
            shape={"B": args.batch, "d": 512, "H": 4, "K": 128, "V": 256}, dtype=args.dtype,
            fwd_tokens_per_s=args.batch / seconds, fwd_bwd_tokens_per_s=None,
            baseline={"backend": variants[0][0], "us_per_call": results[variants[0][0]] * 1e6}
            if variants[0][0] in results else None,
            extra={"us_per_call": seconds * 1e6, "decode_kernel_options": options, "ablate": sorted(ablate),
                   "calls": args.calls, "repeats": args.repeats}))
    if args.out and records:
        append_records(records, args.out)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
