"""The TCP listen link: the Moxa (TCP client mode) connects to us (``listen://[HOST]:PORT``)."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import time
from collections.abc import Iterable

from ..exceptions import LinkError
from .base import _Link, _resolve_ip, _timeout
from .streams import _AsyncStreamTransport, _close_socket, _StreamProtocol, _StreamTransport
from .tcp_client import DEFAULT_TCP_PORT

log = logging.getLogger("xcomlog.links")


def _parse_allow(allow: Iterable[str] | str | None) -> frozenset[str] | None:
    if allow is None:
        return None
    if isinstance(allow, str):
        allow = [a for a in allow.split(",") if a.strip()]
    addresses = frozenset(_resolve_ip(a.strip()) for a in allow)
    return addresses or None


class _ListenConfig(_Link):
    """Where a TCP server transport listens, whom it accepts, and its connection counters."""

    scheme = "listen"

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = DEFAULT_TCP_PORT,
        *,
        allow: Iterable[str] | str | None = None,
    ) -> None:
        super().__init__()
        self.host = host or "0.0.0.0"
        self.port = int(port)
        self.allow = _parse_allow(allow)
        self.peer: tuple[str, int] | None = None
        self.accepted = 0
        self.replaced = 0
        self.refused = 0

    def describe(self) -> str:
        text = f"listen://{self.host}:{self.port}"
        if self.allow:
            text += "?allow=" + ",".join(sorted(self.allow))
        return text

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out.update(accepted=self.accepted, replaced=self.replaced, refused=self.refused)
        return out


class TcpServerTransport(_ListenConfig, _StreamTransport):
    """We listen and the Moxa (TCP client mode) connects to us (``--listen [HOST:]PORT``).

    This is the mode that keeps the Studer portal working: the Moxa holds one connection
    to the portal and one to us. Only peers in ``allow`` (IP addresses or names) are
    accepted when it is given. A new connection from the peer we already talk to replaces
    the old one (the Moxa reconnected, so the old one is dead); a connection from another
    peer is refused while the current one is alive, and taken when it is dead.
    """

    _listener: socket.socket | None = None
    _conn: socket.socket | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); binds now if needed, so port 0 becomes a real port."""
        self.bind()
        assert self._listener is not None
        host, port = self._listener.getsockname()[:2]
        return host, port

    def bind(self) -> None:
        """Start listening (``open`` does it too); lets callers learn the port first."""
        if self._listener is not None:
            return
        try:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(4)
        except OSError as exc:
            raise LinkError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        sock.setblocking(False)
        self._listener = sock
        self.port = sock.getsockname()[1]
        log.info("listening for the Moxa on %s:%d", self.host, self.port)

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def open(self, timeout: float | None = None) -> None:
        self.bind()
        if self._conn is not None:
            return
        deadline = time.monotonic() + _timeout(timeout)
        while self._conn is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LinkError(
                    f"no connection from the Moxa on {self.host}:{self.port} "
                    f"within {_timeout(timeout):g} s"
                )
            assert self._listener is not None
            ready, _, _ = select.select([self._listener], [], [], remaining)
            if ready:
                self._accept_pending()

    def _alive(self, conn: socket.socket) -> bool:
        """False if the peer closed ``conn`` (peeks, so no data is lost)."""
        try:
            data = conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        return bool(data)

    def _accept_pending(self) -> None:
        """Accept every waiting connection and apply the allow / replace policy."""
        assert self._listener is not None
        while True:
            try:
                conn, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept on %s:%d failed: %s", self.host, self.port, exc)
                return
            ip = peer[0]
            if self.allow is not None and ip not in self.allow:
                self.refused += 1
                log.warning("refused connection from %s: not in the allow list", ip)
                _close_socket(conn)
                continue
            current = self._conn
            if current is not None and self.peer is not None:
                if self.peer[0] == ip:
                    self.replaced += 1
                    log.info("%s reconnected: replacing its previous connection", ip)
                    _close_socket(current)
                elif self._alive(current):
                    self.refused += 1
                    log.warning(
                        "refused connection from %s: already talking to %s", ip, self.peer[0]
                    )
                    _close_socket(conn)
                    continue
                else:
                    log.info("previous peer %s is gone; taking %s", self.peer[0], ip)
                    _close_socket(current)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setblocking(False)
            self._conn = conn
            self.peer = (peer[0], peer[1])
            self.accepted += 1
            self.opens += 1
            log.info("connection from %s:%d", peer[0], peer[1])

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _close_socket(conn)

    def close(self) -> None:
        self._drop_connection()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def reconnect(self, timeout: float | None = None) -> None:
        """Wait for the Moxa to connect again; the listening socket stays open."""
        self._drop_connection()
        self.open(timeout)

    def send(self, data: bytes) -> None:
        if self._conn is None and self._listener is not None:
            self._accept_pending()
        if self._conn is None:
            raise LinkError(f"the Moxa is not connected to {self.host}:{self.port}")
        self._send_on(self._conn, data, "the Moxa", self._drop_connection)

    def receive(self, timeout: float) -> bytes:
        if self._conn is None:
            raise LinkError(f"the Moxa is not connected to {self.host}:{self.port}")
        assert self._listener is not None
        conn = self._conn
        if timeout <= 0:  # a drain: one non-blocking read
            return self._receive_on(conn, 0.0, "the Moxa", self._drop_connection)
        ready, _, _ = select.select([conn, self._listener], [], [], timeout)
        if not ready:
            return b""
        if self._listener in ready:
            self._accept_pending()
            if self._conn is None:
                raise LinkError("the Moxa connection was lost")
            if self._conn is not conn:
                return b""  # replaced by a new connection: its bytes come next time
        if conn not in ready:
            return b""
        return self._receive_on(conn, 0.0, "the Moxa", self._drop_connection)

    def as_async(self) -> AsyncTcpServerTransport:
        return AsyncTcpServerTransport(self.host, self.port, allow=self.allow)


class AsyncTcpServerTransport(_ListenConfig, _AsyncStreamTransport):
    """asyncio twin of ``TcpServerTransport`` (same allow-list and replacement rules)."""

    _server: asyncio.base_events.Server | None = None
    _connected: asyncio.Event | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise LinkError("call bind() first")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def bind(self) -> None:
        """Start listening; ``open`` does it too."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self._connected = asyncio.Event()
        try:
            self._server = await loop.create_server(
                lambda: _StreamProtocol(self), self.host, self.port, reuse_address=True
            )
        except OSError as exc:
            raise LinkError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("listening for the Moxa on %s:%d", self.host, self.port)

    def _not_connected(self) -> str:
        return f"the Moxa is not connected to {self.host}:{self.port}"

    async def open(self, timeout: float | None = None) -> None:
        await self.bind()
        if self.is_open:
            return
        assert self._connected is not None
        try:
            await asyncio.wait_for(self._connected.wait(), _timeout(timeout))
        except asyncio.TimeoutError:
            raise LinkError(
                f"no connection from the Moxa on {self.host}:{self.port} "
                f"within {_timeout(timeout):g} s"
            ) from None

    def _connection_made(self, protocol: _StreamProtocol) -> None:
        ip = protocol.peer[0] if protocol.peer else ""
        if self.allow is not None and ip not in self.allow:
            self.refused += 1
            log.warning("refused connection from %s: not in the allow list", ip)
            assert protocol.transport is not None
            protocol.transport.close()
            return
        current = self._protocol
        if current is not None and not current.closed and self.peer is not None:
            if self.peer[0] == ip:
                self.replaced += 1
                log.info("%s reconnected: replacing its previous connection", ip)
                current.closed = True
                if current.transport is not None:
                    current.transport.close()
            else:
                self.refused += 1
                log.warning("refused connection from %s: already talking to %s", ip, self.peer[0])
                assert protocol.transport is not None
                protocol.transport.close()
                return
        self._protocol = protocol
        self.peer = protocol.peer
        self.accepted += 1
        self.opens += 1
        self._reset_buffer()
        log.info("connection from %s", ip)
        assert self._connected is not None
        self._connected.set()

    def _connection_lost(self, protocol: _StreamProtocol, exc: Exception | None) -> None:
        if protocol is self._protocol:
            assert self._connected is not None
            self._connected.clear()
            self._fail(LinkError("the Moxa closed the connection"))

    async def _drop_connection(self) -> None:
        protocol, self._protocol = self._protocol, None
        if self._connected is not None:
            self._connected.clear()
        if protocol is not None and protocol.transport is not None:
            protocol.closed = True
            protocol.transport.close()

    async def reconnect(self, timeout: float | None = None) -> None:
        """Wait for the Moxa to connect again (the listening socket stays open).

        A connection the Moxa already made again (it replaced the broken one) is kept.
        """
        if self._protocol is not None and self._protocol.closed:
            self._protocol = None
        if self._protocol is None:
            self._reset_buffer()
        else:
            self._error = None  # the error was the old connection's
            return
        await self.open(timeout)

    async def close(self) -> None:
        await self._drop_connection()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
