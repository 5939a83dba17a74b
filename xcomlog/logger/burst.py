"""The burst: the logger's fast path for a run of multi-info requests of one cycle."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from .columns import Cycle
from .plan import PlannedRead

if TYPE_CHECKING:
    from .loop import SiteLogger


class Burst:
    """A run of multi-info requests of one cycle, each sent from the link's data callback.

    The ordinary exchange (``SiteLogger._exchange``) costs a task switch and two turns of
    the event loop per request. A burst sends the next request straight from the callback
    that receives the previous answer, as long as every answer arrives whole and is exactly
    the one expected. Anything else (an error answer, a foreign, stale, split or damaged
    frame, a link failure, no answer within the timeout) ends the burst with that request
    still in flight, and the ordinary exchange finishes it: matching, retries and events
    keep one implementation.
    """

    __slots__ = ("logger", "transport", "cycle", "end", "done", "timer", "sent_at", "in_flight")

    def __init__(self, logger: SiteLogger, transport, cycle: Cycle, end: int) -> None:
        self.logger = logger
        self.transport = transport
        self.cycle = cycle
        self.end = end  # index after the last request of the burst
        self.done: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.sent_at = 0.0  # time.monotonic() of the last send
        self.in_flight = False

    async def run(self) -> float | None:
        """Run the burst; returns when the request left in flight was sent, or None."""
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.transport.chunk_hook = self.on_chunk
        try:
            if not self._send(self.cycle.group.requests[self.cycle.index]):
                return None
            self.timer = loop.call_later(self.logger.config.timeout, self._check)
            await self.done
        finally:
            self._release()
        return self.sent_at if self.in_flight else None

    def _send(self, request: PlannedRead) -> bool:
        if not self.transport.send_nowait(request.frame):
            return False
        self.logger.engine.sent()
        self.logger.stats.requests += 1
        self.sent_at = time.monotonic()
        self.in_flight = True
        return True

    def _release(self) -> None:
        if self.transport.chunk_hook == self.on_chunk:
            self.transport.chunk_hook = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _finish(self) -> None:
        self._release()
        done = self.done
        if done is not None and not done.done():
            done.set_result(None)

    def _check(self) -> None:
        """Timer: end the burst once the request in flight has had its whole timeout."""
        left = self.sent_at + self.logger.config.timeout - time.monotonic()
        if self.in_flight and left > 1e-3 and self.done is not None:
            self.timer = self.done.get_loop().call_later(left, self._check)
        else:
            self.timer = None
            self._finish()

    def on_chunk(self, chunk: bytes) -> bool:
        """The link's byte receiver: take a clean answer and send the next request."""
        logger = self.logger
        cycle = self.cycle
        request = cycle.group.requests[cycle.index]
        if not chunk or not logger.engine.take_answer(request, chunk):
            self._finish()
            return False
        t_ms = time.time_ns() // 1_000_000
        self.in_flight = False
        logger._answered(chunk[1], True)
        logger._ok(request, t_ms)
        cycle.add_multi(request, chunk, t_ms)
        cycle.index += 1
        if cycle.index >= self.end or not self._send(cycle.group.requests[cycle.index]):
            self._finish()
        return True


__all__ = ["Burst"]
