"""A real Mosquitto broker for the MQTT tests: a process on a free loopback port.

Tests that use these fixtures skip, saying why, when ``mosquitto`` is not installed
(``tools/ensure_mosquitto.sh`` installs it; ``.ci/run`` calls it).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from processes import free_port, stop_process

USER, PASSWORD = "studer", "xtender-2024"


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
        None,
    )


class Mosquitto:
    """One broker process; ``stop()`` and ``start()`` again keep the same port."""

    def __init__(self, folder: Path, *, password: bool = False, tls: bool = False) -> None:
        self.exe = mosquitto_path()
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        # run as the test's own user (as root mosquitto would switch to "mosquitto" and
        # lose access to the temporary folder)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"user {getpass.getuser()}",
        ]
        if password:
            passwd = folder / "passwd"
            passwd.write_text(f"{USER}:{PASSWORD}\n")
            helper = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            subprocess.run([helper, "-U", str(passwd)], check=True, capture_output=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if tls:  # a self-signed certificate no client trusts
            cert, key = folder / "cert.pem", folder / "key.pem"
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                ],
                check=True,
                capture_output=True,
            )
            lines += [f"certfile {cert}", f"keyfile {key}"]
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = folder / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.exe is not None
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.exe, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.proc, 5)
        self.proc = None


def _broker(tmp_path_factory, password: bool = False, tls: bool = False):
    if mosquitto_path() is None:
        pytest.skip("mosquitto is not installed (tools/ensure_mosquitto.sh installs it)")
    pytest.importorskip("aiomqtt", reason="the mqtt extra (aiomqtt) is not installed")
    if tls and shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), password=password, tls=tls)
    broker.start()
    return broker


@pytest.fixture
def mosquitto(tmp_path_factory):
    """A fresh anonymous broker for one test."""
    broker = _broker(tmp_path_factory)
    yield broker
    broker.stop()


@pytest.fixture
def mosquitto_auth(tmp_path_factory):
    """A broker that wants user ``studer`` with its password."""
    broker = _broker(tmp_path_factory, password=True)
    yield broker
    broker.stop()


@pytest.fixture
def mosquitto_tls(tmp_path_factory):
    """A TLS broker whose self-signed certificate clients do not trust."""
    broker = _broker(tmp_path_factory, tls=True)
    yield broker
    broker.stop()


async def retained(port: int, topic_filter: str = "#", settle: float = 0.5) -> dict[str, bytes]:
    """Every retained message under ``topic_filter``, as a new subscriber sees them."""
    import aiomqtt

    out: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic_filter)

        async def collect() -> None:
            async for message in client.messages:
                if message.retain:
                    out[str(message.topic)] = bytes(message.payload or b"")

        try:
            await asyncio.wait_for(collect(), settle)
        except asyncio.TimeoutError:
            pass
    return {t: p for t, p in out.items() if p}


def read_retained(port: int, topic_filter: str = "#", settle: float = 0.5) -> dict[str, bytes]:
    return asyncio.run(retained(port, topic_filter, settle))
