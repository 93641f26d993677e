"""Gated linear attention (GLA): `gla` over a sequence and `gla_step` for decoding.

    S_t = diag(exp(log_g_t)) S_{t-1} + k_t^T v_t,    o_t = scale * q_t S_t

Shapes: q, k [B, T, H, Dk]; v [B, T, H, Dv]; log_g [B, T, H, Dk] (GLA, one gate per key dim)
or [B, T, H] (one gate per head: simple GLA / Mamba2-SSD); states [B, H, Dk, Dv] float32.
Gates, cumulative sums and states are float32 whatever the input dtype.

Backends (`backend=`):
  "scan"     token-by-token `lax.scan` (reference.py): the ground truth, slow.
  "chunked"  chunk-parallel XLA (chunked.py): the default on CPU.
  "pallas_gpu"  Pallas Triton kernels (pallas_gpu.py): the default on GPU; interpret mode on CPU.
  "pallas_tpu"  Pallas Mosaic TPU kernels (pallas_tpu.py): the default on TPU (never run on a
             TPU so far); interpret mode on CPU.
  "auto"     picks per platform from `_AUTO_BACKEND`.

Under a device mesh set with `jax.set_mesh(mesh)`, the Pallas backends run per device via
`shard_map` over the batch ("data", "fsdp") and head ("tensor") mesh axes (sharded.py).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from kernels.gla.chunked import gla_chunked
from kernels.gla.pallas_gpu import gla_pallas_gpu
from kernels.gla.pallas_tpu import gla_pallas_tpu
from kernels.gla.reference import gla_reference, recurrence_step
from kernels.gla.sharded import ambient_mesh, shard_gla

__all__ = ["BACKENDS", "PALLAS_BACKENDS", "gla", "gla_step", "gla_chunked", "gla_reference",
           "shard_gla"]


def _scan_backend(q, k, v, log_g, *, scale, initial_state, chunk_size):
    del chunk_size  # token by token
    return gla_reference(q, k, v, log_g, scale=scale, initial_state=initial_state)


# name -> fn(q, k, v, log_g, *, scale, initial_state, chunk_size) -> (o, final_state).
BACKENDS: dict[str, Callable[..., tuple[jax.Array, jax.Array]]] = {
    "scan": _scan_backend,
    "chunked": gla_chunked,
    "pallas_gpu": gla_pallas_gpu,
    "pallas_tpu": gla_pallas_tpu,
}

# Backends that are one opaque kernel call to XLA: under an ambient mesh (`jax.set_mesh`) they
# run per device through shard_map over batch and heads (sharded.py).
PALLAS_BACKENDS = frozenset({"pallas_gpu", "pallas_tpu"})

# jax.default_backend() -> backend used by backend="auto": the Pallas kernels on accelerators,
# chunked XLA on CPU (where Pallas only runs in the slow interpret mode).
_AUTO_BACKEND: dict[str, str] = {"cpu": "chunked", "gpu": "pallas_gpu", "tpu": "pallas_tpu"}
_AUTO_FALLBACK = "chunked"


def _resolve_backend(backend: str) -> str:
    if backend == "auto":
        return _AUTO_BACKEND.get(jax.default_backend(), _AUTO_FALLBACK)
    if backend not in BACKENDS:
        valid = ", ".join(repr(name) for name in ["auto", *BACKENDS])
        raise ValueError(f"gla: unknown backend {backend!r}; valid backends: {valid}")
    return backend


def _check_float(name: str, x: jax.Array) -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"gla: {name} must be a floating-point array, got dtype {x.dtype}")


def _check_inputs(q, k, v, log_g, state, *, time_axis: bool, state_name: str) -> None:
    """Shape/dtype checks shared by `gla` (time_axis=True) and `gla_step` (no T axis)."""
    lead_names = ("B", "T", "H") if time_axis else ("B", "H")
    rank = len(lead_names) + 1
    layout = "[" + ", ".join(lead_names) + ", {}]"
    for name, x, last in (("q", q, "Dk"), ("k", k, "Dk"), ("v", v, "Dv")):
        if x.ndim != rank:
            raise ValueError(
                f"gla: {name} must have rank {rank} {layout.format(last)}, got shape {x.shape}"
            )
        _check_float(name, x)
    if k.shape != q.shape:
        raise ValueError(f"gla: k must have the shape of q {q.shape}, got {k.shape}")
    if v.shape[:-1] != q.shape[:-1]:
        dims = ", ".join(lead_names)
        raise ValueError(
            f"gla: v must match q on [{dims}] = {q.shape[:-1]}, got v shape {v.shape}"
        )
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise ValueError(
            f"gla: q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}"
        )
    if log_g.shape not in (q.shape, q.shape[:-1]):
        raise ValueError(
            f"gla: log_g must have shape {q.shape} (per key dim, {layout.format('Dk')}) or "
            f"{q.shape[:-1]} (one gate per head), got {log_g.shape}"
        )
    _check_float("log_g", log_g)
    if state is not None:
        B, H, Dk, Dv = q.shape[0], q.shape[-2], q.shape[-1], v.shape[-1]
        if state.shape != (B, H, Dk, Dv):
            raise ValueError(
                f"gla: {state_name} must have shape [B, H, Dk, Dv] = {(B, H, Dk, Dv)}, "
                f"got {state.shape}"
            )
        _check_float(state_name, state)


def gla(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    log_g: jax.Array,
    *,
    scale: float | None = None,
    initial_state: jax.Array | None = None,
    backend: str = "auto",
    chunk_size: int = 64,
) -> tuple[jax.Array, jax.Array]:
    """Gated linear attention over a whole sequence.

    Args:
      q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; one shared dtype (e.g. bf16 or float32).
      log_g: log forget gate (<= 0), float; [B, T, H, Dk] or [B, T, H] (broadcast over Dk).
      scale: output multiplier; default Dk ** -0.5.
      initial_state: [B, H, Dk, Dv] state before token 0 (cast to float32); None = zeros.
      backend: "auto", "scan", "chunked" (see module doc).
      chunk_size: tokens per chunk for chunked backends.

    Returns:
      o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32.

    Differentiable with respect to q, k, v, log_g and initial_state.
    """
    _check_inputs(q, k, v, log_g, initial_state, time_axis=True, state_name="initial_state")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"gla: chunk_size must be a positive int, got {chunk_size!r}")
    name = _resolve_backend(backend)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    fn = BACKENDS[name]
    mesh = ambient_mesh() if name in PALLAS_BACKENDS else None
    if mesh is not None:  # XLA cannot partition a Pallas call: run it per device (sharded.py)
        fn = shard_gla(fn, mesh)
    return fn(q, k, v, log_g, scale=scale, initial_state=initial_state, chunk_size=chunk_size)


def gla_step(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    log_g: jax.Array,
    state: jax.Array,
    *,
    scale: float | None = None,
) -> tuple[jax.Array, jax.Array]:
    """One decode step of the recurrence.

    Args:
      q, k: [B, H, Dk]; v: [B, H, Dv]; log_g: [B, H, Dk] or [B, H].
      state: [B, H, Dk, Dv] (float32).
      scale: output multiplier; default Dk ** -0.5.

    Returns:
      o [B, H, Dv] in q.dtype, new_state [B, H, Dk, Dv] float32.
    """
    if state is None:
        raise ValueError("gla_step: state must have shape [B, H, Dk, Dv], got None")
    _check_inputs(q, k, v, log_g, state, time_axis=False, state_name="state")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    o, new_state = recurrence_step(state.astype(jnp.float32), q, k, v, log_g, scale)
    return o.astype(q.dtype), new_state
