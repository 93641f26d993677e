"""One flag style for every command line: ``--words-with-hyphens``.

Most commands already spelled their flags with hyphens (``--texts-file``, ``--out-dir``); a few
used underscores (``--data_dir``, ``--manual_dir``). :class:`ArgumentParser` is argparse's parser
that also accepts the underscore spelling of every hyphenated long flag, so commands written
before the change (in notes, scripts, shell history) keep working. The help shows one spelling.
"""

from __future__ import annotations

import argparse
from typing import Any, Optional, Sequence


def hyphenate(arg: str, known: set[str]) -> str:
    """``--data_dir[=x]`` -> ``--data-dir[=x]`` when the hyphen spelling is a known flag and the
    underscore one is not; anything else (values, ``key=value`` overrides) is left alone."""
    if not arg.startswith("--") or "_" not in arg:
        return arg
    name, eq, value = arg.partition("=")
    if name in known:
        return arg
    dashed = name.replace("_", "-")
    return dashed + eq + value if dashed in known else arg


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, accepting ``--a_b`` for every ``--a-b`` flag (see the module doc).

    Only tokens before a bare ``--`` are rewritten, and only those that name a flag in
    underscore spelling, so option values are never changed."""

    def parse_known_args(self, args: Optional[Sequence[str]] = None,
                         namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        import sys

        argv = list(sys.argv[1:] if args is None else args)
        known = {s for a in self._actions for s in a.option_strings}
        out, passthrough = [], False
        for arg in argv:
            passthrough = passthrough or arg == "--"
            out.append(arg if passthrough else hyphenate(arg, known))
        return super().parse_known_args(out, namespace)
