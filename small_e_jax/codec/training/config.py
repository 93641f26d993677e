"""What a codec training run depends on: :class:`CodecTrainConfig` (one ``--flag`` per field, stored
in every checkpoint) and the check that a checkpoint may be resumed with the current config."""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

from small_e_jax.codec.dac_config import DACConfig, preset
from small_e_jax.codec.training.data import MINI_CORPUS


@dataclasses.dataclass
class CodecTrainConfig:
    """Everything a codec training run depends on (stored in every checkpoint)."""

    workdir: str = "runs/codec_mini"
    codec: str = "dac_mini24"  # a DAC preset (small_e_jax.codec.dac_config.PRESETS)
    model_overrides: Optional[str] = None  # JSON of DACConfig fields over the preset (tests: a tiny model)
    init_from: Optional[str] = None  # exported weights to start a new run from (e.g. --gan fine-tuning)
    corpus_dir: str = str(MINI_CORPUS)  # a folder with manifest.jsonl (split train/validation)
    max_clips: Optional[int] = None  # use only the first N train clips (tests)
    segment_seconds: float = 1.0  # crop length; rounded down to a multiple of the hop
    batch_size: int = 32  # global batch; must be divisible by the number of devices
    steps: int = 20_000  # length of the learning-rate schedule (and the run, without --max-minutes)
    max_minutes: Optional[float] = None  # wall-clock budget from start-up; save + export + stop
    stop_step: Optional[int] = None  # stop (save + export) at this step; the schedule still spans `steps`
    seed: int = 0
    # Optimizer (DAC: AdamW, betas 0.8/0.99, lr 1e-4 for 400k steps; we have far fewer steps).
    learning_rate: float = 5e-4
    warmup_steps: int = 500
    final_lr_fraction: float = 0.1  # cosine decays to learning_rate * this at `steps`
    b1: float = 0.8
    b2: float = 0.99
    weight_decay: float = 0.01
    grad_clip: float = 100.0  # global-norm clip
    # Loss weights (DAC: mel 15, codebook 1, commitment 0.25).
    mel_weight: float = 15.0
    stft_weight: float = 1.0
    waveform_weight: float = 0.0
    codebook_weight: float = 1.0
    commitment_weight: float = 0.25
    quantizer_dropout: float = 0.0  # DAC uses 0.5; the TTS model always reads all codebooks
    codebook_restart: bool = True  # re-seed codewords unused for ~hundreds of steps (restart_dead_codes)
    restart_decay: float = 0.99  # EMA of hits per codeword per step
    restart_threshold: float = 0.01  # dead below this fraction of the mean hits per codeword
    precision: str = "default"  # conv/matmul precision ("default" = TF32 on NVIDIA GPUs)
    # Adversarial training (off by default: see docs/codec_training.md).
    gan: bool = False  # multi-period + multi-scale STFT discriminators, adversarial + feature losses
    gan_kind: str = "lsgan"  # lsgan (DAC) | hinge
    gan_start_step: int = 0  # train on reconstruction losses alone before this step
    adversarial_weight: float = 1.0  # DAC: 1
    feature_weight: float = 2.0  # DAC: 2
    # Bookkeeping.
    log_every: int = 50
    eval_every: int = 500
    eval_clips: int = 32
    checkpoint_every: int = 1000
    keep_checkpoints: int = 1  # the train state is ~36 MB; keep the newest only
    progress_bar: bool = True

    def validate(self) -> None:
        for name in ("batch_size", "steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.segment_seconds <= 0:
            raise ValueError(f"--segment-seconds must be > 0, got {self.segment_seconds}")
        if self.stop_step is not None and self.stop_step < 1:
            raise ValueError(f"--stop-step must be >= 1, got {self.stop_step}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"--max-minutes must be > 0, got {self.max_minutes}")
        if self.gan_kind not in ("lsgan", "hinge"):
            raise ValueError(f"--gan-kind must be lsgan or hinge, got {self.gan_kind!r}")
        if not 0.0 <= self.quantizer_dropout <= 1.0:
            raise ValueError(f"--quantizer-dropout must lie in [0, 1], got {self.quantizer_dropout}")
        self.model_config()  # raises on an unknown preset or a bad override

    def model_config(self) -> DACConfig:
        cfg = preset(self.codec)
        if self.model_overrides:
            try:
                changes = json.loads(self.model_overrides)
            except json.JSONDecodeError as exc:
                raise ValueError(f"--model-overrides is not JSON: {exc}") from None
            if not isinstance(changes, dict):
                raise ValueError("--model-overrides must be a JSON object of DACConfig fields")
            cfg = DACConfig.from_dict({**cfg.to_dict(), **changes})
        return cfg

    def segment_samples(self) -> int:
        cfg = self.model_config()
        hops = int(self.segment_seconds * cfg.sample_rate) // cfg.hop_length
        if hops < 8:
            raise ValueError(f"--segment-seconds {self.segment_seconds} gives {hops} frames; need >= 8")
        return hops * cfg.hop_length

    # Fields that may change when a run is resumed (they do not change the model or the data).
    RESUMABLE = ("workdir", "steps", "max_minutes", "stop_step", "init_from", "log_every", "eval_every", "eval_clips",
                 "checkpoint_every", "keep_checkpoints", "progress_bar", "corpus_dir", "batch_size")


def check_resumable(saved: dict, current: CodecTrainConfig) -> None:
    """Refuse to resume a checkpoint made with a different model / loss / optimizer config."""
    now = dataclasses.asdict(current)
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {now[k]!r}" for k in sorted(now)
             if k not in CodecTrainConfig.RESUMABLE and k in saved and saved[k] != now[k]]
    if diffs:
        raise ValueError("the checkpoint in --workdir was made with another config (use a new --workdir, "
                         "or the old values): " + "; ".join(diffs))
