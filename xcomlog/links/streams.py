"""TCP stream plumbing shared by the TCP client and TCP listen links (blocking and asyncio)."""

from __future__ import annotations

import abc
import asyncio
import logging
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from ..exceptions import LinkError
from .base import _RECV_SIZE, AsyncTransport, Transport, _hex

log = logging.getLogger("xcomlog.links")


def _close_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _recv_stream(sock: socket.socket, timeout: float, peer: str) -> bytes | None:
    """One read of a non-blocking socket: the bytes, ``b""`` on timeout, None when closed.

    The socket stays non-blocking: a drain (timeout 0) costs one recv, a wait one
    select and one recv, and no call changes the socket's mode.
    """
    if timeout > 0:
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            return b""
    try:
        data = sock.recv(_RECV_SIZE)
    except (BlockingIOError, InterruptedError):
        return b""
    except OSError as exc:
        log.debug("recv from %s failed: %s", peer, exc)
        return None
    if not data:
        return None
    if log.isEnabledFor(logging.DEBUG):
        log.debug("<- %s", _hex(data))
    return data


def _send_stream(sock: socket.socket, data: bytes, timeout: float = 10.0) -> None:
    """Write all of ``data`` to a non-blocking socket (OSError when it cannot)."""
    view = memoryview(data)
    deadline = time.monotonic() + timeout
    while view:
        try:
            sent = sock.send(view)
        except (BlockingIOError, InterruptedError):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("send timed out") from None
            select.select([], [sock], [], remaining)
            continue
        view = view[sent:]


class _StreamTransport(Transport):
    """What both blocking TCP transports share: a write or read of the current connection
    that drops it (``drop``) and says so in one LinkError when it fails or ends."""

    def _send_on(
        self, sock: socket.socket, data: bytes, peer: str, drop: Callable[[], None]
    ) -> None:
        try:
            _send_stream(sock, data)
        except OSError as exc:
            drop()
            raise LinkError(f"send to {peer} failed: {exc}") from exc
        self._sent(data)

    def _receive_on(
        self, sock: socket.socket, timeout: float, peer: str, drop: Callable[[], None]
    ) -> bytes:
        data = _recv_stream(sock, timeout, peer)
        if data is None:
            drop()
            raise LinkError(f"{peer} closed the connection")
        self.bytes_received += len(data)
        return data


class _StreamProtocol(asyncio.Protocol):
    """Forwards a TCP connection's bytes and its end to an AsyncTransport."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.peer: tuple[str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1]) if peer else None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.owner._connection_made(self)

    def data_received(self, data: bytes) -> None:
        self.owner._data_from(self, data)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner._connection_lost(self, exc)


class _AsyncStreamTransport(AsyncTransport):
    """What both asyncio TCP transports share: the current connection, its bytes, writes."""

    _protocol: _StreamProtocol | None = None

    @property
    def is_open(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    @abc.abstractmethod
    def _not_connected(self) -> str:
        """The LinkError text for a send without a connection."""

    def _data_from(self, protocol: _StreamProtocol, data: bytes) -> None:
        if protocol is self._protocol:
            self._feed(data)

    async def send(self, data: bytes) -> None:
        if not self.send_nowait(data):
            raise LinkError(self._not_connected())

    def send_nowait(self, data: bytes) -> bool:
        protocol = self._protocol
        if protocol is None or protocol.closed or protocol.transport is None:
            return False
        protocol.transport.write(data)
        self._sent(data)
        return True
