"""Long commands say what they do on a terminal and stay quiet in a pipe; a silent link
fails fast with one sentence. Real child processes, the simulator on loopback TCP.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest

pytest.importorskip("xcomlog.sim.links")

from xcomlog.sim import Simulator  # noqa: E402

pytestmark = pytest.mark.timeout(120)

XCOMLOG = [sys.executable, "-m", "xcomlog"]


@pytest.fixture(scope="module")
def tcp():
    sim = Simulator(seed=4, message_every_s=0)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        yield ["--tcp", f"{host}:{port}"]


def stderr_on_terminal(argv: list[str]) -> tuple[int, str]:
    """Run the CLI with stderr on a 100x24 pseudo-terminal; return (code, what it showed)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [*XCOMLOG, *argv], stdout=subprocess.DEVNULL, stderr=terminal, stdin=subprocess.DEVNULL
    )
    os.close(terminal)
    seen = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(controller)
    return proc.wait(30), seen.decode(errors="replace").replace("\r", "\n")


def test_files_get_shows_bytes_and_rate_on_a_terminal(tcp, tmp_path):
    code, shown = stderr_on_terminal(["files", "get", "--out", str(tmp_path), *tcp])
    assert code == 0, shown
    assert "waiting for the gateway to answer" in shown
    assert any("B/s" in line and "LG" in line for line in shown.splitlines()), shown


def test_scan_shows_progress_on_a_terminal(tcp):
    code, shown = stderr_on_terminal(["scan", *tcp])
    assert code == 0, shown
    assert "scanning addresses" in shown


def test_quiet_in_a_pipe(tcp, tmp_path):
    proc = subprocess.run(
        [*XCOMLOG, "files", "get", "--out", str(tmp_path), *tcp],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "B/s" not in proc.stdout and "waiting" not in proc.stdout


def test_read_says_it_waits_for_a_quiet_window(tcp):
    start = time.strftime("%H:%M", time.localtime(time.time() - 120))
    end = time.strftime("%H:%M", time.localtime(time.time() + 600))
    # a window around the current minute: the read would wait about 10 min
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [*XCOMLOG, "read", "3000", "--device", "xt1", "--quiet-window", f"{start}-{end}", *tcp],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while b"quiet window" not in seen and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.5)[0]:
                seen += os.read(controller, 4096)
    finally:
        proc.terminate()
        proc.wait(20)
        os.close(controller)
    assert b"waiting" in seen and b"quiet window" in seen


def test_files_list_on_a_silent_link_fails_fast():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted = []
    stop = threading.Event()

    def accept():  # take the connection and never answer
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        proc = subprocess.run(
            [*XCOMLOG, "files", "list", "--tcp", f"127.0.0.1:{server.getsockname()[1]}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert "no answer from the gateway" in line and "6 s" in line
    assert took < 20  # 2 s x 3 tries and the start-up; it was 46 s before
