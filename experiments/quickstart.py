"""The README's main job. Today: the smallest end-to-end thing that exists.

    python -m experiments.quickstart [--config PRESET_OR_YAML] [key=value ...]

The data pipeline, trainer and inference are later issues; until they land this resolves the
config (default: the ``tiny`` preset), builds one GLA layer's worth of random inputs at that
model's shape (``[B, T, H, Dk]`` from ``model.d_model``, ``model.heads``, ``expand_k/v``), runs
them through every kernel backend on this machine, checks each one's output, final state and
gradients against the token-by-token reference, and prints agreement and throughput.
"""

from __future__ import annotations

import sys
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from kernels import gla as gla_kernels
from small_e_jax.config import ConfigError, config_to_yaml, parse_cli

BATCH, FRAMES = 4, 300  # 4 utterances of 4 s at 75 frames/s


def layer_inputs(d_model: int, heads: int, expand_k: float, expand_v: float, seed: int = 0):
    """Random q, k, v [B, T, H, D] and Small-E-style gates logsigmoid(x) / 16, all float32."""
    dk = int(d_model * expand_k) // heads
    dv = int(d_model * expand_v) // heads
    keys = jax.random.split(jax.random.key(seed), 4)
    q = jax.random.normal(keys[0], (BATCH, FRAMES, heads, dk))
    k = jax.random.normal(keys[1], (BATCH, FRAMES, heads, dk))
    v = jax.random.normal(keys[2], (BATCH, FRAMES, heads, dv))
    log_g = jax.nn.log_sigmoid(jax.random.normal(keys[3], (BATCH, FRAMES, heads, dk))) / 16.0
    return q, k, v, log_g


def run(argv: Sequence[str]) -> int:
    try:
        config = parse_cli(["--config", "tiny", *argv] if "--config" not in " ".join(argv) else argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    m = config.model
    print(f"config {config.name!r} (model section):\n{config_to_yaml(config).split('data:')[0]}")
    inputs = layer_inputs(m.d_model, m.heads, m.expand_k, m.expand_v, config.trainer.seed)
    cotangent = jax.random.normal(jax.random.key(1), inputs[2].shape)

    def loss(backend):
        def f(q, k, v, log_g):
            o, state = gla_kernels.gla(q, k, v, log_g, backend=backend, chunk_size=m.gla_chunk_size)
            return jnp.sum(o * cotangent) + jnp.sum(state)
        return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3)))

    ref_value, ref_grads = loss("scan")(*inputs)
    print(f"device {jax.devices()[0].device_kind}; one GLA layer, B={BATCH} T={FRAMES} "
          f"H={m.heads} Dk={inputs[0].shape[-1]} Dv={inputs[2].shape[-1]}")
    worst = 0.0
    for backend in gla_kernels.BACKENDS:
        fn = loss(backend)
        value, grads = jax.block_until_ready(fn(*inputs))
        start = time.perf_counter()
        jax.block_until_ready(fn(*inputs))
        seconds = time.perf_counter() - start
        err = max(float(jnp.max(jnp.abs(g - r)) / (jnp.max(jnp.abs(r)) + 1e-12))
                  for g, r in zip(grads, ref_grads))
        err = max(err, abs(float(value - ref_value)) / (abs(float(ref_value)) + 1e-12))
        worst = max(worst, err)
        print(f"  {backend:>8}: max relative error vs reference {err:.1e} (value and 4 gradients), "
              f"fwd+bwd {BATCH * FRAMES / seconds / 1e3:,.0f} ktok/s")
    ok = bool(np.isfinite(worst) and worst < 1e-3)
    print("all backends agree with the reference" if ok else "MISMATCH against the reference")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
