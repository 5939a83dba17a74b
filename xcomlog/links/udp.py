"""The UDP link (Xcom-LAN in UDP mode): requests to the gateway's port, answers on ours."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

from ..exceptions import LinkError
from .base import AsyncTransport, Transport, _hex, _Link, _resolve_ip

log = logging.getLogger("xcomlog.links")

#: Default port of the gateway's requests, and the local port a Moxa in UDP mode answers to.
DEFAULT_UDP_PORT = 4002
DEFAULT_UDP_REPLY_PORT = 4001
#: ``answer_port`` value that accepts answers from any port of the gateway's address.
ANY_PORT = "any"


def parse_answer_port(value: int | str | None) -> int | str | None:
    """``None`` (answers come from the gateway's port), ``"any"`` or a port 0..65535."""
    if value is None or value == ANY_PORT:
        return value
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"answer_port must be 'any' or a port 0..65535, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"answer_port must be 'any' or a port 0..65535, got {port}")
    return port


class _UdpConfig(_Link):
    """The gateway's address and our reply port, shared by both UDP transports."""

    scheme = "udp"

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_UDP_PORT,
        *,
        reply_port: int = DEFAULT_UDP_REPLY_PORT,
        bind_host: str = "",
        answer_port: int | str | None = None,
    ) -> None:
        super().__init__()
        self.host = host
        self.port = int(port)
        self.reply_port = int(reply_port)
        self.bind_host = bind_host
        #: Source port answers must come from: None the gateway's (``port``), ``"any"``
        #: any port of the gateway's address (the old, forgeable behaviour), or a port.
        self.answer_port = parse_answer_port(answer_port)
        self._peer_ip: str | None = None
        self.foreign_datagrams = 0

    def describe(self) -> str:
        text = f"udp://{self.host}:{self.port}?reply_port={self.reply_port}"
        if self.answer_port is not None:
            text += f"&answer_port={self.answer_port}"
        if self.bind_host:
            text += f"&bind={self.bind_host}"
        return text

    def _from_gateway(self, source: tuple[Any, ...]) -> bool:
        """True for a datagram from the gateway's address and answer port; others are
        counted and ignored (another host, or a forger on the gateway's host)."""
        wanted = self.answer_port
        if source[0] == self._peer_ip and (
            wanted == ANY_PORT or source[1] == (self.port if wanted is None else wanted)
        ):
            return True
        self.foreign_datagrams += 1
        log.debug("ignored a datagram from %s port %s", source[0], source[1])
        return False

    def _resolve_peer(self) -> int:
        """Resolve the gateway's address; the socket family that reaches it."""
        self._peer_ip = _resolve_ip(self.host)
        return socket.AF_INET6 if ":" in self._peer_ip else socket.AF_INET

    def _bind_failed(self, exc: OSError) -> LinkError:
        return LinkError(f"cannot receive UDP answers on port {self.reply_port}: {exc}")

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out["foreign_datagrams"] = self.foreign_datagrams
        return out


class UdpTransport(_UdpConfig, Transport):
    """Xcom-LAN in UDP mode: requests go to the gateway's port, answers come to our port.

    The Moxa sends its answers not to the request's source port but to a fixed port
    (``reply_port``, 4001 by default) on our host, so we bind that port. It sends them
    from the port it receives requests on: datagrams from any other host or port are
    ignored and counted (``answer_port`` names another source port, or ``"any"``).
    """

    _sock: socket.socket | None = None

    @property
    def local_address(self) -> tuple[str, int]:
        """The bound (host, port) answers arrive on; binds now if needed."""
        self.open()
        assert self._sock is not None
        host, port = self._sock.getsockname()[:2]
        return host, port

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def open(self, timeout: float | None = None) -> None:
        if self._sock is not None:
            return
        family = self._resolve_peer()
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind((self.bind_host, self.reply_port))
        except OSError as exc:
            raise self._bind_failed(exc) from exc
        self._sock = sock
        self.reply_port = sock.getsockname()[1]
        self.opens += 1

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def reconnect(self, timeout: float | None = None) -> None:
        # Nothing to re-establish: keeping the socket keeps our reply port.
        self.open(timeout)

    def send(self, data: bytes) -> None:
        if self._sock is None:
            raise LinkError("the UDP transport is not open")
        try:
            self._sock.sendto(data, (self.host, self.port))
        except OSError as exc:
            raise LinkError(f"send to {self.host}:{self.port} failed: {exc}") from exc
        self._sent(data)

    def receive(self, timeout: float) -> bytes:
        if self._sock is None:
            raise LinkError("the UDP transport is not open")
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                self._sock.settimeout(max(0.0, deadline - time.monotonic()))
                data, source = self._sock.recvfrom(65535)
            except (TimeoutError, BlockingIOError):
                return b""
            except ConnectionRefusedError:
                # ICMP port unreachable from an earlier send: nothing is listening yet.
                continue
            except OSError as exc:
                raise LinkError(f"UDP receive failed: {exc}") from exc
            if not self._from_gateway(source):
                continue
            self.bytes_received += len(data)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("<- %s", _hex(data))
            return data

    def as_async(self) -> AsyncUdpTransport:
        return AsyncUdpTransport(
            self.host,
            self.port,
            reply_port=self.reply_port,
            bind_host=self.bind_host,
            answer_port=self.answer_port,
        )


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: AsyncUdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)  # ICMP unreachable: the request is simply lost


class AsyncUdpTransport(_UdpConfig, AsyncTransport):
    """asyncio twin of ``UdpTransport``."""

    _transport: asyncio.DatagramTransport | None = None

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    @property
    def local_address(self) -> tuple[str, int]:
        if self._transport is None:
            raise LinkError("the UDP transport is not open")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return host, port

    async def open(self, timeout: float | None = None) -> None:
        if self._transport is not None:
            return
        self._reset_buffer()
        family = self._resolve_peer()
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self),
                local_addr=(
                    self.bind_host or ("::" if family == socket.AF_INET6 else "0.0.0.0"),
                    self.reply_port,
                ),
                family=family,
            )
        except OSError as exc:
            raise self._bind_failed(exc) from exc
        self._transport = transport
        self.reply_port = transport.get_extra_info("sockname")[1]
        self.opens += 1

    def _datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self._from_gateway(addr):
            self._feed(data)

    async def reconnect(self, timeout: float | None = None) -> None:
        await self.open(timeout)

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    async def send(self, data: bytes) -> None:
        if not self.send_nowait(data):
            raise LinkError("the UDP transport is not open")

    def send_nowait(self, data: bytes) -> bool:
        if self._transport is None:
            return False
        self._transport.sendto(data, (self.host, self.port))
        self._sent(data)
        return True
