"""Where the models shipped inside the package are (``small_e_jax/pretrained/<name>/``) and how a
name or a folder resolves to one; :mod:`small_e_jax.pretrained` makes them (export) and lists them,
``Synthesizer.from_pretrained`` loads them."""

from __future__ import annotations

from pathlib import Path

#: Models shipped inside the package: ``pretrained/<name>/`` (a params-only checkpoint + card.json).
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_MODEL = "small_e_reading"


def shipped_models() -> list[str]:
    """Names of the models shipped in the package."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "card.json").is_file())


def pretrained_path(name_or_path: str = DEFAULT_MODEL) -> Path:
    """The checkpoint directory of a shipped model (by name) or of any exported folder (by path)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    shipped = PRETRAINED_DIR / name_or_path
    if (shipped / "card.json").is_file():
        return shipped
    raise FileNotFoundError(f"no shipped model named {name_or_path!r} and no such folder; shipped: "
                            f"{', '.join(shipped_models()) or 'none'}")
