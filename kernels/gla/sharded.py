"""Run a GLA backend under a device mesh with `shard_map`: batch and heads split, no traffic.

GLA is independent across batch rows and heads, so each device runs the kernel on its own
[B / n_batch, T, H / n_heads, D] slice with no communication. Without this, XLA's SPMD
partitioner cannot split a Pallas custom call and would all-gather its inputs onto every
device (right, but every device then does all the work).

`kernels.gla.gla` applies `shard_gla` by itself to the Pallas backends when a mesh is set
with `jax.set_mesh(mesh)` (JAX's ambient mesh) around the traced code, so the model needs no
changes. Mesh axes: BATCH_AXES split the batch, HEAD_AXES split the heads (the names of
small_e_jax.sharding.MESH_AXES); an axis is used only when its size divides the dimension
(with the axes before it), and any other mesh axis leaves the call replicated over it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

BATCH_AXES: tuple[str, ...] = ("data", "fsdp")
HEAD_AXES: tuple[str, ...] = ("tensor",)

GlaFn = Callable[..., tuple[jax.Array, jax.Array]]


def _split_axes(mesh_shape: dict[str, int], names: Sequence[str], size: int
                ) -> tuple[str, ...] | None:
    """Axes of `names` (size > 1, in order) whose product divides `size`; None if none."""
    chosen, prod = [], 1
    for name in names:
        n = mesh_shape.get(name, 1)
        if n > 1 and size % (prod * n) == 0:
            chosen.append(name)
            prod *= n
    return tuple(chosen) or None


def _auto_axes(mesh) -> dict[str, int]:
    """Mesh axes that shard_map may take (not already manual, e.g. inside another shard_map)."""
    manual = jax.sharding.AxisType.Manual
    types = getattr(mesh, "axis_types", None) or (None,) * len(mesh.axis_names)
    return {a: mesh.shape[a] for a, t in zip(mesh.axis_names, types) if t != manual}


def shard_gla(fn: GlaFn, mesh, *, batch_axes: Sequence[str] = BATCH_AXES,
              head_axes: Sequence[str] = HEAD_AXES) -> GlaFn:
    """`fn` (a `kernels.gla.BACKENDS` function) run per device under `mesh` (a Mesh or
    AbstractMesh).

    The returned function has the backend signature (q, k, v, log_g, *, scale, initial_state,
    chunk_size) with the shapes of `kernels.gla.gla`: q, k [B, T, H, Dk], v [B, T, H, Dv],
    log_g [B, T, H, Dk] or [B, T, H], initial_state [B, H, Dk, Dv] or None; it returns
    (o [B, T, H, Dv], final_state [B, H, Dk, Dv]) sharded like its inputs.
    """

    def sharded(q, k, v, log_g, *, scale, initial_state, chunk_size):
        B, _, H = q.shape[:3]
        axes = _auto_axes(mesh)
        b_ax = _split_axes(axes, batch_axes, B)
        h_ax = _split_axes(axes, head_axes, H)
        if b_ax is None and h_ax is None:
            return fn(q, k, v, log_g, scale=scale, initial_state=initial_state,
                      chunk_size=chunk_size)
        x_spec = P(b_ax, None, h_ax, None)
        g_spec = x_spec if log_g.ndim == 4 else P(b_ax, None, h_ax)
        s_spec = P(b_ax, h_ax, None, None)
        if initial_state is None:
            initial_state = jnp.zeros((B, H, q.shape[-1], v.shape[-1]), jnp.float32)

        def local(q, k, v, log_g, s0):
            return fn(q, k, v, log_g, scale=scale, initial_state=s0, chunk_size=chunk_size)

        # check_vma=False: pallas_call has no varying-manual-axes rule on every jax version.
        return jax.shard_map(local, mesh=mesh, in_specs=(x_spec, x_spec, x_spec, g_spec, s_spec),
                             out_specs=(x_spec, s_spec), check_vma=False)(
            q, k, v, log_g, initial_state)

    return sharded


def ambient_mesh():
    """JAX's ambient mesh (`jax.set_mesh`) if it has an axis of size > 1 we may split, else None."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or all(n == 1 for n in _auto_axes(mesh).values()):
        return None
    return mesh
