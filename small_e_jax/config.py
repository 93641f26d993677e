"""One config tree for every stage: typed dataclasses, YAML files, ``a.b=c`` overrides.

A run is described by a :class:`Config`. It is built in three layers, later ones winning:

1. the dataclass defaults below (they describe the paper's 64M GLA model, ``small_e_librilight_medium``);
2. a YAML file: a preset name shipped in ``small_e_jax/presets/`` (``tiny``,
   ``small_e_librilight_medium``, ``transformer_baseline``) or a path to the user's own file;
3. ``key.sub=value`` command-line overrides (values are parsed as YAML scalars/lists).

Typed decoding is done by `draccus` (a maintained dataclass/YAML parser); this module only adds
what it lacks: presets, ``a.b=c`` overrides, an unknown-key message that lists the valid keys,
cross-field checks, and a one-line :class:`ConfigError` for every kind of bad input. The resolved
config serialises back to YAML/JSON so that checkpoints carry it.

Command line: ``python -m small_e_jax.config [--config PRESET_OR_YAML] [a.b=c ...]`` prints the
resolved YAML (exit 2 with a one-line ``error: ...`` on bad input).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence

import draccus
import yaml

PRESET_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """A bad config file, key, value or combination; the message is one line for the user."""


# --------------------------------------------------------------------------- sections


@dataclasses.dataclass
class ModelConfig:
    """The Small-E model (docs/model.md §2-§5). Defaults: the 62.8M GLA model, d = d_c = 512."""

    # Text side.
    text_vocab_size: int = 256
    d_context: int = 512  # d_c: text encoder width
    text_layers: int = 9
    text_heads: int = 4
    text_dropout: float = 0.1
    # Audio side: `encoder_layers` blocks, cross-attention, `decoder_layers` blocks.
    d_model: int = 512  # d: audio width
    block: Literal["gla", "simple_gla", "transformer"] = "gla"
    encoder_layers: int = 6
    decoder_layers: int = 6
    heads: int = 4
    expand_k: float = 1.0  # per-head key dim K = d * expand_k / heads (128 at d=512)
    expand_v: float = 2.0  # per-head value dim V = d * expand_v / heads (256 at d=512)
    gate_low_rank: int = 16
    gate_logit_normalizer: float = 16.0
    block_dropout: float = 0.0
    # Cross-attention to the text.
    cross_attention: Literal["paca", "plain"] = "paca"
    cross_attention_heads: int = 1  # plain cross-attention only; PACA is single-head
    d_blind: int = 512  # d_b: width of PACA's positional network
    pos_net_heads: Optional[int] = None  # GLA heads of PACA's positional network; None = model.heads
    paca_rotary: bool = True  # Small-E era: rotary on half of PACA's first attention
    attention_dropout: float = 0.1
    compat_unmasked_text: bool = False  # reproduce the authors' no-op text masks (docs/model.md §8)
    # Audio vocabulary: per codebook PAD=0, BOA=1, EOA=2, codes at 3 + c.
    n_codebooks: int = 4
    codebook_size: int = 1024
    n_special_tokens: int = 3
    loss_include_boa: bool = False
    # Numerics and kernels.
    dtype: Literal["float32", "bfloat16"] = "bfloat16"  # compute dtype
    param_dtype: Literal["float32", "bfloat16"] = "float32"
    gla_backend: str = "auto"
    gla_chunk_size: int = 64
    # Decode step kernels: "pallas" = each GLA block as five fused Pallas kernels
    # (kernels/gla/block_step.py; interpret mode off GPU), "xla" = XLA ops, "auto" (default) =
    # pallas on a GPU for decode loops of <= AUTO_PALLAS_MAX_ROWS (4) rows, else xla. H200, 64M
    # model (benchmarks/RESULTS.md, eleventh GPU session): 1 row 0.254 ms per step vs XLA 0.510, 4 rows
    # 0.352 vs 0.431, 8 rows 0.476 vs 0.457.
    decode_kernels: Literal["auto", "xla", "pallas"] = "auto"
    # A/B variants of the fused kernels, "name,name" from kernels.gla.block_step.OPTIONS
    # (for benchmarks; "" = the measured best).
    decode_kernel_options: str = ""
    remat: bool = True  # activation checkpointing on every block

    @property
    def audio_vocab_size(self) -> int:
        return self.codebook_size + self.n_special_tokens

    def validate(self) -> None:
        # Sizes first: a zero head count must be named, not end in a ZeroDivisionError below.
        _positive(self, "model", ("text_vocab_size", "d_context", "text_heads", "d_model", "heads",
                                  "d_blind", "n_codebooks", "codebook_size", "gate_low_rank",
                                  "gla_chunk_size", "cross_attention_heads", "expand_k", "expand_v"))
        if self.d_model % self.heads:
            raise ConfigError(f"model.d_model={self.d_model} is not divisible by model.heads={self.heads}")
        if self.d_context % self.text_heads:
            raise ConfigError(
                f"model.d_context={self.d_context} is not divisible by model.text_heads={self.text_heads}")
        for name in ("expand_k", "expand_v"):
            width = self.d_model * getattr(self, name)
            if width != int(width) or int(width) % self.heads:
                raise ConfigError(f"model.{name}={getattr(self, name)} gives a width of {width}, "
                                  f"not a multiple of model.heads={self.heads}")
        _non_negative(self, "model", ("text_layers", "encoder_layers", "decoder_layers"))
        from kernels.block_dims import parse_options  # pure Python: config loads no JAX

        try:
            parse_options(self.decode_kernel_options)
        except ValueError as err:
            raise ConfigError(f"model.decode_kernel_options: {err}") from None
        for name in ("text_dropout", "block_dropout", "attention_dropout"):
            _probability(self, "model", name)
        _positive(self, "model", ("gate_logit_normalizer",))
        pos_heads = self.pos_net_heads if self.pos_net_heads is not None else self.heads
        if pos_heads <= 0:
            raise ConfigError(f"model.pos_net_heads={self.pos_net_heads} must be > 0")
        if self.d_blind % 2:
            raise ConfigError(f"model.d_blind={self.d_blind} must be even (sin/cos position code)")
        for name in ("expand_k", "expand_v"):
            width = self.d_blind * getattr(self, name)
            if width != int(width) or int(width) % pos_heads:
                raise ConfigError(f"model.d_blind={self.d_blind} x model.{name}={getattr(self, name)} gives "
                                  f"{width}, not a multiple of the {pos_heads} positional-network heads "
                                  "(model.pos_net_heads)")
        if self.cross_attention == "plain" and self.d_model % self.cross_attention_heads:
            raise ConfigError(f"model.d_model={self.d_model} is not divisible by "
                              f"model.cross_attention_heads={self.cross_attention_heads}")
        # Rotary acts on half of each head's channels, in (even, odd) pairs.
        rotary = [("text head", self.d_context // self.text_heads)]
        if self.cross_attention == "plain":
            rotary.append(("cross-attention head", self.d_model // self.cross_attention_heads))
        if self.block == "transformer":
            rotary.append(("self-attention head", self.d_model // self.heads))
        if self.cross_attention == "paca" and self.paca_rotary:
            rotary.append(("PACA query", self.d_model))
        for what, width in rotary:
            if width % 4:
                raise ConfigError(f"model: the {what} width {width} must be a multiple of 4 "
                                  "(rotary embeddings on half of it, in pairs)")


@dataclasses.dataclass
class DataConfig:
    """Where batches come from and how they are cut (docs/model.md §1)."""

    dataset: str = "mini"  # a TFDS builder of data_pipeline/builders (data_pipeline.builders.BUILDERS)
    data_dir: Optional[str] = None  # TFDS data dir; None = ~/tensorflow_datasets
    manual_dir: Optional[str] = None  # raw corpus for builders that need one
    codec: str = "dac_24khz"
    codec_weights: Optional[str] = None  # directory of converted codec weights; None = random init
    text_tokenizer: Literal["bpe", "phoneme"] = "bpe"
    min_frames: int = 1
    max_frames: int = 2000  # ≈ 26.7 s at 75 frames/s
    max_text_tokens: int = 512
    frames_per_batch: int = 24_000  # budget per global batch: B_global * L (delayed columns, padding incl.)
    n_buckets: int = 10  # at most this many length bins (fewest batches); one (L, J, B) shape each
    # Bucket lengths (delayed audio columns) are rounded up to a multiple of this. 64 = the GLA
    # chunk: the kernels would pad any other length to it anyway, and copy q, k, v and the gates
    # of every layer to do so (the filler columns are masked out of the loss).
    length_multiple: int = 64
    validation_utterances: int = 2000  # not read by data_pipeline: builders write their own validation split
    shuffle_seed: int = 123
    worker_count: int = 0  # grain worker processes (0 = in the main process)

    def validate(self) -> None:
        _positive(self, "data", ("max_frames", "frames_per_batch", "n_buckets", "max_text_tokens",
                                 "length_multiple"))
        _non_negative(self, "data", ("min_frames", "validation_utterances", "worker_count"))
        if self.min_frames > self.max_frames:
            raise ConfigError(f"data.min_frames={self.min_frames} exceeds data.max_frames={self.max_frames}")


@dataclasses.dataclass
class OptimizerConfig:
    """AdamW with linear warm-up and cosine decay to zero (docs/model.md §6)."""

    learning_rate: float = 5e-4
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.1
    decay_norms_and_embeddings: bool = True  # the authors decay every parameter
    warmup_steps: int = 500
    schedule: Literal["cosine", "constant"] = "cosine"
    grad_clip_norm: float = 1.0
    grad_accumulation: int = 1

    def validate(self) -> None:
        _positive(self, "optimizer", ("learning_rate", "eps", "grad_accumulation"))
        _non_negative(self, "optimizer", ("weight_decay", "warmup_steps", "grad_clip_norm"))
        for name in ("b1", "b2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"optimizer.{name}={getattr(self, name)} must be in [0, 1)")


@dataclasses.dataclass
class TrainerConfig:
    """The training loop."""

    workdir: str = "runs/default"
    steps: int = 300_000
    seed: int = 123
    log_every: int = 50
    eval_every: int = 5_000
    max_consecutive_bad_steps: int = 10  # NaN/inf steps are skipped; stop after this many in a row
    cfg_text_dropout: float = 0.0  # P(row text -> null text [BOS, EOS]) for classifier-free guidance (small_e_jax/guidance.py)
    profile_steps: tuple[int, ...] = ()  # steps to capture a profiler trace at
    eval_batches: int = 16  # validation batches per evaluation (0 = no validation)
    distributed: Literal["auto", "on", "off"] = "auto"  # jax.distributed.initialize(); auto = if env says multi-host
    progress_bar: bool = True  # tqdm bar on the console (process 0) when stdout is a terminal; plain lines otherwise
    # Warn when the validation loss rises this many evaluations in a row (overfitting); 0 = never.
    warn_val_rise: int = 3
    tensorboard: bool = True  # event files in <workdir>/tensorboard (process 0)
    # On GPU: record each step's kernels as CUDA graphs (XLA command buffers) and replay them,
    # so the host does not launch thousands of kernels one by one (small_e_jax/gpu_graphs.py;
    # +41% frames/s for the GLA model on an H200). Read at start-up by the entry points.
    cuda_graphs: bool = True

    def validate(self) -> None:
        _positive(self, "trainer", ("steps", "log_every", "eval_every", "max_consecutive_bad_steps"))
        _non_negative(self, "trainer", ("eval_batches", "warn_val_rise"))
        _probability(self, "trainer", "cfg_text_dropout")


@dataclasses.dataclass
class MeshConfig:
    """Device mesh and logical-axis rules. An axis size of -1 takes the remaining devices."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    # (logical axis name, mesh axis or null). Parameters and activations are annotated with
    # logical names; these rules map them to the mesh.
    logical_axis_rules: list[tuple[str, Optional[str]]] = dataclasses.field(default_factory=lambda: [
        ("batch", "data"),
        ("batch", "fsdp"),  # a name may map to several mesh axes: FSDP also splits the batch
        ("embed", "fsdp"),
        ("heads", "tensor"),
        ("mlp", "tensor"),
        ("vocab", "tensor"),
        ("kv", None),
        ("length", None),
    ])

    def validate(self) -> None:
        sizes = {"data": self.data, "fsdp": self.fsdp, "tensor": self.tensor}
        if list(sizes.values()).count(-1) > 1:
            raise ConfigError("mesh: at most one of data/fsdp/tensor may be -1 (the remaining devices)")
        for name, size in sizes.items():
            if size == 0 or size < -1:
                raise ConfigError(f"mesh.{name}={size} must be a positive size or -1")
        for rule in self.logical_axis_rules:
            if rule[1] is not None and rule[1] not in sizes:
                raise ConfigError(f"mesh.logical_axis_rules: {rule[0]!r} maps to unknown mesh axis "
                                  f"{rule[1]!r}; valid: data, fsdp, tensor or null")


@dataclasses.dataclass
class CheckpointConfig:
    """Orbax checkpointing: where, how often, how many kept."""

    directory: Optional[str] = None  # None = <trainer.workdir>/checkpoints
    save_every_steps: int = 5_000
    save_every_minutes: float = 30.0  # time-based saves for preemptible machines (0 = off)
    keep: int = 3
    keep_best: int = 1  # best by validation loss
    async_save: bool = True

    def validate(self) -> None:
        _positive(self, "checkpoint", ("save_every_steps", "keep"))
        _non_negative(self, "checkpoint", ("save_every_minutes", "keep_best"))


@dataclasses.dataclass
class EvalConfig:
    """Offline evaluation."""

    asr_model: Optional[str] = None  # path to a CTranslate2 Whisper model; None = bundled tiny.en
    sentences: Optional[str] = None  # text file, one sentence per line; None = built-in list
    max_decode_frames: int = 2000
    temperature: float = 1.0
    top_k: int = 100
    seed: int = 0

    def validate(self) -> None:
        _positive(self, "eval", ("max_decode_frames",))
        _non_negative(self, "eval", ("temperature", "top_k"))


@dataclasses.dataclass
class Config:
    """The whole run."""

    name: str = "small_e_librilight_medium"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)

    def validate(self) -> "Config":
        for field in dataclasses.fields(self):
            section = getattr(self, field.name)
            if dataclasses.is_dataclass(section):
                section.validate()
        if self.optimizer.warmup_steps > self.trainer.steps:
            raise ConfigError(f"optimizer.warmup_steps={self.optimizer.warmup_steps} exceeds "
                              f"trainer.steps={self.trainer.steps}")
        return self


# --------------------------------------------------------------------------- checks


def _finite(section: Any, prefix: str, name: str) -> float:
    """The value of ``name``; NaN and infinity are refused (``nan <= 0`` is False: they would pass)."""
    value = getattr(section, name)
    if not math.isfinite(value):
        raise ConfigError(f"{prefix}.{name}={value} must be a finite number")
    return value


def _positive(section: Any, prefix: str, names: Sequence[str]) -> None:
    for name in names:
        if _finite(section, prefix, name) <= 0:
            raise ConfigError(f"{prefix}.{name}={getattr(section, name)} must be > 0")


def _non_negative(section: Any, prefix: str, names: Sequence[str]) -> None:
    for name in names:
        if _finite(section, prefix, name) < 0:
            raise ConfigError(f"{prefix}.{name}={getattr(section, name)} must be >= 0")


def _probability(section: Any, prefix: str, name: str) -> None:
    if not 0.0 <= getattr(section, name) <= 1.0:
        raise ConfigError(f"{prefix}.{name}={getattr(section, name)} must be in [0, 1]")


# --------------------------------------------------------------------------- building


def presets() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _check_keys(cls: type, raw: Mapping[str, Any], path: str) -> None:
    """Reject unknown keys (listing the valid ones) and booleans given for numbers."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys, got {type(raw).__name__} {raw!r}")
    types = _field_types(cls)
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in types:
            raise ConfigError(f"unknown config key {where!r}; valid keys"
                              f"{' of ' + repr(path) if path else ''}: {', '.join(types)}")
        field_type = types[key]
        if dataclasses.is_dataclass(field_type):
            _check_keys(field_type, value, where)
        elif isinstance(value, bool) and field_type in (int, float):
            raise ConfigError(f"{where}: expected {field_type.__name__}, got boolean {value}")


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is a value, not a section")
        node = child
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.d_model=256"`` -> ``("model.d_model", 256)``; values are YAML scalars or lists."""
    key, sep, value = text.removeprefix("--").partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"bad override {text!r}: expected key.sub=value")
    try:
        return key, yaml.safe_load(value) if value else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err.problem})") from None


def read_yaml(source: str | Path) -> dict[str, Any]:
    """Read a preset by name or a YAML file by path into a plain dict."""
    path = Path(source)
    if not path.suffix and (PRESET_DIR / f"{source}.yaml").exists():
        path = PRESET_DIR / f"{source}.yaml"
    if not path.exists():
        raise ConfigError(f"config file {str(source)!r} not found (presets: {', '.join(presets())})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Decode a nested dict (from YAML/JSON) into a validated :class:`Config`."""
    _check_keys(Config, raw, "")
    try:
        config = draccus.decode(Config, dict(raw))
    except draccus.utils.DecodingError as err:
        raise ConfigError(" ".join(str(err).split())) from None
    return config.validate()


def load_config(source: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Build a config from a preset name or YAML path (``None`` = defaults) and overrides."""
    raw = read_yaml(source) if source is not None else {}
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(raw, key, value)
    return config_from_dict(raw)


def config_to_dict(config: Config) -> dict[str, Any]:
    """A plain, JSON/YAML-serialisable dict that :func:`config_from_dict` turns back into ``config``."""
    return draccus.encode(config)


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def config_to_json(config: Config) -> str:
    return json.dumps(config_to_dict(config), indent=2)


def parse_cli(argv: Sequence[str]) -> Config:
    """Parse ``[--config PRESET_OR_YAML] [key=value ...]`` (``--key=value`` is accepted too)."""
    source, overrides, args = None, [], list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("--config", "-c"):
            if not args:
                raise ConfigError(f"{arg} needs a preset name or a YAML path")
            source = args.pop(0)
        elif arg.startswith("--config="):
            source = arg.split("=", 1)[1]
        else:
            overrides.append(arg)
    return load_config(source, overrides)


if __name__ == "__main__":  # the command line: small_e_jax/cli/config.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.config", run_name="__main__")
