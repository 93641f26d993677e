"""The fused GLA decode block's static dimensions and A/B options: pure Python, no JAX.

`BlockDims`, `OPTIONS` / `parse_options` (``model.decode_kernel_options``), `make_dims` and
`padded_rows` are shared by the five-kernel step (`kernels/gla/block_step.py`, which re-exports
them) and the persistent kernel (`kernels/gla/block_persistent.py`), and read by
`small_e_jax.config`'s validation, which must not load JAX. This module sits outside
`kernels/gla/` because that package's ``__init__`` imports JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

ROW_MULTIPLE = 16  # Triton's smallest matmul M


@dataclasses.dataclass(frozen=True)
class BlockDims:
    """Static shape and constants of one GLA block. ``hidden``: the SwiGLU width F (packed to
    ``hidden_padded``); ``tile``: output columns per program of the matmul kernels."""

    d: int
    heads: int
    head_k: int
    head_v: int
    rank: int
    hidden: int
    gate_logit_normalizer: float
    eps: float
    # Output columns per program: 4 for W_o and the MLP, 8 for the q|k|v|g projection (at batch
    # 1 a kernel's time follows the bytes each program waits on: narrow tiles, many programs).
    tile: int = 4
    proj_tile: int = 8
    # A/B options (`OPTIONS`, `model.decode_kernel_options`; the defaults are the measured best):
    split_recurrence: bool = True  # recurrence in value tiles, output gate in W_o's kernel
    value_tile: int = 32  # value channels per recurrence program with split_recurrence
    paired_mlp_in: bool = True  # W_in's gate and value rows of a tile interleaved: one load
    num_warps: int = 4  # of the matmul kernels (of the persistent kernel with `persistent`)
    # Warps per kernel where they differ from num_warps: W_o's kernel (the output gate's reshape
    # needs 255 registers) spills 168 bytes per thread at 4 warps, none at 8 (sm_90 cubin).
    kernel_warps: tuple[tuple[str, int], ...] = (("out_proj", 8),)
    persistent: bool = False  # one kernel per block with grid barriers (block_persistent.py)
    # Fewer than 16 rows carried as the next power of two (1 at batch 1, not 16), their matmuls
    # (and any with fewer than 16 output columns) as multiply-and-sum instead of tensor-core
    # dots, whose smallest M and N are 16: 16x less activation traffic per program at batch 1.
    small_rows: bool = True
    programs: int = 0  # the persistent kernel's programs (0: auto, see block_persistent)

    @property
    def key_dim(self) -> int:
        return self.heads * self.head_k

    @property
    def value_dim(self) -> int:
        return self.heads * self.head_v

    @property
    def proj_dim(self) -> int:  # q | k | v | g
        return 2 * self.key_dim + 2 * self.value_dim

    @property
    def hidden_padded(self) -> int:  # a power of two: W_out's [tile, F] rows are one load
        return max(self.tile, 1 << (self.hidden - 1).bit_length())

    @property
    def scale(self) -> float:
        return self.head_k**-0.5


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def unsupported_reason(dims: BlockDims) -> Optional[str]:
    """Why these dims cannot use the fused kernels (None when they can): Triton tiles are powers
    of two and its matmuls need at least 16 along every dimension."""
    for name in ("d", "head_k", "head_v", "rank"):
        if not _pow2(getattr(dims, name)):
            return f"{name}={getattr(dims, name)} is not a power of two"
    for name in ("d", "head_k", "head_v"):
        if getattr(dims, name) < 16:
            return f"{name}={getattr(dims, name)} < 16"
    if not _pow2(dims.heads):
        return f"heads={dims.heads} is not a power of two (W_o's rows are one load)"
    if min(dims.tile, dims.proj_tile) < ROW_MULTIPLE and not dims.small_rows:
        return f"tiles narrower than {ROW_MULTIPLE} ({dims.tile}, {dims.proj_tile}) need small_rows"
    if dims.d % dims.tile or dims.proj_dim % dims.proj_tile or dims.head_v % dims.value_tile:
        return (f"tiles ({dims.tile}, {dims.proj_tile}, {dims.value_tile}) do not divide "
                f"d={dims.d}, q|k|v|g={dims.proj_dim}, head_v={dims.head_v}")
    return None


# Kernel variants to A/B on a GPU (bench_decode model.decode_kernel_options=NAME,NAME), each
# parity-tested like the default. The defaults are the eleventh GPU session's best (small rows, 4/8-
# column tiles; see `wide_tiles` below), on top of the tenth GPU session's (benchmarks/RESULTS.md):
# the recurrence in 32-channel value tiles (its output gate's per-head RMSNorm in W_o's kernel,
# by a reshape to [R, H, Dv]) and W_in's gate and value rows of a tile in one load; batch 1,
# 0.408 ms per step against 0.455 for the variant without both and 0.500 for XLA, same run;
# then W_o's kernel at 8 warps (`kernel_warps`): 0.381 against 0.409 and XLA's 0.512.
OPTIONS: dict[str, dict] = {
    # One program per (row, head) with the output gate in the recurrence (the ninth GPU session's
    # design: 0.455 ms per step; its whole-head recurrence is 12 us per call, the tiled 5.1).
    "whole_recurrence": {"split_recurrence": False},
    # W_in's gate and value tiles as two [tile, d] loads (0.429 ms with the tiled recurrence).
    "two_load_mlp_in": {"paired_mlp_in": False},
    "warps2": {"num_warps": 2},  # 0.495 ms (with whole_recurrence, two_load_mlp_in)
    "warps8": {"num_warps": 8},  # 0.472 ms (likewise)
    # The whole block as one kernel with grid-wide barriers between its five phases, every
    # weight tile prefetched before the first (kernels/gla/block_persistent.py).
    "persistent": {"persistent": True, "num_warps": 8, "tile": 16, "proj_tile": 32, "small_rows": False},
    "value_tile16": {"value_tile": 16},  # value channels per recurrence program
    "value_tile64": {"value_tile": 64},
    "warps4": {"num_warps": 4},
    # The eleventh GPU session's steps to the default (per block step, batch 1): the tenth GPU session's
    # design, 16 rows and tensor-core dots on 16/32-column tiles, 26.4 us; small rows with those
    # tiles 21.7; 8/16-column tiles 19.5; the default's 4/8 17.7 (XLA 35.8). `wide_tiles` is
    # also the one for loops of 16 rows or more (the default's 4-column multiply-and-sum over 16+
    # rows is correct but spills registers).
    "wide_tiles": {"tile": 16, "proj_tile": 32, "small_rows": False},
    "tile16": {"tile": 16, "proj_tile": 32},
    "tile8": {"tile": 8, "proj_tile": 16},
    "warps16": {"num_warps": 16},
    "programs64": {"programs": 64},
    "programs96": {"programs": 96},
}


KERNELS = ("in_proj", "recurrence", "out_proj", "mlp_in", "mlp_out")
# Per-kernel warps, "<kernel>_warps<N>" (e.g. out_proj_warps4: the default W_o kernel's before
# the tenth GPU session). The whole-head recurrence (whole_recurrence) keeps its own rule.
KERNEL_WARPS = {f"{k}_warps{n}": (k, n) for k in KERNELS for n in (2, 4, 8, 16)}


def parse_options(spec: str) -> dict:
    """"name,name" (names of `OPTIONS` or `KERNEL_WARPS`; "" = defaults) -> BlockDims keyword
    arguments."""
    kwargs: dict = {}
    warps = dict(BlockDims.__dataclass_fields__["kernel_warps"].default)
    for name in filter(None, (part.strip() for part in spec.split(","))):
        if name in KERNEL_WARPS:
            kernel, n = KERNEL_WARPS[name]
            warps[kernel] = n
            kwargs["kernel_warps"] = tuple(sorted(warps.items()))
        elif name in OPTIONS:
            kwargs.update(OPTIONS[name])
        else:
            raise ValueError(f"unknown fused decode kernel option {name!r}; valid: {', '.join(OPTIONS)}, "
                             f"<kernel>_warps<2|4|8|16> with kernel one of {', '.join(KERNELS)}")
    return kwargs


def kernel_warps(dims: BlockDims, kernel: str) -> int:
    """Warps of ``kernel`` (one of `KERNELS`)."""
    return dict(dims.kernel_warps).get(kernel, dims.num_warps)


def make_dims(d: int, heads: int, head_k: int, head_v: int, rank: int, hidden: int,
              gate_logit_normalizer: float, eps: float, options: str = "") -> BlockDims:
    """BlockDims with the default tiles (narrow, so that a batch-1 step spreads each weight
    over many programs: a 512 x 512 matrix is 32 programs of 16 columns, each one load) and
    the A/B ``options`` (see `OPTIONS`)."""
    kwargs = parse_options(options)
    value_tile = min(kwargs.pop("value_tile", 32), head_v)
    return BlockDims(d=d, heads=heads, head_k=head_k, head_v=head_v, rank=rank, hidden=hidden,
                     gate_logit_normalizer=float(gate_logit_normalizer), eps=float(eps),
                     value_tile=value_tile, **kwargs)


def padded_rows(batch: int, small_rows: bool) -> int:
    """Rows R the activations carry for ``batch`` real rows (``small_rows``: the blocks'
    `BlockDims.small_rows`, so that the caller and the kernels agree)."""
    if small_rows and batch < ROW_MULTIPLE:
        return 1 << max(batch - 1, 0).bit_length()
    return -(-batch // ROW_MULTIPLE) * ROW_MULTIPLE
