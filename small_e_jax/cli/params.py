"""``python -m small_e_jax.model.params``: the parameter count per module of a config's model, without
allocating it (docs/model.md §5). The library and the ``--help`` text: :mod:`small_e_jax.model.params`."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from small_e_jax.cli import entry_point, error
from small_e_jax.config import ConfigError, parse_cli
from small_e_jax.model import params


@entry_point
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(params.__doc__.strip())
        return 0
    depth = 1
    if "--depth" in args:
        i = args.index("--depth")
        depth = int(args[i + 1])
        del args[i:i + 2]
    try:
        config = parse_cli(args)
    except ConfigError as err:
        return error(err, 2)
    print(params.format_report(params.param_report(config, depth)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
