"""Device mesh, logical-axis rules, placement of parameters and batches, multi-host start-up.

Mesh axes are always ``("data", "fsdp", "tensor")`` (size 1 where unused); sizes come from
``config.mesh`` and one of them may be -1 (= the remaining devices). Parameters carry logical
axis names (``nnx.Param`` metadata ``out_sharding``, e.g. ``("embed", "heads")``); the rules in
``config.mesh.logical_axis_rules`` map each name to a mesh axis. A logical name may appear in
several rules (``("batch", "data"), ("batch", "fsdp")``: the batch is split over both axes, as
FSDP is data parallelism with sharded parameters). A dimension stays replicated when its rule
maps to nothing, when the mesh axis is already used by another dimension of the same array, or
when the dimension is not divisible by the mesh axis size (e.g. the 1027-way vocabulary).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Mapping, Optional, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from small_e_jax.config import ConfigError, MeshConfig

MESH_AXES = ("data", "fsdp", "tensor")

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- multi-host


def should_initialize_distributed(mode: str, env: Mapping[str, str] = os.environ) -> bool:
    """Whether to call ``jax.distributed.initialize()``: ``on``/``off``, or ``auto`` = when the
    environment describes several processes (an explicit ``JAX_COORDINATOR_ADDRESS``, a TPU
    slice with several workers, or a SLURM job with several tasks)."""
    if mode in ("on", "off"):
        return mode == "on"
    if env.get("JAX_COORDINATOR_ADDRESS"):
        return True
    if len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1:
        return True
    return int(env.get("SLURM_NTASKS", "1") or 1) > 1


def distributed_arguments(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """``jax.distributed.initialize`` arguments given explicitly by the environment.

    JAX reads ``JAX_COORDINATOR_ADDRESS`` itself and detects TPU/SLURM/MPI clusters; on plain
    machines (several processes on one or more hosts by hand) the process count and index
    come from ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``."""
    args: dict[str, Any] = {}
    if env.get("JAX_COORDINATOR_ADDRESS"):
        args["coordinator_address"] = env["JAX_COORDINATOR_ADDRESS"]
    for name, key in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
        if env.get(key, "") != "":
            try:
                args[name] = int(env[key])
            except ValueError:
                raise ValueError(f"{key}={env[key]!r} is not an integer") from None
    return args


def initialize_distributed(mode: str = "auto", env: Mapping[str, str] = os.environ) -> None:
    """Start JAX's multi-process runtime when needed; must run before any other JAX call."""
    if should_initialize_distributed(mode, env):
        # CPU processes exchange collectives through gloo (the default CPU client has none);
        # this setting only concerns the CPU backend.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(**distributed_arguments(env))
        log.info("jax.distributed: process %d of %d, %d local / %d global devices",
                 jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count())


# --------------------------------------------------------------------------- mesh


def mesh_shape(config: MeshConfig, n_devices: int) -> tuple[int, int, int]:
    """(data, fsdp, tensor) sizes with -1 resolved; their product must equal ``n_devices``."""
    sizes = [config.data, config.fsdp, config.tensor]
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if n_devices % known:
            raise ConfigError(f"mesh: {n_devices} devices are not divisible by the fixed axis sizes "
                              f"(product {known}) of mesh {dict(zip(MESH_AXES, sizes))}")
        sizes[sizes.index(-1)] = n_devices // known
    if math.prod(sizes) != n_devices:
        raise ConfigError(f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, "
                          f"but {n_devices} are available")
    return tuple(sizes)  # type: ignore[return-value]


def make_mesh(config: MeshConfig, devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A ``("data", "fsdp", "tensor")`` mesh over ``devices`` (default: all global devices)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(config, len(devices))
    try:  # topology-aware order on TPU/GPU
        from jax.experimental import mesh_utils
        grid = mesh_utils.create_device_mesh(shape, devices)
    except Exception:  # noqa: BLE001 - CPU / odd device counts: plain order is fine
        grid = np.array(devices).reshape(shape)
    return Mesh(grid, MESH_AXES)


# --------------------------------------------------------------------------- rules


def _rule_map(rules: Sequence[Sequence[Any]]) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for name, axis in rules:
        table.setdefault(name, [])
        if axis is not None:
            table[name].append(axis)
    return table


def logical_to_spec(axes: Sequence[Optional[str]], shape: Sequence[int], mesh: Mesh,
                    rules: Sequence[Sequence[Any]]) -> P:
    """Logical names of one array's dimensions -> a ``PartitionSpec`` on ``mesh`` (see module doc)."""
    table, used, spec = _rule_map(rules), set(), []
    for name, size in zip(axes, shape):
        chosen = []
        for axis in table.get(name, []) if name is not None else []:
            n = mesh.shape[axis]
            if axis in used or n == 1 or size % (math.prod(mesh.shape[a] for a in chosen) * n):
                continue
            chosen.append(axis)
        used.update(chosen)
        spec.append(None if not chosen else chosen[0] if len(chosen) == 1 else tuple(chosen))
    return P(*spec)


def param_shardings(params: nnx.State, mesh: Mesh, rules: Sequence[Sequence[Any]]) -> nnx.State:
    """A State of the same structure whose leaves are ``NamedSharding``s (from each Variable's
    ``out_sharding`` logical names; variables without names are replicated)."""

    def one(variable: nnx.Variable) -> nnx.Variable:
        value = variable.get_value()
        axes = variable.get_metadata().get("out_sharding") or (None,) * len(value.shape)
        return variable.replace(NamedSharding(mesh, logical_to_spec(axes, value.shape, mesh, rules)))

    return jax.tree.map(one, params, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_axes(mesh: Mesh, rules: Sequence[Sequence[Any]]) -> tuple[str, ...]:
    """The mesh axes the batch dimension is split over (rules for the logical name ``batch``)."""
    return tuple(a for a in _rule_map(rules).get("batch", []) if a in mesh.shape)


def batch_sharding(mesh: Mesh, rules: Sequence[Sequence[Any]]) -> NamedSharding:
    """Split dimension 0 over the batch axes, replicate the rest."""
    axes = batch_axes(mesh, rules)
    return NamedSharding(mesh, P(axes if axes else None))


def global_batch(local: Mapping[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """This process's rows of every field -> global arrays (rows of all processes, in process
    order). Each process must pass the same shapes; the global batch is ``process_count`` times
    the local one."""
    n_shards = math.prod(sharding.mesh.shape[a] for a in batch_axes_of(sharding))
    out = {}
    for key, value in local.items():
        value = np.asarray(value)
        rows = value.shape[0] * jax.process_count()
        if rows % n_shards:
            raise ValueError(f"batch field {key!r}: global batch size {rows} is not divisible by the "
                             f"{n_shards} batch shards of the mesh {dict(sharding.mesh.shape)}")
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out


def batch_axes_of(sharding: NamedSharding) -> tuple[str, ...]:
    first = sharding.spec[0] if len(sharding.spec) else None
    return () if first is None else (first,) if isinstance(first, str) else tuple(first)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())
