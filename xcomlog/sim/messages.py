"""The Xcom-232i message log (section 4.6): stored messages, the index-0 pointer, the pending flag.

Reading index 0 returns the newest message, takes a snapshot pointer (SCOM_MSG_IDX) and
clears the pending flag; index ``i > 0`` returns the ``i``-th message before the pointer.
The first field of every answer is the number of messages remaining before the very first
one stored, so a client reads index 0, then 1..remaining.
"""

from __future__ import annotations

import random
from typing import NamedTuple


class StoredMessage(NamedTuple):
    """One message as the gateway stores it."""

    message_type: int
    source: int
    timestamp: int
    value: bytes = b"\0\0\0\0"


class MessageLog:
    """Messages in arrival order (oldest first) plus the client's read pointer."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._messages: list[StoredMessage] = []
        self._pointer: int | None = (
            None  # index into _messages of the newest at the last index-0 read
        )
        self._dropped = 0  # oldest messages evicted since the pointer was taken
        self.pending = False

    def __len__(self) -> int:
        return len(self._messages)

    def add(
        self, message_type: int, source: int, timestamp: int, value: bytes = b"\0\0\0\0"
    ) -> None:
        """Store a message (a device sent it on the bus); sets the pending flag."""
        self._messages.append(
            StoredMessage(int(message_type), int(source), int(timestamp), bytes(value))
        )
        if len(self._messages) > self.capacity:
            del self._messages[0]
            if self._pointer is not None:
                self._pointer -= 1
        self.pending = True

    def read(self, index: int) -> tuple[int, StoredMessage] | None:
        """(remaining, message) for a read of ``index``, or None if there is no such message."""
        if index == 0:
            self.pending = False
            if not self._messages:
                self._pointer = None
                return None
            self._pointer = len(self._messages) - 1
            return self._pointer, self._messages[self._pointer]
        if self._pointer is None:
            return None
        position = self._pointer - index
        if position < 0:
            return None
        return position, self._messages[position]

    def messages(self) -> list[StoredMessage]:
        """Every stored message, oldest first (a copy)."""
        return list(self._messages)


def seed_history(
    log: MessageLog,
    count: int,
    now: int,
    types: list[int],
    sources: list[int],
    rng: random.Random,
) -> None:
    """Fill ``log`` with ``count`` plausible past messages spread over the last days."""
    if not types or not sources or count <= 0:
        return
    span = 3 * 86400
    times = sorted(now - rng.randrange(60, span) for _ in range(count))
    for t in times:
        log.add(rng.choice(types), rng.choice(sources), t)
