"""What every link shares: the blocking ``Transport`` and asyncio ``AsyncTransport`` contracts.

A link moves raw bytes and knows nothing about frames; the protocol engine
(``xcomlog.engine``) finds the frames and matches them to requests. ``receive(timeout)``
returns the bytes that arrived (a chunk of any size), or ``b""`` when nothing arrived in
time; a broken link raises ``LinkError``.

How the engine receives bytes without a task switch: an ``AsyncTransport`` hands every
chunk first to its ``chunk_hook`` (a ``ByteReceiver``), if one is set and nothing is
buffered; the receiver returns True when it consumed the chunk, False to let it be
buffered for ``receive``; a failing link calls it once with ``b""``. ``send_nowait``
writes from inside that callback. The engine's fast path
(``xcomlog.engine.Session.take_answer``, driven by the logger's burst) uses both.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import socket
from collections.abc import Callable
from typing import TypeAlias

from ..exceptions import LinkError

log = logging.getLogger("xcomlog.links")

#: How long ``open()`` waits by default (connect, or the Moxa connecting to us).
DEFAULT_OPEN_TIMEOUT = 10.0
_RECV_SIZE = 4096

#: Sees a received chunk before it is buffered; True: consumed. ``b""``: the link failed.
ByteReceiver: TypeAlias = Callable[[bytes], bool]


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


def _resolve_ip(host: str) -> str:
    """The IP address of ``host`` (so peer allow-lists compare addresses, not names)."""
    try:
        return socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0]
    except OSError:
        return host


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
        #: returning True consumes it (see the module docstring: the engine's fast path).
        self.chunk_hook: ByteReceiver | None = None

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
