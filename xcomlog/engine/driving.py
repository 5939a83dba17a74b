"""How an engine operation meets a link: I/O commands, and their blocking and asyncio drivers.

Every engine operation is a generator that yields I/O commands (``Send``, ``Receive``,
``Sleep``, ``Reconnect``) and receives their results; ``run_sync`` drives it with a
blocking link and ``run_async`` with an asyncio one. A ``LinkError`` raised by the link
is thrown back into the operation, which decides whether to reconnect and retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import Any, TypeVar

from ..exceptions import LinkError

T = TypeVar("T")


# --- I/O commands -----------------------------------------------------------------------


class Send:
    """Write ``data`` to the link."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Receive:
    """Return the bytes that arrive within ``timeout`` seconds (``b""`` if none)."""

    __slots__ = ("timeout",)

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout


class Sleep:
    """Pause for ``seconds``."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Reconnect:
    """Re-establish a broken link within ``timeout`` seconds."""

    __slots__ = ("timeout",)

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout


Command = Send | Receive | Sleep | Reconnect
#: An operation: yields commands, gets their results back, returns its value.
Operation = Generator[Command, Any, T]


def run_sync(transport: Any, operation: Operation[T]) -> T:
    """Drive ``operation`` with a blocking transport; returns its value."""
    value: Any = None
    error: BaseException | None = None
    receive = transport.receive
    try:
        while True:
            try:
                command = operation.throw(error) if error is not None else operation.send(value)
            except StopIteration as stop:
                return stop.value
            value = error = None
            kind = type(command)
            try:
                if kind is Receive:
                    value = receive(command.timeout)
                elif kind is Send:
                    transport.send(command.data)
                elif kind is Sleep:
                    if command.seconds > 0:
                        time.sleep(command.seconds)
                elif kind is Reconnect:
                    transport.reconnect(command.timeout)
                else:  # pragma: no cover - a programming error
                    raise TypeError(f"unknown I/O command {command!r}")
            except LinkError as exc:
                error = exc
    finally:
        operation.close()


async def run_async(transport: Any, operation: Operation[T]) -> T:
    """Drive ``operation`` with an asyncio transport; returns its value."""
    value: Any = None
    error: BaseException | None = None
    receive = transport.receive
    try:
        while True:
            try:
                command = operation.throw(error) if error is not None else operation.send(value)
            except StopIteration as stop:
                return stop.value
            value = error = None
            kind = type(command)
            try:
                if kind is Receive:
                    value = await receive(command.timeout)
                elif kind is Send:
                    await transport.send(command.data)
                elif kind is Sleep:
                    await asyncio.sleep(command.seconds)
                elif kind is Reconnect:
                    await transport.reconnect(command.timeout)
                else:  # pragma: no cover
                    raise TypeError(f"unknown I/O command {command!r}")
            except LinkError as exc:
                error = exc
    finally:
        operation.close()


__all__ = ["Command", "Operation", "Receive", "Reconnect", "Send", "Sleep", "run_async", "run_sync"]
