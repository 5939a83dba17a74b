"""Byte links to an Xcom-232i: serial port, TCP (both directions) and UDP, blocking and asyncio.

A transport moves raw bytes and knows nothing about frames; ``xcomlog.session`` finds the
frames (by their length field, never by CR/LF) and matches them to requests. Every
transport has a blocking class and an asyncio twin with the same configuration
(``as_async()``), and is created from a URL by ``open_transport``::

    serial:///dev/ttyUSB0?baud=115200   (also any pyserial URL: rfc2217://, socket://, loop://)
    tcp://192.168.1.10:4001             we connect to a Moxa in TCP server mode
    listen://0.0.0.0:4001?allow=192.168.1.10   the Moxa connects to us (TCP client mode)
    udp://192.168.1.10:4002?reply_port=4001    requests to the gateway, answers on our port

``receive(timeout)`` returns the bytes that arrived (a chunk of any size), or ``b""`` when
nothing arrived in time; a broken link raises ``LinkError``.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import select
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .exceptions import LinkError
from .protocol import DEFAULT_BAUDRATE

log = logging.getLogger("xcomlog.transport")

#: Default local port on which a Moxa in UDP mode sends its answers, and its request port.
DEFAULT_UDP_PORT = 4002
DEFAULT_UDP_REPLY_PORT = 4001
DEFAULT_TCP_PORT = 4001
#: How long ``open()`` waits by default (connect, or the Moxa connecting to us).
DEFAULT_OPEN_TIMEOUT = 10.0
_RECV_SIZE = 4096


def _hex(data: bytes) -> str:
    return data.hex(" ")


class _Link(abc.ABC):
    """What a blocking transport and its asyncio twin share: counters, URL, description."""

    #: Short scheme name (``serial``, ``tcp``, ``listen``, ``udp``).
    scheme: str = ""

    def __init__(self) -> None:
        self.bytes_sent = 0
        self.bytes_received = 0
        self.opens = 0

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """True while the link can carry bytes."""

    @property
    def url(self) -> str:
        """The URL that ``open_transport`` turns back into this transport."""
        return self.describe()

    def describe(self) -> str:
        return f"{self.scheme}://"

    def stats(self) -> dict[str, int]:
        return {
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "opens": self.opens,
        }

    def _sent(self, data: bytes) -> None:
        self.bytes_sent += len(data)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("-> %s", _hex(data))

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<{type(self).__name__} {self.describe()} {state}>"


class Transport(_Link):
    """A blocking byte link. Use as a context manager, or ``open()`` / ``close()``."""

    @abc.abstractmethod
    def open(self, timeout: float | None = None) -> None:
        """Connect (or bind, or wait for the peer) within ``timeout`` seconds."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link; safe to call twice."""

    @abc.abstractmethod
    def send(self, data: bytes) -> None:
        """Write all of ``data``; raises LinkError if the link is broken."""

    @abc.abstractmethod
    def receive(self, timeout: float) -> bytes:
        """Bytes that arrived within ``timeout`` seconds (``b""`` if none)."""

    def reconnect(self, timeout: float | None = None) -> None:
        """Drop the current connection and establish a new one (after a broken link)."""
        self.close()
        self.open(timeout)

    @abc.abstractmethod
    def as_async(self) -> AsyncTransport:
        """A new, unopened asyncio transport with the same configuration."""

    def __enter__(self) -> Transport:
        if not self.is_open:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _timeout(value: float | None) -> float:
    return DEFAULT_OPEN_TIMEOUT if value is None else max(0.0, float(value))


# --- Serial -------------------------------------------------------------------------------


class SerialTransport(Transport):
    """RS-232 through pyserial's ``serial_for_url``: device paths and pyserial URLs.

    The specification's line settings are 38400 baud (115200 selectable), 8 data bits,
    even parity, 1 stop bit. Flow-control lines are ignored (only RxD/TxD are wired).
    """

    scheme = "serial"

    def __init__(self, port: str, baudrate: int = DEFAULT_BAUDRATE, *, parity: str = "E") -> None:
        super().__init__()
        if not port:
            raise ValueError("a serial transport needs a device path or pyserial URL")
        self.port = port
        self.baudrate = int(baudrate)
        self.parity = parity
        self._serial: Any = None
        self._fd: int | None = None

    def describe(self) -> str:
        return f"serial://{self.port}?baud={self.baudrate}"

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._serial.is_open

    def _make_serial(self, timeout: float) -> Any:
        import serial

        try:
            ser = serial.serial_for_url(
                self.port,
                baudrate=self.baudrate,
                bytesize=serial.EIGHTBITS,
                parity=self.parity,
                stopbits=serial.STOPBITS_ONE,
                timeout=timeout,
                write_timeout=max(timeout, 2.0),
                xonxoff=False,
                rtscts=False,
                dsrdtr=False,
                do_not_open=True,
            )
            ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"cannot open serial port {self.port}: {exc}") from exc
        return ser

    def open(self, timeout: float | None = None) -> None:
        if self.is_open:
            return
        ser = self._make_serial(_timeout(timeout))
        self._serial = ser
        self._fd = None
        try:
            import serial.serialposix as posix

            if isinstance(ser, posix.Serial):
                # A real tty or pty: wait with select() so the port is not reconfigured
                # for every different timeout.
                self._fd = ser.fileno()
        except ImportError:  # not on POSIX
            pass
        self.opens += 1
        log.debug("opened %s", self.describe())

    def close(self) -> None:
        ser, self._serial, self._fd = self._serial, None, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # closing a port that vanished (USB unplugged)
                log.debug("error closing %s", self.port, exc_info=True)

    def _port(self) -> Any:
        if self._serial is None:
            raise LinkError(f"serial port {self.port} is not open")
        return self._serial

    def send(self, data: bytes) -> None:
        ser = self._port()
        try:
            ser.write(data)
            ser.flush()
        except Exception as exc:
            raise LinkError(f"write to {self.port} failed: {exc}") from exc
        self._sent(data)

    def receive(self, timeout: float) -> bytes:
        ser = self._port()
        try:
            if self._fd is not None:
                ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
                if not ready:
                    return b""
                try:
                    data = os.read(self._fd, _RECV_SIZE)
                except BlockingIOError:
                    return b""
                if not data:
                    # select() said readable but nothing came: the device went away.
                    raise LinkError(f"serial port {self.port} closed")
            else:
                timeout = max(0.0, timeout)
                if ser.timeout != timeout:
                    ser.timeout = timeout
                data = ser.read(1)
                if data:
                    waiting = ser.in_waiting
                    if waiting:
                        data += ser.read(waiting)
        except LinkError:
            raise
        except Exception as exc:
            raise LinkError(f"read from {self.port} failed: {exc}") from exc
        self.bytes_received += len(data)
        if data and log.isEnabledFor(logging.DEBUG):
            log.debug("<- %s", _hex(data))
        return data

    def as_async(self) -> AsyncSerialTransport:
        return AsyncSerialTransport(self.port, self.baudrate, parity=self.parity)


# --- TCP client ----------------------------------------------------------------------------


def _resolve_ip(host: str) -> str:
    """The IP address of ``host`` (so peer allow-lists compare addresses, not names)."""
    try:
        return socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0]
    except OSError:
        return host


class _TcpClientConfig(_Link):
    """Where a TCP client transport connects to (shared by the blocking and asyncio ones)."""

    scheme = "tcp"

    def __init__(self, host: str, port: int = DEFAULT_TCP_PORT) -> None:
        super().__init__()
        self.host = host
        self.port = int(port)

    def describe(self) -> str:
        return f"tcp://{self.host}:{self.port}"


class TcpClientTransport(_TcpClientConfig, Transport):
    """We connect to a Moxa NPort in TCP server mode (``--tcp HOST:PORT``)."""

    def __init__(self, host: str, port: int = DEFAULT_TCP_PORT) -> None:
        super().__init__(host, port)
        self._sock: socket.socket | None = None

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
        try:
            _send_stream(self._sock, data)
        except OSError as exc:
            self.close()
            raise LinkError(f"send to {self.host}:{self.port} failed: {exc}") from exc
        self._sent(data)

    def receive(self, timeout: float) -> bytes:
        if self._sock is None:
            raise LinkError(f"not connected to {self.host}:{self.port}")
        data = _recv_stream(self._sock, timeout, f"{self.host}:{self.port}")
        if data is None:
            self.close()
            raise LinkError(f"{self.host}:{self.port} closed the connection")
        self.bytes_received += len(data)
        return data

    def as_async(self) -> AsyncTcpClientTransport:
        return AsyncTcpClientTransport(self.host, self.port)


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


# --- TCP server (the Moxa connects to us) -------------------------------------------------


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


class TcpServerTransport(_ListenConfig, Transport):
    """We listen and the Moxa (TCP client mode) connects to us (``--listen [HOST:]PORT``).

    This is the mode that keeps the Studer portal working: the Moxa holds one connection
    to the portal and one to us. Only peers in ``allow`` (IP addresses or names) are
    accepted when it is given. A new connection from the peer we already talk to replaces
    the old one (the Moxa reconnected, so the old one is dead); a connection from another
    peer is refused while the current one is alive, and taken when it is dead.
    """

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = DEFAULT_TCP_PORT,
        *,
        allow: Iterable[str] | str | None = None,
    ) -> None:
        super().__init__(host, port, allow=allow)
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None

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
        try:
            _send_stream(self._conn, data)
        except OSError as exc:
            self._drop_connection()
            raise LinkError(f"send to the Moxa failed: {exc}") from exc
        self._sent(data)

    def receive(self, timeout: float) -> bytes:
        if self._conn is None:
            raise LinkError(f"the Moxa is not connected to {self.host}:{self.port}")
        assert self._listener is not None
        conn = self._conn
        if timeout <= 0:  # a drain: one non-blocking read
            data = _recv_stream(conn, 0.0, "the Moxa")
            if data is None:
                self._drop_connection()
                raise LinkError("the Moxa closed the connection")
            self.bytes_received += len(data)
            return data
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
        data = _recv_stream(conn, 0.0, "the Moxa")
        if data is None:
            self._drop_connection()
            raise LinkError("the Moxa closed the connection")
        self.bytes_received += len(data)
        return data

    def as_async(self) -> AsyncTcpServerTransport:
        return AsyncTcpServerTransport(self.host, self.port, allow=self.allow)


# --- UDP -------------------------------------------------------------------------------------


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
    ) -> None:
        super().__init__()
        self.host = host
        self.port = int(port)
        self.reply_port = int(reply_port)
        self.bind_host = bind_host
        self._peer_ip: str | None = None
        self.foreign_datagrams = 0

    def describe(self) -> str:
        text = f"udp://{self.host}:{self.port}?reply_port={self.reply_port}"
        if self.bind_host:
            text += f"&bind={self.bind_host}"
        return text

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out["foreign_datagrams"] = self.foreign_datagrams
        return out


class UdpTransport(_UdpConfig, Transport):
    """Xcom-LAN in UDP mode: requests go to the gateway's port, answers come to our port.

    The Moxa sends its answers not to the request's source port but to a fixed port
    (``reply_port``, 4001 by default) on our host, so we bind that port. Datagrams from
    any other host than the gateway are ignored and counted.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_UDP_PORT,
        *,
        reply_port: int = DEFAULT_UDP_REPLY_PORT,
        bind_host: str = "",
    ) -> None:
        super().__init__(host, port, reply_port=reply_port, bind_host=bind_host)
        self._sock: socket.socket | None = None

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
        self._peer_ip = _resolve_ip(self.host)
        try:
            family = socket.AF_INET6 if ":" in self._peer_ip else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind((self.bind_host, self.reply_port))
        except OSError as exc:
            raise LinkError(f"cannot receive UDP answers on port {self.reply_port}: {exc}") from exc
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
            if source[0] != self._peer_ip:
                self.foreign_datagrams += 1
                log.debug("ignored a datagram from %s", source[0])
                continue
            self.bytes_received += len(data)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("<- %s", _hex(data))
            return data

    def as_async(self) -> AsyncUdpTransport:
        return AsyncUdpTransport(
            self.host, self.port, reply_port=self.reply_port, bind_host=self.bind_host
        )


# --- asyncio ---------------------------------------------------------------------------------


class AsyncTransport(_Link):
    """The asyncio twin of ``Transport``: the same methods, awaitable.

    Received bytes are buffered by the event loop's callbacks; ``receive`` returns at
    once when bytes are waiting and otherwise parks on one future with a timer, so a
    request costs no task, no thread hop and no polling.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        # One timer per transport, moved lazily (see ``_arm_timer``).
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        #: Sees each chunk before it is buffered (and ``b""`` when the link fails);
        #: returning True consumes it. The logger's burst mode sends its next request
        #: from here (see ``xcomlog.logger.loop.Burst``).
        self.chunk_hook: Callable[[bytes], bool] | None = None

    # Callbacks from protocols / readers -------------------------------------------------
    def _feed(self, data: bytes) -> None:
        self.bytes_received += len(data)
        if data and log.isEnabledFor(logging.DEBUG):
            log.debug("<- %s", _hex(data))
        hook = self.chunk_hook
        if hook is not None and not self._buffer and hook(data):
            return
        self._buffer += data
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        hook = self.chunk_hook
        if hook is not None:
            hook(b"")
        self._wake()

    @property
    def buffered(self) -> int:
        """Bytes received and not yet taken by ``receive``."""
        return len(self._buffer)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self, timeout: float) -> bytes:
        """Bytes that arrived within ``timeout`` seconds (``b""`` if none)."""
        if not self._buffer:
            if self._error is not None:
                raise self._link_error()
            if timeout <= 0:
                return b""
            loop = self._timer_loop
            if loop is None or not loop.is_running():
                # asking for the running loop costs a getpid() syscall on Python 3.11
                loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            self._waiter = waiter
            self._arm_timer(loop, loop.time() + timeout)
            try:
                await waiter
            finally:
                self._waiter = None
            if not self._buffer:
                if self._error is not None:
                    raise self._link_error()
                return b""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _arm_timer(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Make the pending wait end at ``deadline`` (loop time).

        Answers usually come long before the timeout, so instead of a timer per wait
        (scheduled and cancelled tens of thousands of times a second) one timer stays
        armed: a later deadline only moves ``_deadline``, and the timer, when it fires
        early, re-arms itself for the current deadline.
        """
        self._deadline = deadline
        timer = self._timer
        if timer is not None:
            if self._timer_loop is loop and timer.when() <= deadline and not timer.cancelled():
                return
            timer.cancel()
        self._timer = loop.call_at(deadline, self._on_timer)
        self._timer_loop = loop

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nothing waits; the next receive arms a new timer
        loop = waiter.get_loop()
        if self._deadline - loop.time() > _TIMER_SLACK:
            self._timer = loop.call_at(self._deadline, self._on_timer)
            self._timer_loop = loop
        else:
            waiter.set_result(None)

    def _link_error(self) -> LinkError:
        exc = self._error
        if isinstance(exc, LinkError):
            return exc
        return LinkError(f"{self.describe()}: {exc}")

    @abc.abstractmethod
    async def open(self, timeout: float | None = None) -> None:
        """Connect (or bind, or wait for the peer) within ``timeout`` seconds."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the link; safe to call twice."""

    @abc.abstractmethod
    async def send(self, data: bytes) -> None:
        """Write all of ``data``; raises LinkError if the link is broken."""

    def send_nowait(self, data: bytes) -> bool:
        """Write ``data`` without waiting, from a callback; False when this link cannot
        (not connected, or a link that only writes from a coroutine): use ``send``."""
        return False

    async def reconnect(self, timeout: float | None = None) -> None:
        """Drop the current connection and establish a new one."""
        await self.close()
        await self.open(timeout)

    def _reset_buffer(self) -> None:
        self._buffer.clear()
        self._error = None

    async def __aenter__(self) -> AsyncTransport:
        if not self.is_open:
            await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# The event loop runs a timer up to one clock tick early: a deadline this close counts as due.
_TIMER_SLACK = 1e-3


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


class AsyncTcpClientTransport(_TcpClientConfig, _AsyncStreamTransport):
    """asyncio twin of ``TcpClientTransport``."""

    def __init__(self, host: str, port: int = DEFAULT_TCP_PORT) -> None:
        super().__init__(host, port)
        self._protocol = None

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


class AsyncTcpServerTransport(_ListenConfig, _AsyncStreamTransport):
    """asyncio twin of ``TcpServerTransport`` (same allow-list and replacement rules)."""

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = DEFAULT_TCP_PORT,
        *,
        allow: Iterable[str] | str | None = None,
    ) -> None:
        super().__init__(host, port, allow=allow)
        self._server: asyncio.base_events.Server | None = None
        self._protocol = None
        self._connected: asyncio.Event | None = None

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


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: AsyncUdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)  # ICMP unreachable: the request is simply lost


class AsyncUdpTransport(_UdpConfig, AsyncTransport):
    """asyncio twin of ``UdpTransport``."""

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_UDP_PORT,
        *,
        reply_port: int = DEFAULT_UDP_REPLY_PORT,
        bind_host: str = "",
    ) -> None:
        super().__init__(host, port, reply_port=reply_port, bind_host=bind_host)
        self._transport: asyncio.DatagramTransport | None = None

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
        self._peer_ip = _resolve_ip(self.host)
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self._peer_ip else socket.AF_INET
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
            raise LinkError(f"cannot receive UDP answers on port {self.reply_port}: {exc}") from exc
        self._transport = transport
        self.reply_port = transport.get_extra_info("sockname")[1]
        self.opens += 1

    def _datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if addr[0] != self._peer_ip:
            self.foreign_datagrams += 1
            return
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


class AsyncSerialTransport(AsyncTransport):
    """asyncio twin of ``SerialTransport``.

    A real tty or pty is read by an event-loop reader callback on its file descriptor;
    pyserial URL handlers without one (rfc2217://, loop://) fall back to a worker thread.
    """

    scheme = "serial"

    def __init__(self, port: str, baudrate: int = DEFAULT_BAUDRATE, *, parity: str = "E") -> None:
        super().__init__()
        self._sync = SerialTransport(port, baudrate, parity=parity)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None

    @property
    def port(self) -> str:
        return self._sync.port

    @property
    def baudrate(self) -> int:
        return self._sync.baudrate

    def describe(self) -> str:
        return self._sync.describe()

    @property
    def is_open(self) -> bool:
        return self._sync.is_open

    async def open(self, timeout: float | None = None) -> None:
        if self.is_open:
            return
        self._reset_buffer()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._sync.open, timeout)
        self.opens += 1
        self._loop = loop
        self._fd = self._sync._fd
        if self._fd is not None:
            os.set_blocking(self._fd, False)
            loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, _RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._stop_reader()
            self._fail(LinkError(f"read from {self.port} failed: {exc}"))
            return
        if not data:
            self._stop_reader()
            self._fail(LinkError(f"serial port {self.port} closed"))
            return
        self._feed(data)

    def _stop_reader(self) -> None:
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
        self._fd = None

    async def receive(self, timeout: float) -> bytes:
        if self._fd is not None or self._buffer or self._error is not None:
            return await super().receive(timeout)
        if not self.is_open:
            raise LinkError(f"serial port {self.port} is not open")
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, self._sync.receive, timeout)
        self.bytes_received += len(data)
        return data

    async def close(self) -> None:
        self._stop_reader()
        self._sync.close()

    async def send(self, data: bytes) -> None:
        if not self.is_open:
            raise LinkError(f"serial port {self.port} is not open")
        if self._fd is None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._sync.send, data)
        else:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self._fd, view)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                    continue
                except OSError as exc:
                    raise LinkError(f"write to {self.port} failed: {exc}") from exc
                view = view[written:]
        self._sent(data)


# --- URLs ----------------------------------------------------------------------------------


def split_host_port(text: str) -> tuple[str, str]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``[IPv6]`` or ``HOST`` -> (host, port text).

    The port text is ``""`` when there is none and the brackets of an IPv6 host are
    removed; the callers (URLs here, the CLI's options) check the port their own way.
    """
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest.lstrip(":")
    host, sep, port_text = text.rpartition(":")
    return (host, port_text) if sep else (text, "")


def _split_host_port(netloc: str, default_port: int | None, what: str) -> tuple[str, int]:
    host, port_text = split_host_port(netloc)
    if port_text:
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"invalid port {port_text!r} in {what}") from None
    elif default_port is None:
        raise ValueError(f"{what} needs a port (HOST:PORT)")
    else:
        port = default_port
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range in {what}")
    return host, port


def open_transport(url: str) -> Transport:
    """Create (not yet connect) the blocking transport a URL describes.

    ``serial:///dev/ttyUSB0?baud=115200``, ``/dev/ttyUSB0``, ``rfc2217://host:port``,
    ``socket://host:port`` and other pyserial URLs, ``tcp://HOST:PORT``,
    ``listen://[HOST]:PORT?allow=IP,IP``, ``udp://HOST[:PORT]?reply_port=N&bind=IP``.
    """
    text = url.strip()
    if not text:
        raise ValueError("empty transport URL")
    if "://" not in text:
        return SerialTransport(text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if scheme == "serial":
        # Everything after serial:// is the device (a path or a pyserial URL); only a
        # trailing ?baud=N is ours.
        rest = text[len("serial://") :]
        baud = DEFAULT_BAUDRATE
        head, sep, tail = rest.rpartition("?")
        if sep and tail.startswith(("baud=", "baudrate=")):
            rest = head
            try:
                baud = int(tail.partition("=")[2])
            except ValueError:
                raise ValueError(f"invalid baud rate in {url}") from None
        if not rest:
            raise ValueError(f"{url}: serial:// needs a device path or URL")
        return SerialTransport(unquote(rest), baud)
    if scheme == "tcp":
        host, port = _split_host_port(parts.netloc, DEFAULT_TCP_PORT, url)
        if not host:
            raise ValueError(f"{url}: tcp:// needs a host")
        return TcpClientTransport(host, port)
    if scheme == "listen":
        host, port = _split_host_port(parts.netloc, DEFAULT_TCP_PORT, url)
        return TcpServerTransport(host or "0.0.0.0", port, allow=query.get("allow"))
    if scheme == "udp":
        host, port = _split_host_port(parts.netloc, DEFAULT_UDP_PORT, url)
        if not host:
            raise ValueError(f"{url}: udp:// needs the gateway's host")
        reply = int(query.get("reply_port", DEFAULT_UDP_REPLY_PORT))
        return UdpTransport(host, port, reply_port=reply, bind_host=query.get("bind", ""))
    # Any other scheme is a pyserial URL handler (rfc2217://, socket://, loop://, spy://...).
    return SerialTransport(text)


def open_async_transport(url: str) -> AsyncTransport:
    """The asyncio transport a URL describes (see ``open_transport``)."""
    return open_transport(url).as_async()


__all__ = [
    "AsyncSerialTransport",
    "AsyncTcpClientTransport",
    "AsyncTcpServerTransport",
    "AsyncTransport",
    "AsyncUdpTransport",
    "SerialTransport",
    "TcpClientTransport",
    "TcpServerTransport",
    "Transport",
    "UdpTransport",
    "open_async_transport",
    "open_transport",
]
