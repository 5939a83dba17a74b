"""Links that carry the simulator: a pseudo terminal, TCP server, TCP client and UDP.

Each link is a context manager running in background threads: started on enter, stopped
(threads joined, sockets and file descriptors closed) on exit. They decode the incoming
byte stream with the codec's StreamDecoder, answer each request through a frame handler
(the simulator's ``handle_frame``), apply the delay and disconnection faults of a
``FaultInjector`` and, with ``baud=N``, pace both directions at 11 bits per byte (8E1), so that a
38400 bps link takes as long as the real one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import codec
from ..exceptions import LinkError
from ..protocol import BITS_PER_BYTE_8E1, DEFAULT_BAUDRATE
from ..records import Frame
from .faults import FaultInjector

#: Answers one decoded request frame with the byte chunks to send back (``Simulator.handle_frame``).
FrameHandler = Callable[[Frame], list[bytes]]

log = logging.getLogger("xcomlog.sim")

_POLL_S = 0.1  # how often blocked threads look at the stop flag
_JOIN_S = 3.0


class Pacer:
    """Holds a direction of a link to ``baud`` bits per second at 11 bits per byte."""

    def __init__(self, baud: int | None) -> None:
        self.byte_time = BITS_PER_BYTE_8E1 / baud if baud else 0.0
        self._free = 0.0

    def wait(self, nbytes: int, stop: threading.Event) -> None:
        """Sleep until ``nbytes`` more bytes have had time to cross the wire."""
        if not self.byte_time:
            return
        now = time.monotonic()
        start = max(now, self._free)
        self._free = start + nbytes * self.byte_time
        if self._free > now:
            stop.wait(self._free - now)


class Link:
    """Base class: start/stop, the thread list and the request-answering loop body."""

    kind = "link"

    def __init__(
        self, handler: FrameHandler, injector: FaultInjector, baud: int | None = None
    ) -> None:
        if baud is not None and baud <= 0:
            raise ValueError(f"baud must be > 0, got {baud}")
        self.handler = handler
        self.injector = injector
        self.baud = baud
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = time.monotonic()
        self.requests = 0
        self.connections = 0

    def __enter__(self) -> Link:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        self._close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(_JOIN_S)
        self._threads.clear()

    def _close(self) -> None:
        """Close what blocks the threads (sockets, file descriptors)."""

    def _spawn(self, target: Callable[..., None], *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=f"xcomlog-sim-{name}", daemon=True)
        self._threads[:] = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def down(self) -> bool:
        """True while a scheduled disconnection (fault) is under way."""
        return self.injector.link_down(self.started_at)

    def _answer(
        self,
        chunk: bytes,
        decoder: Any,
        send: Callable[[bytes], None],
        rx: Pacer,
        tx: Pacer,
    ) -> None:
        """Decode ``chunk``, answer each complete request, pace and delay as configured."""
        if rx.byte_time:
            rx.wait(len(chunk), self._stop)
        for frame in decoder.feed(chunk):
            chunks = self.handler(frame)
            self.requests += 1
            delay = self.injector.delay() if self.injector.config.active else 0.0
            if delay:
                self._stop.wait(delay)
            for out in chunks:
                if self._stop.is_set():
                    return
                tx.wait(len(out), self._stop)
                send(out)


class TcpServerLink(Link):
    """A Moxa NPort in TCP-server mode: clients connect to ``address`` (``--tcp``).

    With ``shared=True`` every connected client receives every response, as from an
    NPort that lets several clients share one serial port: each must pick its own frames.
    """

    kind = "tcp-server"

    def __init__(
        self,
        handler: FrameHandler,
        injector: FaultInjector,
        host: str = "127.0.0.1",
        port: int = 0,
        baud: int | None = None,
        shared: bool = False,
    ) -> None:
        super().__init__(handler, injector, baud)
        self.shared = shared
        self._bind = (host, port)
        self._server: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.address: tuple[str, int] = (host, port)

    def start(self) -> None:
        try:
            server = socket.create_server(self._bind, reuse_port=False)
        except OSError as exc:
            raise LinkError(
                f"simulator cannot listen on {self._bind[0]}:{self._bind[1]}: {exc}"
            ) from None
        server.settimeout(_POLL_S)
        self._server = server
        self.address = server.getsockname()[:2]
        self.started_at = time.monotonic()
        self._spawn(self._accept_loop, name="tcp-accept")

    def _accept_loop(self) -> None:
        server = self._server
        assert server is not None
        while not self._stop.is_set():
            if self.down():
                self._drop_all()
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            if self.down():
                conn.close()
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Blocking without a timeout saves a poll() per recv; stop() and the disconnect
            # fault shut the socket down, which wakes the recv.
            conn.settimeout(None if not self.injector.config.disconnect_every_s else _POLL_S)
            with self._conns_lock:
                self._conns.add(conn)
            self.connections += 1
            log.debug("simulator: TCP client %s:%s connected", *peer[:2])
            self._spawn(self._serve, conn, name="tcp-conn")

    def _serve(self, conn: socket.socket) -> None:
        decoder = codec.StreamDecoder()
        rx, tx = Pacer(self.baud), Pacer(self.baud)
        try:
            while not self._stop.is_set():
                if self.down():
                    break
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                self._answer(
                    chunk, decoder, self._broadcast if self.shared else conn.sendall, rx, tx
                )
        except OSError:
            pass
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _broadcast(self, data: bytes) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sendall(data)

    def _drop_all(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _close(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()
        self._drop_all()


class TcpClientLink(Link):
    """A Moxa NPort in TCP-client mode: connects out to a listening logger (``--listen``).

    It retries every ``retry_s`` until the logger listens, and reconnects after the
    connection closes, as the NPort does.
    """

    kind = "tcp-client"

    def __init__(
        self,
        handler: FrameHandler,
        injector: FaultInjector,
        host: str,
        port: int,
        baud: int | None = None,
        retry_s: float = 0.5,
    ) -> None:
        super().__init__(handler, injector, baud)
        self.address = (host, int(port))
        self.retry_s = retry_s
        self.connected = threading.Event()
        self._sock: socket.socket | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._spawn(self._run, name="tcp-client")

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.down():
                self._stop.wait(_POLL_S)
                continue
            try:
                sock = socket.create_connection(self.address, timeout=1.0)
            except OSError:
                self._stop.wait(self.retry_s)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(_POLL_S)
            self._sock = sock
            self.connections += 1
            self.connected.set()
            decoder = codec.StreamDecoder()
            rx, tx = Pacer(self.baud), Pacer(self.baud)
            try:
                while not self._stop.is_set() and not self.down():
                    try:
                        chunk = sock.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    self._answer(chunk, decoder, sock.sendall, rx, tx)
            except OSError:
                pass
            finally:
                self.connected.clear()
                self._sock = None
                with contextlib.suppress(OSError):
                    sock.close()
            self._stop.wait(self.retry_s)

    def _close(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class UdpLink(Link):
    """Xcom-LAN over UDP: answers go to the client's host at ``reply_port``.

    The real Xcom-LAN sends its responses to a fixed port of the client, not back to
    the port the request came from; ``reply_port=None`` answers the sending port.
    """

    kind = "udp"

    def __init__(
        self,
        handler: FrameHandler,
        injector: FaultInjector,
        host: str = "127.0.0.1",
        port: int = 0,
        reply_port: int | None = None,
        baud: int | None = None,
    ) -> None:
        super().__init__(handler, injector, baud)
        self._bind = (host, port)
        self.reply_port = reply_port
        self._sock: socket.socket | None = None
        self.address: tuple[str, int] = (host, port)

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._bind[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(self._bind)
        except OSError as exc:
            sock.close()
            raise LinkError(
                f"simulator cannot bind UDP {self._bind[0]}:{self._bind[1]}: {exc}"
            ) from None
        sock.settimeout(_POLL_S)
        self._sock = sock
        self.address = sock.getsockname()[:2]
        self.started_at = time.monotonic()
        self._spawn(self._run, name="udp")

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        decoders: dict[tuple, Any] = {}
        rx, tx = Pacer(self.baud), Pacer(self.baud)
        while not self._stop.is_set():
            try:
                chunk, peer = sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if self.down():
                continue
            decoder = decoders.get(peer)
            if decoder is None:
                if len(decoders) > 64:
                    decoders.clear()
                decoder = decoders[peer] = codec.StreamDecoder()
            target = (peer[0], self.reply_port if self.reply_port else peer[1])

            def send(data: bytes, target: tuple = target) -> None:
                with contextlib.suppress(OSError):
                    sock.sendto(data, target)

            self._answer(chunk, decoder, send, rx, tx)

    def _close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()


class PtyLink(Link):
    """A pseudo terminal: the client opens ``path`` with pyserial (38400 8E1) like a COM port.

    During a scheduled disconnection the line goes silent (a pty cannot vanish and come
    back under the same path).
    """

    kind = "pty"

    def __init__(
        self, handler: FrameHandler, injector: FaultInjector, baud: int | None = None
    ) -> None:
        super().__init__(handler, injector, baud)
        self.path = ""
        self._master = -1
        self._slave = -1

    def start(self) -> None:
        import termios
        import tty

        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise LinkError(f"simulator cannot open a pseudo terminal: {exc}") from None
        tty.setraw(slave)
        with contextlib.suppress(termios.error):
            # Cosmetic (a pty has no wire): show 8E1 at the link's speed to stty users.
            attrs = termios.tcgetattr(slave)
            attrs[2] |= termios.PARENB
            attrs[2] &= ~termios.PARODD
            attrs[4] = attrs[5] = getattr(
                termios, f"B{self.baud or DEFAULT_BAUDRATE}", termios.B38400
            )
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self.started_at = time.monotonic()
        self._spawn(self._run, name="pty")

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                n = os.write(self._master, view)
                view = view[n:]
            except BlockingIOError:
                select.select([], [self._master], [], _POLL_S)
            except OSError:
                return

    def _run(self) -> None:
        decoder = codec.StreamDecoder()
        rx, tx = Pacer(self.baud), Pacer(self.baud)
        master = self._master
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], _POLL_S)
            except (OSError, ValueError):
                break
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # no process has the slave open right now
                    self._stop.wait(_POLL_S)
                    continue
                break
            if not chunk:
                continue
            if self.down():
                decoder.reset()
                continue
            self._answer(chunk, decoder, self._write, rx, tx)

    def _close(self) -> None:
        # The reading thread notices the stop flag within _POLL_S; close after it exits.
        for thread in self._threads:
            thread.join(_JOIN_S)
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1
