"""Registers, spills and shared memory of the pallas_gpu kernels on sm_90, without a GPU.

    python -m benchmarks.kernels.triton_resources --triton-path /tmp/tritonsite      # Small-E
    python -m benchmarks.kernels.triton_resources --triton-path /tmp/tritonsite \\
        --shape 8,1024,8,64,64 --tiles 64x64x64x1
    python -m benchmarks.kernels.triton_resources --triton-path /tmp/tritonsite \\
        --tiles :no_factored_chunk        # the A/B baseline's kernels
    python -m benchmarks.kernels.triton_resources --triton-path /tmp/tritonsite \\
        --tiles :fused_out --forward-only # the forward as an inference call runs it
    python -m benchmarks.kernels.triton_resources --triton-path /tmp/tritonsite \\
        --decode-block persistent         # the fused GLA block decode step (block_step.py)

Lowers forward+backward for CUDA (jax, CPU), keeps the Triton IR of each kernel, then compiles
it to an sm_90 cubin in a child process with a standalone Triton (pip package `triton`, the
version of the GPU image, 3.6; not a project dependency: install it elsewhere, e.g.
`pip install --no-deps --target /tmp/tritonsite triton==3.6.0`) and prints cuobjdump's resource
usage: REG (registers per thread), STACK (bytes of local memory per thread: spills), Triton's
shared-memory size (H100/H200 limit: 227 KB per block), and whether the PTX uses wgmma.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

_CHILD = r"""
import glob, json, os, re, subprocess, sys
sys.path.insert(0, sys.argv[1])
import triton
from triton.backends.compiler import GPUTarget
folder = sys.argv[2]
meta = json.load(open(os.path.join(folder, "kernels.json")))
cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
for k in meta:
    c = triton.compile(os.path.join(folder, k["file"]), target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": k["num_warps"], "num_stages": k["num_stages"]})
    cubin = os.path.join(folder, k["file"] + ".cubin")
    open(cubin, "wb").write(c.asm["cubin"])
    usage = subprocess.run([cuobjdump, "--dump-resource-usage", cubin], capture_output=True,
                           text=True).stdout
    m = re.search(r"REG:(\d+) STACK:(\d+)", usage)
    mma = "wgmma" if "wgmma" in c.asm["ptx"] else ("mma.sync" if "mma.sync" in c.asm["ptx"] else "-")
    print(json.dumps({"kernel": k["name"], "num_warps": k["num_warps"],
                      "num_stages": k["num_stages"], "regs": int(m.group(1)),
                      "stack_bytes": int(m.group(2)), "shared_bytes": c.metadata.shared,
                      "mma": mma}), flush=True)
"""


def capture_triton(lower_for_cuda, folder: Path) -> None:
    """Run ``lower_for_cuda()`` (-> the StableHLO text of a jitted function lowered for CUDA),
    keeping the Triton IR of each Pallas kernel it builds; write them and kernels.json."""
    from jax._src.pallas.triton import pallas_call_registration as registration

    modules = []
    lower = registration.lowering.lower_jaxpr_to_triton_module

    def keep(*args, **kwargs):
        result = lower(*args, **kwargs)
        modules.append(result.module.operation.get_asm())
        return result

    registration.lowering.lower_jaxpr_to_triton_module = keep
    try:
        text = lower_for_cuda()
    finally:
        registration.lowering.lower_jaxpr_to_triton_module = lower
    params = re.findall(r"num_stages = (\d+) : i32, num_warps = (\d+) : i32", text)
    if len(params) != len(modules):
        raise RuntimeError(f"{len(modules)} Triton modules but {len(params)} kernel calls")
    meta = []
    for i, (module, (stages, warps)) in enumerate(zip(modules, params)):
        name = re.search(r"tt.func (?:public )?@(\w+)", module).group(1)
        (folder / f"k{i}_{name}.ttir").write_text(module)
        meta.append({"file": f"k{i}_{name}.ttir", "name": name, "num_warps": int(warps),
                     "num_stages": int(stages)})
    (folder / "kernels.json").write_text(json.dumps(meta))


def dump_kernels(shape: tuple[int, ...], dtype: str, tiles: dict, folder: Path,
                 forward_only: bool = False) -> None:
    """Lower pallas_gpu forward+backward (``forward_only``: the forward alone, as a call that
    takes no gradient runs it) for CUDA; write each kernel's Triton IR to `folder`."""
    import jax
    import jax.numpy as jnp

    from kernels.gla.pallas_gpu import gla_pallas_gpu

    def lower_for_cuda() -> str:
        B, T, H, Dk, Dv = shape
        dt = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
        sds = jax.ShapeDtypeStruct
        args = (sds((B, T, H, Dk), dt), sds((B, T, H, Dk), dt), sds((B, T, H, Dv), dt),
                sds((B, T, H, Dk), jnp.float32), sds((B, H, Dk, Dv), jnp.float32))

        def loss(q, k, v, g, s0):
            o, s = gla_pallas_gpu(q, k, v, g, scale=Dk**-0.5, initial_state=s0, interpret=False,
                                  **tiles)
            return jnp.sum(o.astype(jnp.float32)) + jnp.sum(s)

        fn = loss if forward_only else jax.grad(loss, argnums=(0, 1, 2, 3, 4))
        return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()

    capture_triton(lower_for_cuda, folder)


def dump_decode_block(options: str, dtype: str, batch: int, folder: Path,
                      preset: Optional[str] = None) -> None:
    """The fused GLA block decode step with ``model.decode_kernel_options`` ``options`` at
    ``batch`` real rows: of the 64M model's block (d 512, 4 heads, K 128, V 256, F 682), or with
    ``preset``, of every distinct GLA block shape of that preset's model (PACA's PosNet too)."""
    import jax
    import jax.numpy as jnp

    from benchmarks.kernels.block_step_bench import make_block
    from kernels.gla import block_step

    if preset is None:
        blocks = [make_block(options, dtype)]
    else:
        from flax import nnx

        from small_e_jax.config import load_config
        from small_e_jax.model.small_e import SmallE

        config = load_config(preset, [f"model.decode_kernel_options={options}", f"model.dtype={dtype}"])
        model = SmallE(config.model, rngs=nnx.Rngs(0))
        model.eval()
        candidates = list(model.blocks) + [getattr(model.cross_attention, "pos_net", None)]
        blocks, seen = [], set()
        for block in candidates:
            dims = block.fused_dims() if block is not None else None
            if dims is not None and dims not in seen:
                seen.add(dims)
                blocks.append(block)
    sds = jax.ShapeDtypeStruct

    def lower_for_cuda() -> str:
        texts = []
        for block in blocks:
            dims, m = block.fused_dims(), block.mixer
            weights = jax.tree.map(lambda a: sds(a.shape, a.dtype), block.fused_weights())
            fn = jax.jit(lambda x, s, w, dims=dims: block_step.gla_block_step(x, s, w, dims, interpret=False))
            x = sds((block_step.padded_rows(batch, dims.small_rows), dims.d), jnp.dtype(dtype))
            state = sds((batch, m.heads, m.head_k, m.head_v), jnp.float32)
            texts.append(fn.trace(x, state, weights).lower(lowering_platforms=("cuda",)).as_text())
        return "\n".join(texts)

    capture_triton(lower_for_cuda, folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triton-path", required=True,
                        help="folder holding the standalone `triton` package")
    parser.add_argument("--shape", default="8,4096,4,128,256", help="B,T,H,Dk,Dv")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--tiles", default="",
                        help="BVxBK[xBVo[xS]][:FLAG...] as in gla_bench --pallas-tiles, e.g. "
                             "64x64x64x1 or :no_factored_chunk")
    parser.add_argument("--forward-only", action="store_true",
                        help="the forward alone (no gradient): the primal path, where fused_out's "
                             "kernel runs")
    parser.add_argument("--decode-block", default=None, metavar="OPTIONS",
                        help="instead: the fused GLA block decode step (kernels/gla/block_step.py) "
                             "with these model.decode_kernel_options ('' = the default kernels)")
    parser.add_argument("--batch", type=int, default=1, help="with --decode-block: real rows")
    parser.add_argument("--preset", default=None,
                        help="with --decode-block: every GLA block shape of this preset's model "
                             "(default: the 64M model's block)")
    args = parser.parse_args(argv)
    shape = tuple(int(x) for x in args.shape.split(","))
    from kernels.gla.pallas_gpu import variant_kwargs

    tiles = variant_kwargs(args.tiles)
    with tempfile.TemporaryDirectory() as folder:
        if args.decode_block is not None:
            dump_decode_block(args.decode_block, args.dtype, args.batch, Path(folder), args.preset)
        else:
            dump_kernels(shape, args.dtype, tiles, Path(folder), forward_only=args.forward_only)
        # A child process: the standalone Triton must not meet jaxlib's bundled one.
        done = subprocess.run([sys.executable, "-c", _CHILD, args.triton_path, folder],
                              env=dict(os.environ, PYTHONPATH=""), text=True)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
