"""What every command-line entry point shares: one-line errors, exit codes, ``--debug``, quiet logs.

Wrap an entry point's ``main(argv)`` with :func:`entry_point`; it then ends on bad input with a
single ``error: ...`` line on stderr and a documented exit code instead of a traceback:

* ``0`` done; ``1`` the run itself failed (diverged, no usable checkpoint) or an unexpected
  error; ``2`` bad usage or bad input (arguments, config, files); ``3`` an optional dependency is
  missing; ``130`` interrupted (Ctrl-C). Training also uses ``143``: stopped by SIGTERM after saving.

``--debug`` (anywhere on the command line) or ``SMALL_E_DEBUG=1`` lets the traceback through and
keeps the libraries' log lines. Without it, the absl/orbax/asyncio chatter that the checkpoint
library prints around a failed restore (e.g. "Event loop is closed") is silenced.
Set ``SMALL_E_VERBOSE=1`` to keep the libraries' log lines without the traceback.

One flag style for every command line: ``--words-with-hyphens``. Most commands already spelled
their flags with hyphens (``--texts-file``, ``--out-dir``); a few used underscores (``--data_dir``,
``--manual_dir``). :class:`ArgumentParser` is argparse's parser that also accepts the underscore
spelling of every hyphenated long flag, so commands written before the change (in notes, scripts,
shell history) keep working. The help shows one spelling.

The commands themselves are the modules of this package, one each (``small_e_jax.cli.train``,
``synthesize``, ``evaluate``, ``build_data``, ``export``, ``serve``, and the tools: ``config``,
``params``, ``pretrained``, ``ist``, ``codec_train``, ``codec_convert``, ``codec_quality``,
``build_tokenizer``, ``example_clips``, ``transport``, ``transcribe``, ``corpus_text``,
``make_mini_corpus``, ``make_synthetic_corpus``): each parses its arguments and calls the library.
Their documented paths (``python -m small_e_jax.synthesize``, ``python -m data_pipeline.build``, the
console scripts of pyproject.toml) hand over to them; a library module that is also a documented
command (``data_pipeline.build``, ``small_e_jax.serve``, ``small_e_jax.config``, ...) runs its
command by name in its ``__main__`` block (``runpy.run_module``), so that no library module
imports a command and the imports make no circle. This module imports none of them: it stays
pure Python for the library modules that use its helpers (``small_e_jax.config`` loads no JAX).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
import threading
import warnings
from typing import Any, Callable, Iterator, NoReturn, Optional, Sequence

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_MISSING_DEPENDENCY = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_SIGTERM = 130, 143
DEBUG_FLAG, DEBUG_ENV, VERBOSE_ENV = "--debug", "SMALL_E_DEBUG", "SMALL_E_VERBOSE"
_active = False  # inside run_main: nested entry points pass exceptions to the outer one
MAX_MESSAGE = 600  # characters: a message is for a person, not a dump of a TensorStore spec

# Loggers of the libraries that chatter on stderr; raised to ERROR (CRITICAL for asyncio) by default.
NOISY_LOGGERS = {"absl": logging.ERROR, "orbax": logging.ERROR, "orbax.checkpoint": logging.ERROR,
                 "jax._src.xla_bridge": logging.ERROR, "tensorflow": logging.ERROR,
                 "asyncio": logging.CRITICAL}


class UserError(ValueError):
    """Bad input found by an entry point itself; its message is the one line shown."""


def one_line(exc: BaseException | str) -> str:
    """The message of ``exc`` on one line (whitespace collapsed, cut at ``MAX_MESSAGE``)."""
    text = exc if isinstance(exc, str) else str(exc)
    if isinstance(exc, KeyError) and exc.args:  # str(KeyError) is the repr of the key alone
        text = f"missing key {exc.args[0]!r}"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"  # e.g. "x.wav: No such file or directory"
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def take_debug(argv: Sequence[str]) -> tuple[bool, list[str]]:
    """``(debug, argv without --debug)``; ``SMALL_E_DEBUG=1`` (any value but 0/empty) also asks for it."""
    rest = [a for a in argv if a != DEBUG_FLAG]
    env = os.environ.get(DEBUG_ENV, "").strip()
    return len(rest) != len(argv) or env not in ("", "0"), rest


def _closed_loop(exc: Optional[BaseException]) -> bool:
    return isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc)


def _install_quiet_hooks() -> None:
    """Drop "Event loop is closed" wherever Python would print it: orbax's background threads
    outlive their asyncio loop when a run ends early (e.g. every checkpoint corrupt), and the
    native callbacks print one traceback each (through ``sys.excepthook``), burying the real error.
    Every other exception reaches the original hooks."""
    if getattr(sys.excepthook, "_small_e_quiet", False):
        return
    excepthook, unraisable, thread_hook = sys.excepthook, sys.unraisablehook, threading.excepthook

    def quiet_excepthook(kind: Any, value: Any, tb: Any) -> None:
        if not _closed_loop(value):
            excepthook(kind, value, tb)

    def quiet_unraisable(info: Any) -> None:
        if not _closed_loop(info.exc_value):
            unraisable(info)

    def quiet_thread_hook(args: Any) -> None:
        if not _closed_loop(args.exc_value):
            thread_hook(args)

    quiet_excepthook._small_e_quiet = True  # type: ignore[attr-defined]
    sys.excepthook, sys.unraisablehook, threading.excepthook = quiet_excepthook, quiet_unraisable, quiet_thread_hook


def verbose() -> bool:
    """Whether ``SMALL_E_VERBOSE`` asks for the libraries' full logs (errors are still one line)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false")


def quiet_libraries() -> None:
    """Silence the libraries' routine chatter: absl/orbax/TFDS/asyncio log lines, orbax's restore
    warnings ("Sharding info not provided", "read only") and the "Event loop is closed" tracebacks.
    Idempotent; called by :func:`run_main` (the ``--debug`` path skips it), never on import; a
    no-op when :func:`verbose`."""
    if verbose():
        return
    for name, level in NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _install_quiet_hooks()
    try:  # absl writes through its own handler too (absl is a dependency of grain/orbax)
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    # orbax: "Sharding info not provided when restoring..." on every single-device restore.
    warnings.filterwarnings("ignore", message=r"Sharding info not provided", category=UserWarning)
    warnings.filterwarnings("ignore", message=r".*[Gg]iven directory is read only.*")


def error(message: BaseException | str, code: int = EXIT_BAD_INPUT) -> int:
    """Print ``error: <message>`` (one line) on stderr; returns ``code`` for ``return error(...)``."""
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    return code


def _argparse_error(self: argparse.ArgumentParser, message: str) -> NoReturn:
    print(f"error: {self.prog}: {one_line(message)} (see --help)", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_INPUT)


@contextlib.contextmanager
def _one_line_argparse() -> Iterator[None]:
    """argparse prints its usage block before the error; inside an entry point it prints one line.
    Patched for the call only (every parser of every entry point, without touching each one)."""
    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _argparse_error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


def _bad_input_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the input was wrong (exit 2); imported lazily to keep start-up light."""
    types: list[type[BaseException]] = [UserError, ValueError, KeyError, OSError, UnicodeError]
    for module, name in (("small_e_jax.config", "ConfigError"), ("small_e_jax.workdir_lock", "WorkdirLocked")):
        mod = sys.modules.get(module)
        if mod is not None:
            types.append(getattr(mod, name))
    return tuple(types)


def _failed_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the run failed on good input (exit 1): divergence, no usable checkpoint."""
    types: list[type[BaseException]] = []
    for module, name in (("small_e_jax.checkpoint", "CheckpointError"), ("small_e_jax.train", "TrainingDiverged")):
        mod = sys.modules.get(module)
        if mod is not None:
            types.append(getattr(mod, name))
    return tuple(types)


def run_main(main: Callable[..., Optional[int]], argv: Optional[Sequence[str]] = None, **kwargs: Any) -> int:
    """Call ``main(argv, **kwargs)`` and turn any exception into one ``error:`` line and an exit code."""
    global _active
    debug, args = take_debug(list(sys.argv[1:] if argv is None else argv))
    if _active:  # an entry point calling another (a recipe's main): the outer one reports
        return int(main(args, **kwargs) or 0)
    _active = True
    try:
        if debug:
            return int(main(args, **kwargs) or 0)
        quiet_libraries()
        return _reported(main, args, kwargs)
    finally:
        _active = False


def _reported(main: Callable[..., Optional[int]], args: list[str], kwargs: dict[str, Any]) -> int:
    try:
        with _one_line_argparse():
            return int(main(args, **kwargs) or 0)
    except SystemExit as exc:  # argparse (its one line already printed) or an explicit exit: passed on
        if isinstance(exc.code, str):  # SystemExit("message"): printed our way, with our code
            error(exc.code)
            raise SystemExit(EXIT_BAD_INPUT) from None
        raise
    except KeyboardInterrupt:
        return error("interrupted", EXIT_INTERRUPTED)
    except ImportError as exc:
        return error(f"{exc} (an optional dependency is missing)", EXIT_MISSING_DEPENDENCY)
    except _failed_types() as exc:
        return error(exc, EXIT_FAILED)
    except _bad_input_types() as exc:
        return error(exc, EXIT_BAD_INPUT)
    except Exception as exc:  # a bug, not bad input: still one line, with the way to see more
        return error(f"unexpected {type(exc).__name__}: {one_line(exc)} (rerun with {DEBUG_FLAG} "
                     "for the traceback)", EXIT_FAILED)


def entry_point(main: Callable[..., Optional[int]]) -> Callable[..., int]:
    """Decorator form of :func:`run_main`: ``main(argv=None, **kwargs)`` keeps its signature."""

    @functools.wraps(main)
    def wrapper(argv: Optional[Sequence[str]] = None, **kwargs: Any) -> int:
        return run_main(main, argv, **kwargs)

    return wrapper


# --- one flag style ---------------------------------------------------------------------------

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
        argv = list(sys.argv[1:] if args is None else args)
        known = {s for a in self._actions for s in a.option_strings}
        out, passthrough = [], False
        for arg in argv:
            passthrough = passthrough or arg == "--"
            out.append(arg if passthrough else hyphenate(arg, known))
        return super().parse_known_args(out, namespace)
