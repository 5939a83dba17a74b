"""The ``xcomlog`` command line: one entry point, one module per command in ``commands/``.

Each module of ``xcomlog.commands`` defines ``register(subparsers)``, which adds its
sub-command(s) and sets ``func`` to a callable taking the parsed arguments and returning
an exit code. Modules keep heavy imports inside their functions so start-up stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__, commands
from .exceptions import XcomError


class CommandParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command module registered."""
    parser = CommandParser(
        prog="xcomlog",
        description="Read, write and log Studer-Innotec installations over the Xcom protocol.",
    )
    parser.add_argument("--version", action="version", version=f"xcomlog {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except XcomError as exc:  # a checked option value (commands/_options.py)
        print(f"xcomlog: error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return code
    except BrokenPipeError:
        return _broken_pipe()
    except KeyboardInterrupt:
        return 130
    except XcomError as exc:
        print(f"xcomlog {args.command}: error: {exc}", file=sys.stderr)
        return 1


#: What a shell reports for a process ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


def _broken_pipe() -> int:
    """The reader of stdout went away (``xcomlog ... | head``): stop quietly.

    stdout is pointed at /dev/null so the interpreter's final flush does not raise again
    (the recipe of the Python documentation on SIGPIPE).
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (a test's capture)
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
