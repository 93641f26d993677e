"""Child process of test_pallas_sharded.py (needs XLA_FLAGS=--xla_force_host_platform_device_count=8):
a Pallas GLA backend (interpret mode) under a data x fsdp x tensor = 2 x 2 x 2 mesh, through
`shard_gla` and through `gla` under `jax.set_mesh`, against the unsharded scan reference.
argv: backend, comma-separated paths ("explicit", "ambient"). Prints one JSON line: the largest relative errors, and whether the program was partitioned."""

import functools
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from kernels.gla import BACKENDS, gla, shard_gla
from tests.kernels.test_gla import GRAD_NAMES, make_inputs

FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def loss_grads(fn, w1, w2):
    def loss(q, k, v, g, s0):
        o, s = fn(q, k, v, g, scale=0.25, initial_state=s0, chunk_size=32)
        return jnp.sum(o.astype(jnp.float32) * w1) + jnp.sum(s * w2), (o, s)

    return jax.grad(loss, argnums=(0, 1, 2, 3, 4), has_aux=True)


def rel(a, e) -> float:
    a, e = np.asarray(a, np.float32), np.asarray(e, np.float32)
    return float(np.max(np.abs(a - e)) / (np.max(np.abs(e)) + 1e-30))


def errors(got, ref) -> dict:
    (g, (o, s)), (g_r, (o_r, s_r)) = got, ref
    out = {"o": rel(o, o_r), "state": rel(s, s_r)}
    out.update({f"d{n}": rel(a, e) for n, a, e in zip(GRAD_NAMES, g, g_r)})
    return out


def main(backend: str, paths: list[str]) -> None:
    assert jax.device_count() == 8, jax.device_count()
    mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"))
    B, T, H, Dk, Dv = 4, 40, 2, 16, 16
    q, k, v, g, s0 = make_inputs(0, B, T, H, Dk, Dv)
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal(v.shape, dtype=np.float32)
    w2 = rng.standard_normal(s0.shape, dtype=np.float32)
    ref = jax.jit(loss_grads(functools.partial(gla, backend="scan"), w1, w2))(q, k, v, g, s0)

    x_sh = NamedSharding(mesh, P(("data", "fsdp"), None, "tensor", None))
    s_sh = NamedSharding(mesh, P(("data", "fsdp"), "tensor", None, None))
    args = [jax.device_put(x, x_sh) for x in (q, k, v, g)] + [jax.device_put(s0, s_sh)]

    result = {}
    if "explicit" in paths:
        explicit = jax.jit(loss_grads(shard_gla(BACKENDS[backend], mesh), w1, w2),
                           compiler_options=FAST)
        got = explicit(*args)
        result["explicit"] = errors(got, ref)
        result["explicit_o_sharding"] = str(got[1][0].sharding.spec)
    if "ambient" in paths:
        with jax.set_mesh(mesh):
            ambient = jax.jit(loss_grads(functools.partial(gla, backend=backend), w1, w2),
                              compiler_options=FAST)
            hlo = ambient.lower(*args).as_text()
            got = ambient(*args)
        result["ambient"] = errors(got, ref)
        result["ambient_o_sharding"] = str(got[1][0].sharding.spec)
        result["ambient_dq_sharding"] = str(got[0][0].sharding.spec)
        # shard_map shows up as manual-sharding conversions around the kernel.
        result["ambient_partitioned"] = ("SPMDFullToShardShape" in hlo
                                         or "sdy.manual_computation" in hlo)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2].split(","))
