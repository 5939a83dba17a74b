"""Helpers for tests of the command line run in this process against the simulator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from xcomlog.cli import main
from xcomlog.sim import Simulator


@contextlib.contextmanager
def tcp_options(sim: Simulator) -> Iterator[list[str]]:
    """``sim`` served on loopback TCP, as the ``--tcp HOST:PORT`` options that reach it."""
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        yield ["--tcp", f"{host}:{port}"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``xcomlog ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
