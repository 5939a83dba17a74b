"""Stops are honoured at every stage (issue 15 item 4): a scan of a silent gateway, too.

The gateway is a loopback TCP server that accepts connections and never answers, the
way a Moxa whose serial side is unplugged behaves. Before the fix the logger ignored
SIGTERM, Ctrl-C and ``--duration`` for the whole bus scan (about four minutes).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from xcomlog.logger import Logger
from xcomlog.logger.config import config_from_dict

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent


class SilentGateway:
    """Accepts TCP connections, reads what comes and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.received = 0
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SilentGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self.server.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
                conn.settimeout(0.05)
                self._conns.append(conn)
            except TimeoutError:
                pass
            for conn in list(self._conns):
                try:
                    self.received += len(conn.recv(4096))
                except (TimeoutError, OSError):
                    pass

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.received < count * 14:  # a request frame is at least 14 bytes
            assert time.monotonic() < deadline, "the logger never started its scan"
            time.sleep(0.02)


def _log_command(tmp_path: Path, link: list[str], *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "xcomlog", "log", *link, "--devices", "auto",
        "--out", str(tmp_path), "--no-status", *extra,
    ]  # fmt: skip


def _stop_and_time(proc: subprocess.Popen, sig: int) -> tuple[float, str]:
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return time.monotonic() - t0, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_log_during_the_scan_of_a_silent_gateway(tmp_path, sig):
    with SilentGateway() as gateway:
        link = ["--tcp", f"127.0.0.1:{gateway.port}"]
        proc = subprocess.Popen(
            _log_command(tmp_path, link), cwd=REPO, stderr=subprocess.PIPE, text=True
        )
        try:
            gateway.wait_for_requests(2)  # the scan's first probes went out
            time.sleep(0.3)
        except BaseException:
            proc.kill()
            raise
        took, err = _stop_and_time(proc, sig)
    assert proc.returncode == 0, err
    assert took < 2.0, f"{signal.Signals(sig).name} took {took:.1f} s to stop the scan"
    assert "Traceback" not in err and "stopped:" in err


def test_duration_ends_a_scan_of_a_silent_gateway(tmp_path):
    with SilentGateway() as gateway:
        link = ["--tcp", f"127.0.0.1:{gateway.port}"]
        proc = subprocess.Popen(
            _log_command(tmp_path, link, "--duration", "1.5"),
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            gateway.wait_for_requests(1)
            t0 = time.monotonic()
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        took = time.monotonic() - t0
    assert proc.returncode == 0, err
    assert took < 1.5 + 2.0, f"--duration 1.5 ended after {took:.1f} s of scanning"


def test_sigterm_stops_a_scan_over_a_serial_loop(tmp_path):
    """``loop://`` echoes our requests: nothing ever answers the scan."""
    proc = subprocess.Popen(
        _log_command(tmp_path, ["--serial", "loop://"]), cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(3.0)  # interpreter start, open, the first probes
        assert proc.poll() is None
    except BaseException:
        proc.kill()
        raise
    took, err = _stop_and_time(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert took < 2.0, f"SIGTERM took {took:.1f} s to stop the scan over loop://"


def test_stop_ends_every_stage_in_process(tmp_path):
    """A Logger stopped during its scan returns at once and records the stop."""
    from test_logger_support import read_table

    with SilentGateway() as gateway:
        cfg = config_from_dict(
            {
                "out": str(tmp_path),
                "site": [
                    {
                        "name": "silent",
                        "link": f"tcp://127.0.0.1:{gateway.port}",
                        "devices": "auto",
                        "group": [{"name": "e", "interval": 1, "points": ["essential"]}],
                    }
                ],
            }
        )
        logger = Logger(cfg)

        async def main() -> float:
            stop = asyncio.Event()
            task = asyncio.create_task(logger.run(stop))
            while gateway.received < 28:
                await asyncio.sleep(0.02)
            assert logger.sites[0].stats.state == "discovering"
            t0 = time.monotonic()
            stop.set()
            await task
            return time.monotonic() - t0

        try:
            took = asyncio.run(main())
        finally:
            logger.close()
    assert took < 1.5
    assert logger.sites[0].stats.state == "stopped"
    kinds = list(read_table(tmp_path, "events")["kind"])
    assert kinds[0] == "start" and kinds[-1] == "stop" and "scan" not in kinds


@pytest.mark.parametrize(
    "command",
    [["scan"], ["read", "3000", "--device", "xt1"], ["files", "get", "--out", "{out}"]],
    ids=["scan", "read", "files-get"],
)
def test_ctrl_c_stops_device_commands_without_a_traceback(tmp_path, command):
    """Ctrl-C (SIGINT) ends a one-shot command waiting on a silent gateway at once."""
    command = [word.replace("{out}", str(tmp_path / "files")) for word in command]
    with SilentGateway() as gateway:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xcomlog", *command, "--tcp", f"127.0.0.1:{gateway.port}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            gateway.wait_for_requests(1)
            time.sleep(0.3)
        except BaseException:
            proc.kill()
            raise
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        took = time.monotonic() - t0
    assert proc.returncode == 130, err
    assert took < 2.0 and "Traceback" not in err
