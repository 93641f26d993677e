"""Benchmark shapes and inputs, free of JAX and torch so both sides' processes can share them."""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np


@dataclasses.dataclass(frozen=True)
class Shape:
    """One GLA layer call: q, k ``[B, T, H, Dk]``, v ``[B, T, H, Dv]``."""

    label: str
    B: int
    T: int
    H: int
    Dk: int
    Dv: int

    def as_dict(self) -> dict[str, int]:
        return {"B": self.B, "T": self.T, "H": self.H, "Dk": self.Dk, "Dv": self.Dv}


SMALL_E = Shape("small_e", 8, 4096, 4, 128, 256)
SHAPE_SETS: dict[str, list[Shape]] = {
    "small_e": [SMALL_E],
    "sweep": [Shape(f"small_e_T{t}", 8, t, 4, 128, 256) for t in (1024, 2048, 8192, 16384)],
    "fla": [Shape("fla_B8_T1024_H8_D64", 8, 1024, 8, 64, 64),
            Shape("fla_B4_T4096_H64_D128", 4, 4096, 64, 128, 128)],
    "cpu": [Shape("cpu_smoke", 1, 256, 2, 32, 64)],
}


def make_inputs(shape: Shape, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random q, k, v, output cotangent ``do`` (in ``dtype``) and float32 gates made as Small-E
    makes them, ``logsigmoid(x) / 16``."""
    rng = np.random.default_rng(seed)
    B, T, H, Dk, Dv = shape.B, shape.T, shape.H, shape.Dk, shape.Dv
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    x = rng.standard_normal((B, T, H, Dk)).astype(np.float32)
    return {
        "q": rng.standard_normal((B, T, H, Dk)).astype(np_dtype),
        "k": rng.standard_normal((B, T, H, Dk)).astype(np_dtype),
        "v": rng.standard_normal((B, T, H, Dv)).astype(np_dtype),
        "log_g": (-np.logaddexp(0.0, -x) / 16.0).astype(np.float32),
        "do": rng.standard_normal((B, T, H, Dv)).astype(np_dtype),
    }
