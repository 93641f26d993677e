"""The decode loop's bookkeeping with a scripted model: per-item stop on EOA, the delay
pattern's forced columns, PAD after the stop, the length limit, prompt forcing and cropping."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from small_e_jax import decoding
from small_e_jax.delay import BOA, EOA, PAD
from small_e_jax.sampling import GREEDY

Q, V = 4, 1027


def scripted_token(step, k, b):
    """The code (token - 3) the scripted model prefers at input step ``step``."""
    return (step * 7 + k * 13 + b * 5) % 50


class ScriptedModel:
    """decode_step: argmax = 3 + scripted_token; codebook 0 prefers EOA once step + 1 >= stop[b].
    The decode loop's model interface: also ``fused_decode_weights`` (None: no fused kernels)."""

    def fused_decode_weights(self, rows=None):
        return None

    def decode_step(self, state, column, weights=None):
        assert weights is None
        step, stop = state["step"], state["stop"]
        B = stop.shape[0]
        b = jnp.arange(B)[:, None]
        k = jnp.arange(Q)[None, :]
        best = 3 + scripted_token(step, k, b)  # [B, Q]
        logits = jnp.where(jnp.arange(V) == best[..., None], 5.0, 0.0)
        stop_now = (step + 1 >= stop)[:, None] & (k == 0)
        logits = logits.at[..., EOA].set(jnp.where(stop_now, 10.0, 0.0))
        logits = logits.at[..., BOA].set(20.0).at[..., PAD].set(20.0)  # must be masked by the loop
        return logits, {"step": step + 1, "stop": stop}


@functools.partial(jax.jit, static_argnums=(3,))
def run(carry, request, until, sampling):
    return decoding.run_loop(ScriptedModel(), sampling, request, carry, until)


def generate(stop, max_frames, prompts=None, until=None):
    B = len(stop)
    request = decoding.make_request(Q, B, prompts)
    n_steps = int(np.max(np.asarray(request.prompt_frames))) + max_frames + Q
    state = {"step": jnp.zeros((), jnp.int32), "stop": jnp.asarray(stop, jnp.int32)}
    carry = decoding.init_carry(state, request, n_steps, seed=0)
    carry = run(carry, request, jnp.int32(n_steps if until is None else until), GREEDY)
    outputs, eoa = jax.device_get((carry.outputs, carry.eoa_col))
    return decoding.finish(outputs, eoa, np.asarray(request.prompt_frames), Q), outputs, eoa, carry


def expected_codes(b, n_frames, offset=0):
    return np.array([[scripted_token(f + k + offset, k, b) for k in range(Q)] for f in range(n_frames)])


def test_each_item_stops_at_its_own_eoa():
    stops = [4, 9, 6]
    codes, outputs, eoa, carry = generate(stops, max_frames=20)
    for b, stop in enumerate(stops):
        assert eoa[b] == stop  # codebook 0 emitted EOA at column `stop`
        assert codes[b].shape == (stop - 1, Q)
        np.testing.assert_array_equal(codes[b], expected_codes(b, stop - 1))
        # Delay pattern: codebook k says EOA from column stop + k to the all-EOA column stop + Q - 1.
        for k in range(Q):
            np.testing.assert_array_equal(outputs[b, stop - 1 + k:stop + Q - 1, k], EOA)
        assert (outputs[b, stop + Q - 1:] <= PAD).all()  # PAD (or unwritten) after the stop
        assert (outputs[b, :stop - 1 + 0, 0] >= 3).all()  # no special token before the stop
    # The loop ran until the last item stopped, not to the length limit.
    assert int(carry.i) == max(stops) + Q - 1
    # BOA triangle is forced: codebook k of columns <= k is BOA.
    for k in range(1, Q):
        assert (outputs[:, :k, k] == BOA).all()


def test_length_limit_without_eoa():
    codes, _, eoa, carry = generate([1000, 5], max_frames=10)
    assert eoa[0] == decoding.NO_STOP and codes[0].shape == (10, Q)
    np.testing.assert_array_equal(codes[0], expected_codes(0, 10))
    assert codes[1].shape == (4, Q)


def test_stop_is_not_allowed_before_min_frames():
    codes, *_ = generate([1, 1], max_frames=10)  # the model wants EOA at once
    assert [c.shape[0] for c in codes] == [1, 1]  # min_frames = 1


def test_prompt_columns_are_forced_and_cropped():
    prompt = (np.arange(3 * Q).reshape(3, Q) * 11) % 50  # 3 prompt frames
    codes, outputs, eoa, _ = generate([8, 7], max_frames=20, prompts=[prompt, None])
    # Item 0: the prompt's frames are teacher-forced (codebook k up to column 3 + k), then cropped.
    for f in range(3):
        for k in range(Q):
            assert outputs[0, f + k, k] == prompt[f, k] + 3
    assert codes[0].shape == (8 - 1 - 3, Q)
    np.testing.assert_array_equal(codes[0], expected_codes(0, 8)[3:8 - 1])
    np.testing.assert_array_equal(codes[1], expected_codes(1, 6))


def test_chunked_runs_equal_one_run():
    stops = [5, 11]
    full, outputs, *_ = generate(stops, max_frames=20)
    B = len(stops)
    request = decoding.make_request(Q, B)
    n_steps = 20 + Q
    state = {"step": jnp.zeros((), jnp.int32), "stop": jnp.asarray(stops, jnp.int32)}
    carry = decoding.init_carry(state, request, n_steps, seed=0)
    for until in range(3, n_steps + 3, 3):
        carry = run(carry, request, jnp.int32(until), GREEDY)
        assert int(carry.i) <= until
    np.testing.assert_array_equal(np.asarray(carry.outputs), outputs)


def test_unrolled_loop_equals_plain():
    stops = [5, 11, 30]
    codes, *_ = generate(stops, max_frames=13)
    B = len(stops)
    request = decoding.make_request(Q, B, max_frames=13)
    n_steps = 18  # >= 13 + Q, a multiple of 3
    state = {"step": jnp.zeros((), jnp.int32), "stop": jnp.asarray(stops, jnp.int32)}
    carry = decoding.init_carry(state, request, n_steps, seed=0)
    carry = jax.jit(lambda c, r: decoding.run_loop(ScriptedModel(), GREEDY, r, c, jnp.int32(n_steps), unroll=3))(
        carry, request)
    unrolled = decoding.finish(np.asarray(carry.outputs), np.asarray(carry.eoa_col), np.zeros(B, int), Q,
                               np.asarray(request.limit))
    for a, b in zip(codes, unrolled):
        np.testing.assert_array_equal(a, b)
    assert [len(c) for c in unrolled] == [4, 10, 13]
