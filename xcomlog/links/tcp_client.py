"""The TCP client link: we connect to a Moxa NPort in TCP server mode (``tcp://HOST:PORT``)."""

from __future__ import annotations

import asyncio
import logging
import socket

from ..exceptions import LinkError
from .base import _Link, _timeout
from .streams import _AsyncStreamTransport, _close_socket, _StreamProtocol, _StreamTransport

log = logging.getLogger("xcomlog.links")

DEFAULT_TCP_PORT = 4001


class _TcpClientConfig(_Link):
    """Where a TCP client transport connects to (shared by the blocking and asyncio ones)."""

    scheme = "tcp"

    def __init__(self, host: str, port: int = DEFAULT_TCP_PORT) -> None:
        super().__init__()
        self.host = host
        self.port = int(port)

    def describe(self) -> str:
        return f"tcp://{self.host}:{self.port}"


class TcpClientTransport(_TcpClientConfig, _StreamTransport):
    """We connect to a Moxa NPort in TCP server mode (``--tcp HOST:PORT``)."""

    _sock: socket.socket | None = None

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def open(self, timeout: float | None = None) -> None:
        if self._sock is not None:
            return
        try:
            sock = socket.create_connection((self.host, self.port), timeout=_timeout(timeout))
        except OSError as exc:
            raise LinkError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self._sock = sock
        self.opens += 1
        log.debug("connected to %s:%d", self.host, self.port)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            _close_socket(sock)

    def send(self, data: bytes) -> None:
        if self._sock is None:
            raise LinkError(f"not connected to {self.host}:{self.port}")
        self._send_on(self._sock, data, f"{self.host}:{self.port}", self.close)

    def receive(self, timeout: float) -> bytes:
        if self._sock is None:
            raise LinkError(f"not connected to {self.host}:{self.port}")
        return self._receive_on(self._sock, timeout, f"{self.host}:{self.port}", self.close)

    def as_async(self) -> AsyncTcpClientTransport:
        return AsyncTcpClientTransport(self.host, self.port)


class AsyncTcpClientTransport(_TcpClientConfig, _AsyncStreamTransport):
    """asyncio twin of ``TcpClientTransport``."""

    def _not_connected(self) -> str:
        return f"not connected to {self.host}:{self.port}"

    async def open(self, timeout: float | None = None) -> None:
        if self.is_open:
            return
        self._reset_buffer()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _StreamProtocol(self), self.host, self.port),
                _timeout(timeout),
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise LinkError(
                f"cannot connect to {self.host}:{self.port}: {exc or 'timed out'}"
            ) from exc
        self.opens += 1

    def _connection_made(self, protocol: _StreamProtocol) -> None:
        self._protocol = protocol

    def _connection_lost(self, protocol: _StreamProtocol, exc: Exception | None) -> None:
        if protocol is self._protocol:
            self._fail(LinkError(f"{self.host}:{self.port} closed the connection"))

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
