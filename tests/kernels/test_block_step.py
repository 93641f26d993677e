"""The fused GLA block decode step (kernels/gla/block_step.py) against the block's XLA step.

Several chained steps from a random state, so the state path is checked too.
float32: the fused step equals XLA's within 1e-5 of the output's scale (observed ~3e-7 on the
CPU). bfloat16: both round the same intermediates to bf16 but accumulate in different orders,
so they differ by a few bf16 ulps (one on the CPU, 2.5 on an H200 after four steps); the test
therefore measures both against the float32 computation of the same block and asks the fused
step to be as accurate as XLA's: max error <= 1.5 x XLA's + 2^-8 of the output's scale (half a
bf16 ulp at the top of the range), for the outputs and for the float32 states (which take the
bf16-rounded k and v: 0.4% apart between the two paths on an H200).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from kernels.gla import block_step
from small_e_jax.config import ConfigError, ModelConfig
from small_e_jax.model.lclm import make_block

F32_TOL = 1e-5
BF16_SLACK = 2.0**-8


def random_block(d: int, heads: int, dtype: str, *, kind: str = "gla", seed: int = 0, **model):
    """An eval-mode block with every parameter (norms and biases too) random."""
    config = ModelConfig(d_model=d, heads=heads, dtype=dtype, block_dropout=0.0, **model)
    block = make_block(kind, d, heads, config, nnx.Rngs(seed))
    block.eval()
    params = nnx.state(block, nnx.Param)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(seed + 1)
    leaves = [jnp.asarray(np.asarray(x) + 0.2 * rng.standard_normal(x.shape), x.dtype) for x in leaves]
    nnx.update(block, jax.tree_util.tree_unflatten(treedef, leaves))
    return block


def inputs(block, batch: int, steps: int, dtype: str, seed: int = 2):
    rng = np.random.default_rng(seed)
    m = block.mixer
    state0 = jnp.asarray(0.3 * rng.standard_normal((batch, m.heads, m.head_k, m.head_v)), jnp.float32)
    xs = jnp.asarray(rng.standard_normal((steps, batch, block.norm1.norm.num_features)), dtype)
    return xs, state0


def run_xla(block, xs, state0):
    @jax.jit
    def xla(xs, state):
        return jax.lax.scan(lambda s, x: (lambda y, s: (s, y))(*block.step(x, s, 0)), state, xs)

    s, y = xla(xs, state0)
    return np.asarray(y, np.float32), np.asarray(s)


def run_both(block, batch: int, steps: int, dtype: str, seed: int = 2):
    """``steps`` tokens through the XLA step and the fused step from the same random state."""
    xs, state0 = inputs(block, batch, steps, dtype, seed)
    rows = block_step.padded_rows(batch, block.fused_dims().small_rows)
    weights = block.fused_weights()

    @jax.jit
    def fused(xs, state):
        def body(s, x):
            y, s = block.step(block_step.pad_rows(x, rows), s, 0, weights=weights)
            return s, y[:batch]
        return jax.lax.scan(body, state, xs)

    s_out, y_out = fused(xs, state0)
    return run_xla(block, xs, state0), (np.asarray(y_out, np.float32), np.asarray(s_out))


def assert_close(actual, expected, rel):
    scale = float(np.abs(expected).max())
    err = float(np.abs(actual - expected).max())
    assert np.isfinite(actual).all()
    assert err <= rel * scale, f"max error {err:.3g} > {rel:g} x {scale:.3g}"


def check_fused_step(d: int, heads: int, batch: int, dtype: str, steps: int, **model):
    block = random_block(d, heads, dtype, **model)
    (y_ref, s_ref), (y, s) = run_both(block, batch, steps, dtype)
    if dtype == "float32":
        assert_close(y, y_ref, F32_TOL)
        assert_close(s, s_ref, F32_TOL)
        return
    # bf16: as close to the float32 computation as XLA's bf16 step (module docstring).
    xs, state0 = inputs(block, batch, steps, dtype)
    y_true, s_true = run_xla(random_block(d, heads, "float32", **model), xs.astype(jnp.float32), state0)
    for name, got, xla, true in (("output", y, y_ref, y_true), ("state", s, s_ref, s_true)):
        assert np.isfinite(got).all()
        err_xla, err_fused = np.abs(xla - true).max(), np.abs(got - true).max()
        bound = 1.5 * err_xla + BF16_SLACK * np.abs(true).max()
        assert err_fused <= bound, f"{name}: fused error {err_fused:.3g} > {bound:.3g} (XLA's {err_xla:.3g})"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("d,heads,batch,model", [
    (64, 2, 1, dict(gate_low_rank=8)),  # the tiny preset's block
    (64, 2, 3, dict(gate_low_rank=8)),  # rows padded 3 -> 16
    (32, 2, 18, dict(gate_low_rank=16, expand_v=1.0)),  # rows 18 -> 32, PosNet-like widths
    # The 64M model's block (K = 128, V = 256, F = 682): ~13 s in interpret mode, so slow here;
    # the gpu-marked test below runs this shape compiled, and the CUDA lowering test always.
    pytest.param(512, 4, 2, dict(gate_low_rank=16), marks=pytest.mark.slow),
])
def test_fused_step_matches_xla_step(d, heads, batch, model, dtype):
    check_fused_step(d, heads, batch, dtype, steps=3, **model)


@pytest.mark.parametrize("options,dtype", [
    ("whole_recurrence", "float32"), ("whole_recurrence", "bfloat16"),
    ("two_load_mlp_in", "float32"), ("two_load_mlp_in", "bfloat16"),
    ("whole_recurrence,two_load_mlp_in,warps2", "float32"),
    ("out_proj_warps4,recurrence_warps8", "bfloat16"),
    ("value_tile16", "float32"),
    ("wide_tiles", "float32"), ("wide_tiles", "bfloat16"), ("tile8", "bfloat16"), ("tile16", "float32"),
])
def test_kernel_options_match_xla_step(options, dtype):
    """The A/B variants (block_step.OPTIONS) are held to the same parity as the default."""
    check_fused_step(64, 2, 3, dtype, steps=3, gate_low_rank=8, decode_kernel_options=options)


def test_options_are_checked():
    assert block_step.parse_options("") == {}
    assert block_step.parse_options(" whole_recurrence , warps8") == {"split_recurrence": False, "num_warps": 8}
    dims = block_step.make_dims(512, 4, 128, 256, 16, 682, 16.0, 1e-5, options="mlp_in_warps2")
    assert [block_step.kernel_warps(dims, k) for k in block_step.KERNELS] == [4, 4, 8, 2, 4]
    with pytest.raises(ValueError, match="unknown fused decode kernel option 'mlp_in_warps3'"):
        block_step.parse_options("mlp_in_warps3")
    with pytest.raises(ValueError, match="unknown fused decode kernel option 'fast'"):
        block_step.parse_options("whole_recurrence,fast")
    with pytest.raises(ConfigError, match="decode_kernel_options"):
        ModelConfig(decode_kernel_options="fast").validate()
    block = random_block(512, 4, "bfloat16", gate_low_rank=16)  # W_in paired by default
    w_in = block.fused_weights()["w_in"]  # rows: [gate tile j; value tile j] for every tile j
    kernel = np.asarray(block.mlp.w_in.kernel[...].astype(jnp.bfloat16), np.float32)
    T = block.fused_dims().tile
    np.testing.assert_array_equal(np.asarray(w_in[T:2 * T], np.float32), kernel[:, 682:682 + T].T)
    np.testing.assert_array_equal(np.asarray(w_in[2 * T:3 * T], np.float32), kernel[:, T:2 * T].T)


def test_dims_and_packing():
    block = random_block(512, 4, "bfloat16", gate_low_rank=16, decode_kernel_options="two_load_mlp_in")
    dims = block.fused_dims()
    assert (dims.d, dims.heads, dims.head_k, dims.head_v, dims.rank, dims.hidden) == (512, 4, 128, 256, 16, 682)
    assert dims.hidden_padded == 1024 and dims.proj_dim == 3072
    w = block.fused_weights()
    # Matmul weights are stored [out, in] (transposed).
    assert w["w_qkvg"].shape == (3072, 512) and w["w_qkvg"].dtype == jnp.bfloat16
    assert w["w_o"].shape == (512, 1024)
    assert w["w_in"].shape == (2 * 1024, 512) and w["w_out"].shape == (512, 1024)
    # The padded hidden units have zero weights and biases: they contribute silu(0) * 0 = 0.
    assert not np.asarray(w["w_in"][682:1024], np.float32).any()
    assert not np.asarray(w["w_in"][1024 + 682:], np.float32).any()
    assert not np.asarray(w["w_out"][:, 682:], np.float32).any() and not np.asarray(w["b_in"][682:1024]).any()
    np.testing.assert_array_equal(np.asarray(w["w_in"][1024:1024 + 682], np.float32),
                                  np.asarray(block.mlp.w_in.kernel[...][:, 682:].T.astype(jnp.bfloat16), np.float32))


def test_other_mixers_have_no_fused_step():
    assert random_block(64, 2, "float32", kind="simple_gla", gate_low_rank=8).fused_dims() is None
    assert random_block(64, 2, "float32", kind="transformer").fused_dims() is None
    with pytest.raises(ValueError, match="do not apply"):
        random_block(64, 2, "float32", kind="simple_gla", gate_low_rank=8).fused_weights()
    # Widths that are not powers of two fall back to XLA (Triton tiles are powers of two).
    assert random_block(96, 2, "float32", gate_low_rank=8).fused_dims() is None
    assert "power of two" in block_step.unsupported_reason(block_step.make_dims(96, 2, 48, 96, 8, 128, 16.0, 1e-5))


def test_unpadded_rows_are_refused():
    block = random_block(64, 2, "float32", gate_low_rank=8)
    m = block.mixer
    state = jnp.zeros((3, m.heads, m.head_k, m.head_v), jnp.float32)
    with pytest.raises(ValueError, match=r"padded_rows\(3\) = 4"):  # small rows: a power of two
        block.step(jnp.zeros((3, 64)), state, 0, weights=block.fused_weights())


@pytest.mark.parametrize("options", ["", "whole_recurrence", "two_load_mlp_in", "warps2", "wide_tiles",
                                     "tile8"])
def test_lowers_for_cuda_at_the_small_e_shape(options):
    """The five kernels lower through Triton for CUDA (their bodies' Triton lowering runs here,
    without a GPU: unsupported ops or tile shapes fail), for every A/B option."""
    dims = block_step.make_dims(512, 4, 128, 256, 16, 682, 16.0, 1e-5, options=options)
    block = random_block(512, 4, "bfloat16", gate_low_rank=16, decode_kernel_options=options)
    assert block.fused_dims() == dims
    weights = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), block.fused_weights())
    sds = jax.ShapeDtypeStruct
    fn = jax.jit(lambda x, s, w: block_step.gla_block_step(x, s, w, dims, interpret=False))
    rows = block_step.padded_rows(1, dims.small_rows)
    text = fn.trace(sds((rows, 512), jnp.bfloat16), sds((1, 4, 128, 256), jnp.float32),
                    weights).lower(lowering_platforms=("cuda",)).as_text()
    names = ["gla_block_in_proj", "gla_block_recurrence", "gla_block_out_proj", "gla_block_mlp_in",
             "gla_block_mlp_out"]
    assert text.count("stablehlo.custom_call @__gpu$xla.gpu.triton") == len(names)
    for name in names:
        assert name in text, name


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("batch", [1, 4, 32])
def test_compiled_on_gpu_matches_xla_step(batch, dtype):
    if jax.default_backend() != "gpu":
        pytest.fail("the gpu marker needs a CUDA GPU (jax.default_backend() == 'gpu')")
    # XLA's float32 dots on the GPU default to TF32; the kernels' are IEEE float32 (HIGHEST).
    with jax.default_matmul_precision("float32" if dtype == "float32" else "default"):
        check_fused_step(512, 4, batch, dtype, steps=4, gate_low_rank=16)


def test_training_mode_with_dropout_is_refused():
    config = ModelConfig(d_model=64, heads=2, dtype="float32", gate_low_rank=8, block_dropout=0.1)
    block = make_block("gla", 64, 2, config, nnx.Rngs(0))  # train mode: dropout active
    state = jnp.zeros((1, 2, block.mixer.head_k, block.mixer.head_v), jnp.float32)
    with pytest.raises(ValueError, match="model.eval"):
        block.step(jnp.zeros((16, 64)), state, 0, weights=block.fused_weights())
    block.eval()
    y, _ = block.step(jnp.zeros((16, 64)), state, 0, weights=block.fused_weights())
    assert y.shape == (16, 64)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("options", ["whole_recurrence,two_load_mlp_in", "warps2", "out_proj_warps4,recurrence_warps8",
                                     "wide_tiles", "tile8"])
def test_compiled_options_on_gpu_match_xla_step(options, dtype):
    if jax.default_backend() != "gpu":
        pytest.fail("the gpu marker needs a CUDA GPU (jax.default_backend() == 'gpu')")
    with jax.default_matmul_precision("float32" if dtype == "float32" else "default"):
        check_fused_step(512, 4, 1, dtype, steps=4, gate_low_rank=16, decode_kernel_options=options)
