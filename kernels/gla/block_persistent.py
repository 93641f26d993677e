"""One decode step of a whole GLA block as ONE persistent Pallas Triton kernel (GPU).

`block_step.py` runs the block as five kernels, split where every program needs the whole of
the previous result. On an H200 each of those kernels costs 4-9 µs at batch 1 although it
moves 1-3 MB: each is a launch, then a wait for its weights from HBM, then a few µs of work
(benchmarks/RESULTS.md, tenth GPU session). Here one kernel of P co-resident programs (P <= the GPU's
SM count, one per SM) runs the same five phases with a grid-wide barrier between them, and
every program issues the loads of ALL its weight tiles (and its state tiles) before the first
phase: the ~7 MB of a block stream in once, overlapped with the phases, and a phase boundary
costs a barrier instead of a launch.

Phases (the work items of a phase are spread over the programs; `make_plan`):
  0  `in_proj` [N / 32]  LN1 + q|k|v|g;   `gate` [B, H]  LN1 + the low-rank forget gate
  1  `recurrence` [B, H, Dv / TV]  S = a S + k^T v in place, o = scale q S
  2  `out_proj` [d / 16]  RMSNorm_V(o) * w * silu(g) per head, W_o, + x
  3  `mlp_in` [F / 16]  LN2, W_in, silu(a) * b
  4  `mlp_out` [d / 16]  W_out + b_out + x
Intermediates (q|k|v|g, the gate, o, the mid-block residual, the hidden units) go through
global scratch buffers (extra outputs of the call, discarded), read after the barrier with
volatile loads (L2, not the SM's incoherent L1).

The barrier: each program adds 1 to the phase's counter (an acq_rel GPU-scope atomic after a
CTA barrier, so the program's stores are visible first) and polls it with atomic reads until
it reaches P. The counters live in a zero-initialised int32 constant that the kernel returns to
zero before it exits (the last program out resets them), so every call finds zeros without a
memset kernel. Programs must all be resident at once, hence P <= SM count; a barrier that does
not complete in ~2^22 polls gives up and the block's output is NaN rather than a hung GPU.

CPU (interpret mode, tests): programs run one after another, so a barrier cannot wait (and
the interpreter cannot discharge a polling loop over a ref). There the kernel is "staged": a
grid of (5 phases, P) whose rows run in order, each program doing only the phase of its row —
the same phase code without the barriers. The barrier and counter-reset code therefore runs
only compiled: the CUDA lowering test builds it on the CPU, the gpu-marked tests run it.

Numerics as `block_step` (float32 LayerNorms, gate, state and accumulation; operands and
stored intermediates in the compute dtype); parity is tested against `LCLMBlock.step` like the
five-kernel path (tests/kernels/test_block_persistent.py).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from kernels.block_dims import BlockDims
from kernels.gla.block_ops import ln_stats, log_sigmoid, mm, round_dtype, silu, swiglu_paired, whole
from kernels.gla.pallas_gpu import _use_interpret

_F32 = jnp.float32
PHASES = (("in_proj", "gate"), ("recurrence",), ("out_proj",), ("mlp_in",), ("mlp_out",))
DEFAULT_PROGRAMS = 128  # when no GPU is visible (lowering on a CPU host): an H100/H200 has 132 SMs
ABLATIONS = frozenset({"late_loads", "no_barriers", "no_phases"})  # for benchmarks (see below)
MAX_POLLS = 1 << 22  # ~seconds of polling: a barrier that never completes gives NaN, not a hang


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """``tasks`` work items; item t runs on program (offset + t) % P, in round t // P."""

    tasks: int
    offset: int
    rounds: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """``roles``: the distinct sets of (stage, round) items programs have; ``role_of[p]``."""

    programs: int
    stages: tuple[tuple[str, StagePlan], ...]
    roles: tuple[tuple[tuple[str, int], ...], ...]
    role_of: tuple[int, ...]

    def stage(self, name: str) -> StagePlan:
        return dict(self.stages)[name]


def stage_sizes(dims: BlockDims, batch: int) -> dict[str, tuple[int, int]]:
    """Per stage: (work items, bytes each item prefetches) at ``batch`` real rows (bf16 weights)."""
    d, H, Dk, Dv, T = dims.d, dims.heads, dims.head_k, dims.head_v, dims.tile
    TV = dims.value_tile
    return {
        "in_proj": (dims.proj_dim // dims.proj_tile, dims.proj_tile * d * 2),
        "gate": (batch * H, dims.rank * (d + Dk) * 4),
        "recurrence": (batch * H * (Dv // TV), Dk * TV * 4),
        "out_proj": (d // T, T * dims.value_dim * 2),
        "mlp_in": (dims.hidden_padded // T, 2 * T * d * 2),
        "mlp_out": (d // T, T * dims.hidden_padded * 2),
    }


def make_plan(dims: BlockDims, batch: int, programs: Optional[int]) -> Plan:
    """Spread each stage's items over P programs so that the bytes each program prefetches are
    balanced (greedy: largest stages first, each at the offset whose window is least loaded).
    P = ``programs`` or, when None, the largest stage's item count."""
    sizes = stage_sizes(dims, batch)
    P = programs or max(n for n, _ in sizes.values())
    load = np.zeros(P, np.int64)
    plans = {}
    for name, (n, nbytes) in sorted(sizes.items(), key=lambda kv: -kv[1][0] * kv[1][1]):
        rounds = -(-n // P)
        per_program = np.zeros(P, np.int64)
        np.add.at(per_program, np.arange(n) % P, nbytes)  # offset 0; rolled for the others
        costs = [int((load + np.roll(per_program, off)).max()) for off in range(P)]
        offset = int(np.argmin(costs))
        load += np.roll(per_program, offset)
        plans[name] = StagePlan(n, offset, rounds)
    signatures = []
    for p in range(P):
        signatures.append(tuple(sorted(
            (name, r) for name, st in plans.items() for r in range(st.rounds)
            if (p - st.offset) % P + r * P < st.tasks)))
    roles = tuple(sorted(set(signatures)))
    return Plan(P, tuple((name, plans[name]) for name in sizes), roles,
                tuple(roles.index(sig) for sig in signatures))


def gpu_programs() -> Optional[int]:
    """The SM count of the first GPU (programs that can all be resident), None without a GPU."""
    try:
        devices = jax.devices("gpu")
    except RuntimeError:
        return None
    return getattr(devices[0], "core_count", None) if devices else None


# ----------------------------------------------------------------------------------------------
# the kernel


def _cols(start, size):
    """size entries from start (a multiple of size; hinted to Triton when traced)."""
    return pl.ds(start if isinstance(start, int) else pl.multiple_of(start, size), size)


def _scratch(ref, idx):
    """A load of an intermediate another program stored in this call: volatile, i.e. from L2,
    never the SM's own L1 (which is not coherent across SMs). (Pallas 0.10-0.11 cannot emit
    `.cg`: its lowering looks the modifier up without the dot.)"""
    return plgpu.load(ref.at[idx], volatile=True)


def _layer_norm(x, scale, bias, eps, dtype):
    """block_step's LayerNorm of values (its kernels load scale and bias from refs mid-way;
    this kernel has them prefetched)."""
    x = x.astype(_F32)
    mean, rstd = ln_stats(x, eps)
    return ((x - mean) * rstd * scale[None, :] + bias[None, :]).astype(dtype)


def _grid_barrier(sync_ref, k: int, programs: int, failed):
    """Wait until all ``programs`` reached barrier ``k``; returns ``failed`` | (gave up)."""
    plgpu.debug_barrier()  # every warp's stores are issued before this program's arrival
    plgpu.atomic_add(sync_ref, jnp.int32(k), jnp.int32(1))  # acq_rel, GPU scope

    def waiting(carry):
        count, polls = carry
        return (count < programs) & (polls < MAX_POLLS)

    def poll(carry):
        return plgpu.atomic_add(sync_ref, jnp.int32(k), jnp.int32(0)), carry[1] + 1

    count, _ = jax.lax.while_loop(waiting, poll, (jnp.int32(0), jnp.int32(0)))
    plgpu.debug_barrier()  # no warp reads the phase's results before the arrival count is seen
    return failed | (count < programs)


def _exit(sync_ref, programs: int, n_barriers: int):
    """The last program out returns the counters to zero (everyone has passed every barrier)."""
    plgpu.debug_barrier()
    done = plgpu.atomic_add(sync_ref, jnp.int32(n_barriers), jnp.int32(1))

    @pl.when(done == programs - 1)
    def _():
        for k in range(n_barriers + 1):
            plgpu.atomic_xchg(sync_ref, jnp.int32(k), jnp.int32(0))


def _persistent_kernel(x_ref, s1_ref, b1_ref, wp_ref, wd_ref, wu_ref, bu_ref, st_ref, nw_ref, wo_ref,
                       s2_ref, b2_ref, wi_ref, bi_ref, wout_ref, bout_ref, sync_ref, role_ref,
                       out_ref, st_out_ref, proj_ref, decay_ref, o_ref, x1_ref, hid_ref,
                       *, dims: BlockDims, plan: Plan, batch: int, staged: bool,
                       ablate: frozenset = frozenset()):
    R, d = x_ref.shape
    dtype = out_ref.dtype
    H, Dk, Dv, T, TP, TV = dims.heads, dims.head_k, dims.head_v, dims.tile, dims.proj_tile, dims.value_tile
    Vd, Fp, P = dims.value_dim, dims.hidden_padded, plan.programs
    n_vt = Dv // TV
    if staged:
        phase_id, p = pl.program_id(0), pl.program_id(1)
    else:
        phase_id, p = None, pl.program_id(0)

    def run_role(signature):
        """The kernel for programs of one role (``signature``: the (stage, round) items they
        have). Each role is its own branch, so registers hold only that role's prefetched
        tiles (a kernel where every program loaded every stage's tile spilled 4.6 KB per thread)."""
        def items(name):
            """This role's items t of stage ``name`` (the role knows which rounds of which
            stages its programs have: nothing is loaded or computed for absent items)."""
            st = plan.stage(name)
            rel = jax.lax.rem(p + (P - st.offset), P)
            return [rel + r * P for r in range(st.rounds) if (name, r) in signature]

        # ---- prefetch: every weight and state tile this program will use, before any phase ----
        def gate_loads(t):
            b, h = t // H, jax.lax.rem(t, H)
            return x_ref[pl.ds(b, 1), :], wu_ref[:, _cols(h * Dk, Dk)], bu_ref[_cols(h * Dk, Dk)]

        def rec_index(t):
            return t // (H * n_vt), jax.lax.rem(t // n_vt, H), jax.lax.rem(t, n_vt)

        def state_tile(t):
            b, h, vt = rec_index(t)
            return st_ref[b * H + h, :, _cols(vt * TV, TV)]  # [Dk, TV] float32

        def mlp_in_loads(j):
            if dims.paired_mlp_in:
                return wi_ref[_cols(j * 2 * T, 2 * T), :], bi_ref[_cols(j * 2 * T, 2 * T)]
            return (wi_ref[_cols(j * T, T), :], wi_ref[_cols(Fp + j * T, T), :],
                    bi_ref[_cols(j * T, T)], bi_ref[_cols(Fp + j * T, T)])

        tiled_norm = nw_ref.shape[0] == Vd
        loaders = {
            "x": lambda: x_ref[...],  # [R, d]
            "ln1": lambda: (s1_ref[...], b1_ref[...]),
            "in_proj": lambda: [wp_ref[_cols(t * TP, TP), :] for t in items("in_proj")],  # [TP, d]
            "wd": lambda: wd_ref[...],  # [r, d]
            "gate": lambda: [gate_loads(t) for t in items("gate")],
            "recurrence": lambda: [state_tile(t) for t in items("recurrence")],
            "nw": lambda: [nw_ref[_cols(h * Dv, Dv)] if tiled_norm else nw_ref[...] for h in range(H)],
            "out_proj": lambda: [[wo_ref[_cols(j * T, T), _cols(h * Dv, Dv)] for h in range(H)]  # H x [T, Dv]
                                 for j in items("out_proj")],
            "x_tiles": lambda: [x_ref[:, _cols(j * T, T)] for j in items("out_proj")],
            "ln2": lambda: (s2_ref[...], b2_ref[...]),
            "mlp_in": lambda: [mlp_in_loads(j) for j in items("mlp_in")],
            "mlp_out": lambda: [(wout_ref[_cols(j * T, T), :], bout_ref[_cols(j * T, T)]) for j in items("mlp_out")],
        }
        stages = {name for name, _ in signature}
        needed = {  # the small operands, only where this role uses them
            "x": "in_proj" in stages, "ln1": bool(stages & {"in_proj", "gate"}), "wd": "gate" in stages,
            "nw": "out_proj" in stages, "x_tiles": "out_proj" in stages, "ln2": "mlp_in" in stages}
        loaders = {name: load for name, load in loaders.items() if needed.get(name, True)}
        prefetched = {} if "late_loads" in ablate else {name: load() for name, load in loaders.items()}

        def pre(name):
            return prefetched[name] if name in prefetched else loaders[name]()

        # ---- phase 0: LN1 + q|k|v|g; the forget gate ----
        def phase_in_proj():
            if not items("in_proj") and not items("gate"):
                return
            ln1 = pre("ln1")
            if items("in_proj"):
                u = _layer_norm(pre("x"), *ln1, dims.eps, dtype)
            for t, w in zip(items("in_proj"), pre("in_proj")):
                proj_ref[:, _cols(t * TP, TP)] = mm(u, w, dtype).astype(dtype)
            if items("gate"):
                wd = pre("wd")
            for t, (x_row, wu, bu) in zip(items("gate"), pre("gate")):
                b, h = t // H, jax.lax.rem(t, H)
                x_row = x_row.astype(_F32)  # as block_step._decay, with prefetched operands
                mean, rstd = ln_stats(x_row, dims.eps)
                u_row = round_dtype((x_row - mean) * rstd * ln1[0][None, :] + ln1[1][None, :], dtype)
                down = jnp.sum(wd * u_row, axis=1, keepdims=True)  # [r, 1]
                logits = jnp.sum(down * wu, axis=0, keepdims=True) + bu[None, :]  # [1, Dk]
                decay_ref[pl.ds(b, 1), _cols(h * Dk, Dk)] = jnp.exp(
                    log_sigmoid(logits) / dims.gate_logit_normalizer)

        # ---- phase 1: the recurrence ----
        def phase_recurrence():
            for t, state in zip(items("recurrence"), pre("recurrence")):
                b, h, vt = rec_index(t)
                row = pl.ds(b, 1)
                q = _scratch(proj_ref, (row, _cols(h * Dk, Dk))).astype(_F32).T  # [Dk, 1]
                k = _scratch(proj_ref, (row, _cols(dims.key_dim + h * Dk, Dk))).astype(_F32).T
                v = _scratch(proj_ref, (row, _cols(2 * dims.key_dim + h * Dv + vt * TV, TV))).astype(_F32)
                a = _scratch(decay_ref, (row, _cols(h * Dk, Dk))).T  # [Dk, 1]
                state = a * state + k * v  # [Dk, TV]
                o = dims.scale * jnp.sum(q * state, axis=0, keepdims=True)  # [1, TV]
                st_out_ref[b * H + h, :, _cols(vt * TV, TV)] = state
                o_ref[row, _cols(h * Dv + vt * TV, TV)] = o.astype(o_ref.dtype)

        # ---- phase 2: output gate, W_o, residual ----
        def phase_out_proj():
            if not items("out_proj"):
                return
            real = jax.lax.broadcasted_iota(jnp.int32, (R, Dv), 0) < batch  # o's padded rows are unwritten
            nw = pre("nw")
            # All heads' o and g are loaded at once (in the compute dtype); each head's gated
            # output is then formed and multiplied in turn, so one [R, Dv] float32 tile is live.
            os_ = [_scratch(o_ref, (slice(None), _cols(h * Dv, Dv))) for h in range(H)]
            gs = [_scratch(proj_ref, (slice(None), _cols(2 * dims.key_dim + Vd + h * Dv, Dv))) for h in range(H)]
            accs = [None] * len(items("out_proj"))
            for h in range(H):
                o = jnp.where(real, os_[h].astype(_F32), 0.0)
                o = o * jax.lax.rsqrt(jnp.mean(o * o, axis=1, keepdims=True) + dims.eps)
                y = o * nw[h][None, :] * silu(gs[h].astype(_F32))  # [R, Dv]
                for i, w_heads in enumerate(pre("out_proj")):
                    part = mm(y, w_heads[h], dtype)
                    accs[i] = part if accs[i] is None else accs[i] + part
            for j, acc, x_tile in zip(items("out_proj"), accs, pre("x_tiles")):
                x1_ref[:, _cols(j * T, T)] = (round_dtype(acc, dtype) + x_tile.astype(_F32)).astype(dtype)

        # ---- phase 3: LN2, W_in, silu(a) * b ----
        def phase_mlp_in():
            if not items("mlp_in"):
                return
            u = _layer_norm(_scratch(x1_ref, (slice(None), slice(None))), *pre("ln2"), dims.eps, dtype)
            for j, loads in zip(items("mlp_in"), pre("mlp_in")):
                if dims.paired_mlp_in:
                    w, bias = loads
                    z = round_dtype(mm(u, w, dtype), dtype) + bias[None, :]  # [R, 2T]
                    hidden = swiglu_paired(z, T, dtype)
                else:
                    wa, wb, ba, bb = loads
                    a = round_dtype(round_dtype(mm(u, wa, dtype), dtype) + ba[None, :], dtype)
                    val = round_dtype(round_dtype(mm(u, wb, dtype), dtype) + bb[None, :], dtype)
                    hidden = (silu(a) * val).astype(dtype)
                hid_ref[:, _cols(j * T, T)] = hidden

        # ---- phase 4: W_out, bias, residual ----
        def phase_mlp_out():
            if not items("mlp_out"):
                return
            hidden = _scratch(hid_ref, (slice(None), slice(None)))  # [R, Fp]
            for j, (w, bias) in zip(items("mlp_out"), pre("mlp_out")):
                x1 = _scratch(x1_ref, (slice(None), _cols(j * T, T))).astype(_F32)
                out = round_dtype(round_dtype(mm(hidden, w, dtype), dtype) + bias[None, :], dtype) + x1
                if failed is not None:  # a barrier gave up: say so in the output, not by hanging
                    out = jnp.where(failed, jnp.nan, out)
                out_ref[:, _cols(j * T, T)] = out.astype(dtype)

        phases = (phase_in_proj, phase_recurrence, phase_out_proj, phase_mlp_in, phase_mlp_out)
        if "no_phases" in ablate:
            phases = (lambda: None,) * len(phases)
        if staged:
            failed = None
            for i, phase in enumerate(phases):
                pl.when(phase_id == i)(phase)
            return
        failed = jnp.bool_(False)
        for i, phase in enumerate(phases):
            phase()
            if i < len(phases) - 1 and "no_barriers" not in ablate:
                failed = _grid_barrier(sync_ref, i, P, failed)
        _exit(sync_ref, P, len(phases) - 1)

    role = role_ref[p]
    for r, signature in enumerate(plan.roles):
        pl.when(role == r)(functools.partial(run_role, frozenset(signature)))


def gla_block_step_persistent(x: jax.Array, state: jax.Array, weights: dict[str, jax.Array],
                              dims: BlockDims, *, interpret: Optional[bool] = None,
                              programs: Optional[int] = None, ablate: frozenset = frozenset()
                              ) -> tuple[jax.Array, jax.Array]:
    """One token through a GLA block in one kernel (shapes as ``block_step.gla_block_step``).

    Args:
      x: [R, d] residual stream, R = ``padded_rows(B, False)`` (its option turns small rows off); state: [B, H, Dk, Dv] float32.
      interpret: run staged in the Pallas interpreter (default on a CPU backend).
      programs: P for the compiled kernel (default ``dims.programs``, else the most items a
        stage has but at least 128, at most the SM count); must not exceed the SM count (all
        programs resident).
      ablate: for benchmarks only: "late_loads" (each phase loads its weights itself, after
        the barrier; same results), "no_barriers" and "no_phases" (barriers only), which give
        wrong results and exist to price the barriers.
    Returns:
      (x' [R, d], state' [B, H, Dk, Dv] float32).
    """
    R, d = x.shape
    B, H, Dk, Dv = state.shape
    unknown = set(ablate) - ABLATIONS
    if unknown:
        raise ValueError(f"unknown ablation(s) {sorted(unknown)}; valid: {sorted(ABLATIONS)}")
    staged = _use_interpret(interpret)
    most = max(n for n, _ in stage_sizes(dims, B).values())
    if staged:
        P = programs or most
    else:
        sms = gpu_programs()
        P = programs or dims.programs or min(sms or DEFAULT_PROGRAMS, max(most, DEFAULT_PROGRAMS))
        if sms is not None and P > sms:
            raise ValueError(f"programs={P} > {sms} SMs: the grid barrier needs every program resident")
    plan = make_plan(dims, B, P)
    dtype = x.dtype
    w = weights
    sync = jnp.asarray(np.zeros(len(PHASES), np.int32))  # 4 barriers + the exit count
    role_of = jnp.asarray(np.asarray(plan.role_of, np.int32))  # [P]
    inputs = (x, w["ln1_scale"], w["ln1_bias"], w["w_qkvg"], w["w_gate_down_t"], w["w_gate_up"],
              w["b_gate_up"], state.astype(_F32).reshape(B * H, Dk, Dv), w["norm_weight"], w["w_o"],
              w["ln2_scale"], w["ln2_bias"], w["w_in"], w["b_in"], w["w_out"], w["b_out"], sync, role_of)
    out_shape = [
        jax.ShapeDtypeStruct((R, d), dtype),  # the block's output
        jax.ShapeDtypeStruct((B * H, Dk, Dv), _F32),  # the state, in place
        jax.ShapeDtypeStruct((R, dims.proj_dim), dtype),  # scratch: q | k | v | g
        jax.ShapeDtypeStruct((B, dims.key_dim), _F32),  # scratch: the forget gate
        jax.ShapeDtypeStruct((R, dims.value_dim), dtype),  # scratch: o
        jax.ShapeDtypeStruct((R, d), dtype),  # scratch: the mid-block residual
        jax.ShapeDtypeStruct((R, dims.hidden_padded), dtype),  # scratch: the MLP's hidden units
    ]
    outs = pl.pallas_call(
        functools.partial(_persistent_kernel, dims=dims, plan=plan, batch=B, staged=staged,
                          ablate=frozenset(ablate)),
        grid=(len(PHASES), P) if staged else (P,),
        in_specs=[whole(a.shape) for a in inputs],
        out_specs=[whole(s.shape) for s in out_shape],
        out_shape=out_shape,
        input_output_aliases={7: 1},
        interpret=staged,
        compiler_params=plgpu.CompilerParams(num_warps=dims.num_warps),
        name="gla_block_persistent",
    )(*inputs)
    return outs[0], outs[1].reshape(B, H, Dk, Dv)
