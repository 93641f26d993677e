"""Configuration of the DAC codec: :class:`DACConfig` and the named presets.

:class:`DACConfig` is the architecture of a DAC model (the keyword arguments of the PyTorch
``DAC``) plus ``n_q``, the codebooks used to encode. The presets are the official 16 / 24 /
44.1 kHz models and our compact ``dac_mini24``; :data:`PRESETS` maps their names to their
constructors and :func:`preset` looks one up. Pure configuration: no JAX, no model code (the
network is in :mod:`small_e_jax.codec.dac`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import numpy as np

from small_e_jax.codec.base import CodeRates


@dataclasses.dataclass(frozen=True)
class DACConfig(CodeRates):
    """Architecture of a DAC model (the keyword arguments of the PyTorch ``DAC``) plus ``n_q``.

    ``n_codebooks`` is how many codebooks the weights hold; ``n_q`` (``None`` = all) is how many
    the codec uses to encode (the residual quantiser's first ``n_q`` stages; each adds
    ``log2(codebook_size) * frame_rate`` bits/s).
    """

    sample_rate: int = 24_000
    encoder_dim: int = 64
    encoder_rates: tuple[int, ...] = (2, 4, 5, 8)
    latent_dim: Optional[int] = None  # None: encoder_dim * 2 ** len(encoder_rates), as DAC does
    decoder_dim: int = 1536
    decoder_rates: tuple[int, ...] = (8, 5, 4, 2)
    n_codebooks: int = 32
    codebook_size: int = 1024
    codebook_dim: int = 8
    n_q: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoder_rates", tuple(int(r) for r in self.encoder_rates))
        object.__setattr__(self, "decoder_rates", tuple(int(r) for r in self.decoder_rates))
        for name in ("sample_rate", "encoder_dim", "decoder_dim", "n_codebooks", "codebook_size",
                     "codebook_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"DACConfig.{name} must be a positive integer, got {value!r}")
        if not self.encoder_rates or any(r <= 0 for r in self.encoder_rates):
            raise ValueError(f"DACConfig.encoder_rates must be positive integers, got {self.encoder_rates}")
        if not self.decoder_rates or any(r <= 0 for r in self.decoder_rates):
            raise ValueError(f"DACConfig.decoder_rates must be positive integers, got {self.decoder_rates}")
        if self.decoder_dim % 2 ** len(self.decoder_rates):
            raise ValueError(f"DACConfig.decoder_dim={self.decoder_dim} must be divisible by "
                             f"2**len(decoder_rates)={2 ** len(self.decoder_rates)}")
        if self.latent_dim is not None and self.latent_dim <= 0:
            raise ValueError(f"DACConfig.latent_dim must be positive or None, got {self.latent_dim}")
        if self.n_q is not None and not 1 <= self.n_q <= self.n_codebooks:
            raise ValueError(f"DACConfig.n_q={self.n_q} must lie in 1..n_codebooks={self.n_codebooks}")

    @property
    def latent(self) -> int:
        """Latent width D between encoder, quantiser and decoder."""
        return self.latent_dim if self.latent_dim is not None else self.encoder_dim * 2 ** len(self.encoder_rates)

    @property
    def hop_length(self) -> int:
        """Samples per code frame (product of the encoder strides)."""
        return int(np.prod(self.encoder_rates))

    @property
    def bitrate(self) -> float:
        """Bits per second of the codes at ``num_quantizers`` codebooks."""
        return self.frame_rate * self.num_quantizers * math.log2(self.codebook_size)

    def replace(self, **changes: Any) -> "DACConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["encoder_rates"] = list(self.encoder_rates)
        d["decoder_rates"] = list(self.decoder_rates)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DACConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DACConfig keys {unknown}; valid keys: {sorted(known)}")
        return cls(**d)


def dac_16khz(n_q: Optional[int] = None) -> DACConfig:
    """Official 16 kHz model (release 0.0.5): hop 320, 50 frames/s, 12 codebooks."""
    return DACConfig(sample_rate=16_000, encoder_dim=64, encoder_rates=(2, 4, 5, 8), decoder_dim=1536,
                     decoder_rates=(8, 5, 4, 2), n_codebooks=12, codebook_size=1024, codebook_dim=8, n_q=n_q)


def dac_24khz(n_q: Optional[int] = 4) -> DACConfig:
    """Official 24 kHz model (release 0.0.4): hop 320, 75 frames/s, 32 codebooks, 74.7M params.

    Our default uses the first 4 codebooks: 4 x 10 bits x 75 frames/s = 3 kbps.
    """
    return DACConfig(sample_rate=24_000, encoder_dim=64, encoder_rates=(2, 4, 5, 8), decoder_dim=1536,
                     decoder_rates=(8, 5, 4, 2), n_codebooks=32, codebook_size=1024, codebook_dim=8, n_q=n_q)


def dac_44khz(n_q: Optional[int] = None) -> DACConfig:
    """Official 44.1 kHz model (8 kbps, release 0.0.1): hop 512, ~86.1 frames/s, 9 codebooks."""
    return DACConfig(sample_rate=44_100, encoder_dim=64, encoder_rates=(2, 4, 8, 8), decoder_dim=1536,
                     decoder_rates=(8, 8, 4, 2), n_codebooks=9, codebook_size=1024, codebook_dim=8, n_q=n_q)


def dac_mini24(n_q: Optional[int] = None) -> DACConfig:
    """Our compact 24 kHz model, trained on the bundled mini corpus (``python -m small_e_jax.codec.train``).

    Same layout as the official 24 kHz model (hop 320, 75 frames/s, codebooks of 1024 x dim 8) but
    narrow (encoder_dim 16, decoder_dim 256: 3.0M parameters) and only the 4 codebooks the TTS
    model reads (3 kbps). Small enough that its train state (parameters + AdamW moments, ~36 MB)
    fits the few-minute GPU runs it is trained in and its weights (~12 MB) ship in the repo.
    """
    return DACConfig(sample_rate=24_000, encoder_dim=16, encoder_rates=(2, 4, 5, 8), decoder_dim=256,
                     decoder_rates=(8, 5, 4, 2), n_codebooks=4, codebook_size=1024, codebook_dim=8, n_q=n_q)


PRESETS = {"dac_16khz": dac_16khz, "dac_24khz": dac_24khz, "dac_44khz": dac_44khz, "dac_mini24": dac_mini24}


def preset(name: str, n_q: Optional[int] = None) -> DACConfig:
    """A preset config by name (``dac_16khz``, ``dac_24khz``, ``dac_44khz``, ``dac_mini24``); ``n_q`` overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown DAC preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    return cfg if n_q is None else cfg.replace(n_q=n_q)
