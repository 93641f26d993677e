"""The GLA block decode step as one persistent kernel (kernels/gla/block_persistent.py) against
the block's XLA step, with the tolerances of tests/kernels/test_block_step.py (fp32 1e-5 of the
output's scale; bf16 as close to the fp32 block as XLA's bf16 step).

On the CPU the kernel runs "staged" (its five phases as grid rows, no barrier); the barrier and
counter-reset code is lowered for CUDA here and runs in the gpu-marked tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.gla import block_persistent as bp
from kernels.gla import block_step

from .test_block_step import check_fused_step, inputs, random_block

SMALL_E = (512, 4, 128, 256, 16, 682, 16.0, 1e-5)  # d, H, Dk, Dv, rank, F, normalizer, eps


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("d,heads,batch,model", [
    (64, 2, 1, dict(gate_low_rank=8)),  # the tiny preset's block
    (64, 2, 3, dict(gate_low_rank=8)),  # rows padded 3 -> 16
    (32, 2, 18, dict(gate_low_rank=16, expand_v=1.0)),  # rows 18 -> 32, PosNet-like widths
])
def test_persistent_step_matches_xla_step(d, heads, batch, model, dtype):
    check_fused_step(d, heads, batch, dtype, steps=3, decode_kernel_options="persistent", **model)


@pytest.mark.parametrize("dtype", [pytest.param("float32", marks=pytest.mark.slow), "bfloat16"])
def test_persistent_step_with_the_other_layouts(dtype):
    """The per-head norm weight ([Dv], whole_recurrence's packing) and W_in as two loads."""
    check_fused_step(64, 2, 3, dtype, steps=3, gate_low_rank=8,
                     decode_kernel_options="persistent,whole_recurrence,two_load_mlp_in")


@pytest.mark.slow  # the 64M block in the interpreter (~30 s)
def test_persistent_step_at_the_small_e_shape():
    check_fused_step(512, 4, 2, "bfloat16", steps=2, gate_low_rank=16, decode_kernel_options="persistent")


def test_fewer_programs_than_items_loop_over_rounds():
    """P = 5 programs (not a divisor of any stage's items): items run in rounds, the last
    round's spare programs compute a clamped item and store nothing."""
    block = random_block(64, 2, "float32", gate_low_rank=8, decode_kernel_options="persistent")
    dims, weights = block.fused_dims(), block.fused_weights()
    xs, state = inputs(block, 3, 1, "float32")
    x = block_step.pad_rows(xs[0], 16)
    y_all, s_all = bp.gla_block_step_persistent(x, state, weights, dims, interpret=True)
    y_5, s_5 = bp.gla_block_step_persistent(x, state, weights, dims, interpret=True, programs=5)
    np.testing.assert_array_equal(np.asarray(y_5)[:3], np.asarray(y_all)[:3])
    np.testing.assert_array_equal(np.asarray(s_5), np.asarray(s_all))


def test_plan_covers_every_item_once_and_balances_bytes():
    dims = block_step.make_dims(*SMALL_E, options="persistent")
    plan = bp.make_plan(dims, 1, 128)
    sizes = bp.stage_sizes(dims, 1)
    load = np.zeros(128)
    for name, stage in plan.stages:
        n, nbytes = sizes[name]
        assert stage.tasks == n and stage.rounds == -(-n // 128)
        programs = [(stage.offset + t) % 128 for t in range(n)]
        assert len(set(programs)) == n  # one item per program per round at most
        np.add.at(load, programs, nbytes)
    # 7.8 MB over 128 programs (61 KB each on average): the greedy plan's busiest program
    # prefetches 88 KB (a gate item's 40 KB float32 low-rank weights on top of a recurrence
    # and a W_out tile); one program holding whole stages would be 10x the mean.
    assert load.max() <= 1.5 * load.mean(), (load.max(), load.mean())
    assert bp.make_plan(dims, 1, None).programs == 96  # the largest stage: q|k|v|g in 32-column tiles


@pytest.mark.parametrize("batch", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_lowers_for_cuda_at_the_small_e_shape(batch):
    """One Triton kernel per block, barrier and reset code included (built here, run on a GPU)."""
    dims = block_step.make_dims(*SMALL_E, options="persistent")
    block = random_block(512, 4, "bfloat16", gate_low_rank=16, decode_kernel_options="persistent")
    assert block.fused_dims() == dims
    weights = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), block.fused_weights())
    sds = jax.ShapeDtypeStruct
    fn = jax.jit(lambda x, s, w: block_step.gla_block_step(x, s, w, dims, interpret=False))
    text = fn.trace(sds((16, 512), jnp.bfloat16), sds((batch, 4, 128, 256), jnp.float32),
                    weights).lower(lowering_platforms=("cuda",)).as_text()
    assert text.count("stablehlo.custom_call @__gpu$xla.gpu.triton") == 1
    assert "gla_block_persistent" in text


def test_too_many_programs_are_refused(monkeypatch):
    monkeypatch.setattr(bp, "gpu_programs", lambda: 66)
    dims = block_step.make_dims(*SMALL_E, options="persistent")
    x = jax.ShapeDtypeStruct((16, 512), jnp.bfloat16)
    s = jax.ShapeDtypeStruct((1, 4, 128, 256), jnp.float32)
    block = random_block(512, 4, "bfloat16", gate_low_rank=16, decode_kernel_options="persistent")
    w = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), block.fused_weights())
    with pytest.raises(ValueError, match="unknown ablation"):
        jax.jit(lambda x, s, w: bp.gla_block_step_persistent(x, s, w, dims, interpret=False,
                                                             ablate=frozenset({"no_barrier"}))).trace(x, s, w)
    with pytest.raises(ValueError, match="programs=128 > 66 SMs"):
        jax.jit(lambda x, s, w: bp.gla_block_step_persistent(x, s, w, dims, interpret=False,
                                                             programs=128)).trace(x, s, w)
    # By default P is capped at the SM count: the 96 q|k|v|g tiles then run in two rounds.
    text = jax.jit(lambda x, s, w: bp.gla_block_step_persistent(x, s, w, dims, interpret=False)).trace(
        x, s, w).lower(lowering_platforms=("cuda",)).as_text()
    assert "gla_block_persistent" in text


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("batch", [1, 4, 32])
def test_compiled_on_gpu_matches_xla_step(batch, dtype):
    """Compiled: the barriers hold (a phase reading before the previous one finished would
    break parity; a barrier that gives up makes the output NaN), and the counters reset
    (four chained steps, each a fresh launch finding them at zero)."""
    if jax.default_backend() != "gpu":
        pytest.fail("the gpu marker needs a CUDA GPU (jax.default_backend() == 'gpu')")
    with jax.default_matmul_precision("float32" if dtype == "float32" else "default"):
        check_fused_step(512, 4, batch, dtype, steps=4, gate_low_rank=16, decode_kernel_options="persistent")


@pytest.mark.gpu
def test_compiled_on_gpu_is_deterministic_over_many_calls():
    if jax.default_backend() != "gpu":
        pytest.fail("the gpu marker needs a CUDA GPU (jax.default_backend() == 'gpu')")
    block = random_block(512, 4, "bfloat16", gate_low_rank=16, decode_kernel_options="persistent")
    dims, weights = block.fused_dims(), block.fused_weights()
    xs, state = inputs(block, 1, 1, "bfloat16")
    x = block_step.pad_rows(xs[0], 16)

    @jax.jit
    def many(x, state):  # 200 launches in one program: the counters must be zero at each
        def body(carry, _):
            y, s = bp.gla_block_step_persistent(carry[0], carry[1], weights, dims)
            return (y, s), None
        return jax.lax.scan(body, (x, state), None, length=200)[0]

    first = jax.tree.map(np.asarray, many(x, state))
    second = jax.tree.map(np.asarray, many(x, state))
    assert np.isfinite(first[0]).all()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
