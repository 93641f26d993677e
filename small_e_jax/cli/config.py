"""``python -m small_e_jax.config``: print the resolved config (a preset or YAML file, then ``a.b=c``
overrides) as YAML (README.md, Configuration). The library and the ``--help`` text: :mod:`small_e_jax.config`."""

from __future__ import annotations

import sys
from typing import Sequence

from small_e_jax import config
from small_e_jax.cli import entry_point, error


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Print the resolved config as YAML; one-line error and exit code 2 on bad input."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(config.__doc__.strip())
        print(f"\npresets: {', '.join(config.presets())}")
        return 0
    try:
        resolved = config.parse_cli(argv)
    except config.ConfigError as err:
        return error(err, 2)
    print(config.config_to_yaml(resolved), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
