"""The on-device decode loop: one ``lax.while_loop`` over :meth:`SmallE.decode_step` with fixed
shapes, a per-item stop mask, teacher-forced prompt columns and classifier-free guidance.

Layout (delay pattern, :mod:`small_e_jax.delay`): step ``i`` consumes input column ``i`` and
predicts column ``c = i + 1``; ``outputs[:, i]`` holds column ``c``. Column 0 is all-BOA.

Per item ``b`` and codebook ``k`` the loop *forces* column ``c`` to the prompt's delayed matrix
while ``c <= prompt_frames[b] + k`` (with no prompt that is the BOA triangle of the delay
pattern; with a prompt it is prompt continuation, docs/model.md §7, MusicGen-style: the known prompt codes
of codebooks k >= 1 are forced too). Otherwise it samples, with the special tokens the delay
pattern does not allow masked out (PAD and BOA never; EOA only in codebook 0, and not before
``min_frames`` new frames). When codebook 0 emits EOA at column ``e`` the item has ``e - 1``
frames; codebook k is then forced to EOA from column ``e + k``, and the item stops after the
all-EOA column ``e + Q - 1``. Items that stop emit PAD while the others finish. An item that
never emits EOA stops at ``n_steps`` outputs.

The loop runs ``until`` a given step (a traced scalar), so that streaming can call the same
compiled program chunk by chunk; non-streaming generation calls it once with ``until = n_steps``.
The carry is donated, so its buffers are updated in place.

Classifier-free guidance (``sampling.cfg_scale != 1``): the decode state holds 2B rows
(B conditional, then B with the null text); both streams get the same sampled column and the
logits are ``uncond + s * (cond - uncond)``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from small_e_jax.delay import BOA, EOA, PAD, delay, undelay_predictions
from small_e_jax.guidance import null_text
from small_e_jax.model import DecodeState, SmallE
from small_e_jax.sampling import NEG_INF, SamplingConfig, sample

NO_STOP = np.int32(2**30)  # eoa_col of an item that has not emitted EOA yet


@flax.struct.dataclass
class Carry:
    """Loop state. i: [] int32 steps taken; state: DecodeState (B or 2B rows); column: [B, Q]
    int32 the next input column; outputs: [B, S, Q] int32 (-1 = not yet written); eoa_col: [B]
    int32 column where codebook 0 emitted EOA (NO_STOP if not); done: [B] bool; keys: [B] PRNG
    keys (step i uses ``fold_in(key, i)``)."""

    i: jax.Array
    state: DecodeState
    column: jax.Array
    outputs: jax.Array
    eoa_col: jax.Array
    done: jax.Array
    keys: jax.Array


@flax.struct.dataclass
class Request:
    """Per-item inputs that stay fixed during the loop. prompt: [B, P, Q] int32 delayed prompt
    tokens (``delay`` of the prompt codes; column 0 all-BOA); prompt_frames: [B] int32 (0 = no
    prompt); min_frames: [B] int32 new frames before EOA is allowed; limit: [B] int32 the most
    outputs per item (prompt + max frames + Q)."""

    prompt: jax.Array
    prompt_frames: jax.Array
    min_frames: jax.Array
    limit: jax.Array  # [B] int32: the most outputs (columns) per item; the buffer may be longer


def make_request(n_codebooks: int, batch: int, prompts: Optional[Sequence[Optional[np.ndarray]]] = None,
                 min_frames: int = 1, max_frames: Optional[int] = None) -> Request:
    """Build a :class:`Request`; ``prompts[b]``: raw prompt codes [T_b, Q] or None; at most
    ``max_frames`` new frames per item (None: unlimited, i.e. the output buffer's length)."""
    prompts = list(prompts) if prompts is not None else [None] * batch
    if len(prompts) != batch:
        raise ValueError(f"{len(prompts)} prompts for {batch} texts")
    frames = np.array([0 if p is None else len(p) for p in prompts], np.int32)
    T = int(frames.max())
    codes = np.zeros((batch, T, n_codebooks), np.int32)
    for b, p in enumerate(prompts):
        if p is not None:
            codes[b, :len(p)] = p
    tokens, _ = delay(codes, frames)  # [B, T + Q + 1, Q]
    limit = frames + n_codebooks + (max_frames if max_frames is not None else 2**29)
    return Request(prompt=jnp.asarray(tokens), prompt_frames=jnp.asarray(frames),
                   min_frames=jnp.full((batch,), max(int(min_frames), 1), jnp.int32),
                   limit=jnp.asarray(limit, jnp.int32))


def init_carry(state: DecodeState, request: Request, n_steps: int, seed: int | jax.Array,
               item_ids: Optional[jax.Array] = None) -> Carry:
    """The loop's starting carry (traceable). Item b samples with ``fold_in(key(seed), item_ids[b])``
    (default b), so an item's samples do not depend on its batch."""
    B, _, Q = request.prompt.shape
    ids = jnp.arange(B) if item_ids is None else item_ids
    keys = jax.vmap(lambda j: jax.random.fold_in(jax.random.key(seed), j))(ids)
    return Carry(i=jnp.zeros((), jnp.int32), state=state, column=request.prompt[:, 0],
                 outputs=jnp.full((B, n_steps, Q), -1, jnp.int32),
                 eoa_col=jnp.full((B,), NO_STOP, jnp.int32), done=jnp.zeros((B,), bool), keys=keys)


def _allowed_logits(logits: jax.Array, c: jax.Array, request: Request) -> jax.Array:
    """Mask the special tokens the delay pattern forbids at column c. logits [B, Q, V]."""
    Q, V = logits.shape[1:]
    vocab = jnp.arange(V)[None, None, :]
    special = vocab < 3  # PAD, BOA, EOA
    eoa_ok = (jnp.arange(Q)[None, :, None] == 0) & (
        c > (request.prompt_frames + request.min_frames)[:, None, None])
    allowed = ~special | ((vocab == EOA) & eoa_ok)
    return jnp.where(allowed, logits, NEG_INF)


def decode_loop_body(model: SmallE, sampling: SamplingConfig, request: Request, carry: Carry,
                     values: Optional[dict[str, Any]] = None,
                     weights: Optional[dict[str, Any]] = None) -> Carry:
    """One step of the loop (traceable): feed ``carry.column``, choose column ``i + 1``.
    ``values``: the traced settings of :meth:`SamplingConfig.split` (default: ``sampling``'s);
    ``weights``: :meth:`SmallE.fused_decode_weights` (None: XLA blocks)."""
    values = values if values is not None else sampling.split()[1]
    i, B = carry.i, carry.column.shape[0]
    Q = carry.column.shape[1]
    column_in = jnp.concatenate([carry.column, carry.column]) if sampling.uses_cfg else carry.column
    logits, state = model.decode_step(carry.state, column_in, weights=weights)
    if sampling.uses_cfg:
        cond, uncond = logits[:B], logits[B:]
        # cond + (s - 1)(cond - uncond) = uncond + s (cond - uncond)
        logits = cond + (values["cfg_scale"] - 1.0) * (cond - uncond)
    c = i + 1
    logits = _allowed_logits(logits, c, request)
    recent = None
    if sampling.repetition_penalty != 1.0:
        W = sampling.repetition_window
        padded = jnp.pad(carry.outputs, ((0, 0), (W, 0), (0, 0)), constant_values=-1)
        recent = jax.lax.dynamic_slice_in_dim(padded, i, W, axis=1)  # outputs i-W .. i-1
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(carry.keys, i)
    with jax.named_scope("sample"):
        tokens = sample(logits, keys, sampling, recent, values)  # [B, Q]

    codebook = jnp.arange(Q)[None, :]
    forced = c <= request.prompt_frames[:, None] + codebook
    P = request.prompt.shape[1]
    prompt_col = jax.lax.dynamic_index_in_dim(request.prompt, jnp.minimum(c, P - 1), axis=1, keepdims=False)
    tokens = jnp.where(forced, prompt_col, tokens)
    eoa_now = ~carry.done & (carry.eoa_col == NO_STOP) & (tokens[:, 0] == EOA) & ~forced[:, 0]
    eoa_col = jnp.where(eoa_now, c, carry.eoa_col)
    tokens = jnp.where(c >= eoa_col[:, None] + codebook, EOA, tokens)
    tokens = jnp.where(carry.done[:, None], PAD, tokens)
    finished = (c >= eoa_col + Q - 1) | (c >= jnp.minimum(request.limit, carry.outputs.shape[1]))
    outputs = jax.lax.dynamic_update_slice_in_dim(carry.outputs, tokens[:, None], i, axis=1)
    return carry.replace(i=c, state=state, column=tokens, outputs=outputs, eoa_col=eoa_col,
                         done=carry.done | finished)


def run_loop(model: SmallE, sampling: SamplingConfig, request: Request, carry: Carry,
             until: jax.Array, values: Optional[dict[str, Any]] = None, unroll: int = 1) -> Carry:
    """Run steps while ``i < until`` and some item is not done (traceable). ``sampling`` is
    the static part and ``values`` the traced settings (:meth:`SamplingConfig.split`).

    ``unroll`` > 1 runs that many steps per loop iteration (fewer loop-condition round trips,
    which on GPU cost a device-to-host copy each): the output buffer's length and ``until``
    must then be multiples of ``unroll`` (the extra steps of finished items write PAD). Their
    recurrent states run on past the stop, so long-form carry-over uses ``unroll = 1``.
    """
    values = values if values is not None else sampling.split()[1]
    # Packed once per call, outside the loop (model.decode_kernels; None = XLA blocks).
    rows = carry.column.shape[0] * (2 if sampling.uses_cfg else 1)  # guidance: + the null-text rows
    weights = model.fused_decode_weights(rows)
    if carry.outputs.shape[1] % unroll:
        raise ValueError(f"the output buffer ({carry.outputs.shape[1]} steps) is not a multiple of unroll={unroll}")

    def cond(carry: Carry) -> jax.Array:
        return (carry.i < jnp.minimum(until, carry.outputs.shape[1])) & ~jnp.all(carry.done)

    def body(carry: Carry) -> Carry:
        for _ in range(unroll):
            carry = decode_loop_body(model, sampling, request, carry, values, weights)
        return carry

    return jax.lax.while_loop(cond, body, carry)


def prefill(model: SmallE, text: jax.Array, text_mask: jax.Array, guided: bool,
            initial_states: Optional[Sequence[Any]] = None, max_len: Optional[int] = None) -> DecodeState:
    """The decode state for texts [B, J] (2B rows when ``guided``: conditional then null text).
    ``max_len``: decode steps, needed only by the transformer baseline's key/value cache."""
    if guided:
        null, null_mask = null_text(text.shape[0], text.shape[1])
        text = jnp.concatenate([text, null])
        text_mask = jnp.concatenate([text_mask.astype(bool), null_mask])
    return model.init_decode_state(text, text_mask, initial_states=initial_states, max_len=max_len)


def finish(outputs: np.ndarray, eoa_col: np.ndarray, prompt_frames: np.ndarray, n_codebooks: int,
           limit: Optional[np.ndarray] = None) -> list[np.ndarray]:
    """Host side: outputs [B, S, Q] -> per-item raw codes [T_b, Q] int32, cut at the item's own
    stop (``eoa_col - 1`` frames; ``limit - Q`` if it never stopped) with its prompt frames cropped."""
    outputs = np.where(outputs < 0, PAD, outputs)
    codes, _ = undelay_predictions(outputs)  # [B, S - Q, Q]
    limit = np.full(len(outputs), outputs.shape[1]) if limit is None else np.minimum(limit, outputs.shape[1])
    result = []
    for b in range(outputs.shape[0]):
        end = int(limit[b]) - n_codebooks
        end = end if eoa_col[b] >= NO_STOP else min(int(eoa_col[b]) - 1, end)
        result.append(np.ascontiguousarray(codes[b, int(prompt_frames[b]):end]).astype(np.int32))
    return result


def complete_frames(i: int, eoa_col: int, n_codebooks: int, n_frames_max: int) -> int:
    """Frames whose Q codes are all known after ``i`` steps (frame f needs output f + Q - 1)."""
    n = max(0, min(i - n_codebooks + 1, n_frames_max))
    return n if eoa_col >= NO_STOP else min(n, eoa_col - 1)


def boa_column(batch: int, n_codebooks: int) -> jax.Array:
    return jnp.full((batch, n_codebooks), BOA, jnp.int32)


def split_model(model: SmallE) -> tuple[nnx.GraphDef, nnx.State]:
    """Eval-mode graph and state (dropout off) for pure jitted functions."""
    model.eval()
    return nnx.split(model)
