"""Price a kernel boundary in a chain of small dependent kernels, with and without Hopper's
programmatic dependent launch (PDL), to decide whether the decode block kernels should move to
Mosaic GPU.

Each variant runs ``--kernels`` dependent kernels per loop iteration (the decode step has ~65),
``--steps`` iterations in one jitted ``fori_loop``. Kernel ``j`` reads the previous kernel's
output tile ``x`` and its own weight tile ``w_j`` (independent of the chain, like a decode
kernel's weights) and writes ``x + 1e-3 * w_j``: 128 programs, one ``[64, 128]`` fp32 tile each
(32 KB of weights per program, 4 MB per kernel: the size of a decode block kernel's weights).

    python -m benchmarks.kernels.pdl_probe --variants triton,mgpu,mgpu_pdl,mgpu_pdl_early

Variants: ``triton`` (a Pallas Triton kernel, how the decode kernels are built today), ``xla``
(an XLA fusion; not in the default list: XLA fuses the elementwise chain into one kernel, so it
prices bandwidth, not a kernel boundary), ``mgpu`` (Pallas Mosaic GPU: TMA copies into shared
memory), ``mgpu_pdl`` (the same, launched with PDL: the weight copy is issued before ``griddepcontrol.wait``, so it
overlaps the previous kernel; dependents are released after the loads), ``mgpu_pdl_early``
(dependents released at the kernel's start). PDL launches need jax >= 0.11 (Mosaic GPU sets
the launch attribute when a kernel waits on ``griddepcontrol``); the kernels lower on any jax
with Mosaic GPU. Prints µs per kernel and the ratio to the first variant.
"""

from __future__ import annotations

import argparse
import sys
import time

COLS, PROGRAMS = 128, 128


def make_kernel(variant: str, rows: int = 64):
    """A function ``(x [P*rows, 128] f32, w [P*rows, 128] f32) -> x + 1e-3 * w`` for one variant."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl

    shape = jax.ShapeDtypeStruct((PROGRAMS * rows, COLS), jnp.float32)
    if variant == "xla":
        return lambda x, w: x + 1e-3 * w
    if variant == "triton":
        from jax.experimental.pallas import triton as pltriton

        def body(x_ref, w_ref, o_ref):
            o_ref[...] = x_ref[...] + 1e-3 * w_ref[...]

        spec = pl.BlockSpec((rows, COLS), lambda i: (i, 0))
        return pl.pallas_call(body, out_shape=shape, grid=(PROGRAMS,), in_specs=[spec, spec],
                              out_specs=spec,
                              compiler_params=pltriton.CompilerParams(num_warps=4, num_stages=1))
    if not variant.startswith("mgpu"):
        raise ValueError(f"unknown variant {variant!r}")
    from jax.experimental.pallas import mosaic_gpu as plgpu

    pdl = variant in ("mgpu_pdl", "mgpu_pdl_early")
    early = variant == "mgpu_pdl_early"

    def body(x_gmem, w_gmem, o_gmem, x_smem, w_smem, bars):
        tile = pl.ds(jax.lax.axis_index("programs") * rows, rows)
        if early:
            plgpu.griddepcontrol_launch_dependents()
        # The weights do not depend on the previous kernel: start their copy before waiting.
        plgpu.copy_gmem_to_smem(w_gmem.at[tile], w_smem, bars.at[0])
        if pdl:
            plgpu.griddepcontrol_wait()
        plgpu.copy_gmem_to_smem(x_gmem.at[tile], x_smem, bars.at[1])
        plgpu.barrier_wait(bars.at[0])
        plgpu.barrier_wait(bars.at[1])
        if pdl and not early:
            plgpu.griddepcontrol_launch_dependents()
        x_smem[...] = x_smem[...] + 1e-3 * w_smem[...]
        plgpu.commit_smem()
        plgpu.copy_smem_to_gmem(x_smem, o_gmem.at[tile])
        plgpu.wait_smem_to_gmem(0)

    return plgpu.kernel(
        body, out_type=shape, grid=(PROGRAMS,), grid_names=("programs",),
        scratch_types=[plgpu.SMEM((rows, COLS), jnp.float32), plgpu.SMEM((rows, COLS), jnp.float32),
                       plgpu.Barrier(num_barriers=2)])


def make_chain(variant: str, kernels: int, steps: int, rows: int = 64):
    """jit(x, ws) -> x after ``steps`` iterations of ``kernels`` dependent calls."""
    import jax

    call = make_kernel(variant, rows)

    def step(_, x):
        for w in ws_holder[0]:
            x = call(x, w)
        return x

    ws_holder = [None]

    @jax.jit
    def run(x, ws):
        ws_holder[0] = ws
        return jax.lax.fori_loop(0, steps, step, x)

    return run


def time_variant(variant: str, kernels: int, steps: int, repeats: int, rows: int = 64) -> float:
    """Median seconds per kernel."""
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (PROGRAMS * rows, COLS), jnp.float32)
    ws = [jax.random.normal(jax.random.fold_in(key, j), x.shape, jnp.float32) for j in range(kernels)]
    run = make_chain(variant, kernels, steps, rows)
    out = jax.block_until_ready(run(x, ws))
    expected = x + 1e-3 * steps * sum(ws)
    err = float(jnp.max(jnp.abs(out - expected)))
    if not err < 1e-3:
        raise AssertionError(f"{variant}: wrong result (max error {err:.3g})")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run(x, ws))
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] / (steps * kernels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="triton,mgpu,mgpu_pdl,mgpu_pdl_early")
    parser.add_argument("--kernels", type=int, default=65, help="dependent kernels per iteration")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=64,
                        help="rows of each program's [rows, 128] fp32 tile (64: 4 MB of weights per kernel)")
    parser.add_argument("--out", default=None, help="append records to this results.jsonl")
    args = parser.parse_args(argv)
    import jax

    from benchmarks.record import append_records, make_record

    variants = [v for v in args.variants.split(",") if v]
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}; {args.kernels} kernels x "
          f"{args.steps} steps; {PROGRAMS} programs of [{args.rows}, {COLS}] fp32 "
          f"({PROGRAMS * args.rows * COLS * 4 / 2**20:g} MB of weights per kernel)", flush=True)
    results, records = {}, []
    for variant in variants:
        try:
            results[variant] = time_variant(variant, args.kernels, args.steps, args.repeats, args.rows)
        except Exception as err:  # a variant the installed jax cannot build is reported, not fatal
            print(f"{variant:16s} failed: {type(err).__name__}: {str(err)[:400]}", flush=True)
            continue
        base = results[next(iter(results))]
        print(f"{variant:16s} {results[variant] * 1e6:7.2f} us per kernel "
              f"({base / results[variant]:.2f}x {next(iter(results))})", flush=True)
        records.append(make_record(
            name="pdl_probe", backend=variant,
            shape={"programs": PROGRAMS, "tile": [args.rows, COLS], "kernels": args.kernels,
                   "steps": args.steps},
            dtype="float32", fwd_tokens_per_s=None, fwd_bwd_tokens_per_s=None,
            extra={"us_per_kernel": results[variant] * 1e6}))
    if args.out and records:
        append_records(records, args.out)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
