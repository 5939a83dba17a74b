"""Helpers for tests that run real processes: free loopback ports, ``xcomlog sim`` as a
process serving loopback TCP, and stopping a process politely (then firmly)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: ``xcomlog`` as a command line of this interpreter.
XCOMLOG = [sys.executable, "-m", "xcomlog"]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing listens on now (TCP unless ``kind`` says UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM ``proc`` if it still runs; SIGKILL it when it has not ended after ``timeout`` s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_xcomlog(*argv: str) -> subprocess.Popen:
    """``xcomlog ARGV`` started from the repository, its output on text pipes."""
    return subprocess.Popen(
        [*XCOMLOG, *argv], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@dataclass
class SimProcess:
    """A running ``xcomlog sim`` process and the ``host:port`` its TCP server listens on."""

    proc: subprocess.Popen
    address: str


@contextlib.contextmanager
def sim_process(*options: str) -> Iterator[SimProcess]:
    """``xcomlog sim --tcp-server 127.0.0.1:0 OPTIONS`` as a process, stopped on exit."""
    proc = start_xcomlog("sim", "--tcp-server", "127.0.0.1:0", *options)
    try:
        address = proc.stdout.readline().strip()
        assert address.startswith("127.0.0.1:"), proc.stderr.read()
        yield SimProcess(proc, address)
    finally:
        stop_process(proc)


def run_xcomlog(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``xcomlog ARGV`` run to its end from the repository, output captured as text."""
    return subprocess.run(
        [*XCOMLOG, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
