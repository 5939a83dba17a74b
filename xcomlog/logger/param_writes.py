"""Parameter writes asked from outside the poll (MQTT), sent between two poll requests.

A write is one engine ``Request`` (service WRITE) queued on its site; the site's poll
loop sends what is queued before its next request, through the same
``Session.run`` as every read, so its answer is recognised by the engine's one
matching rule. The asker waits for the ``Outcome`` (or gives up after ``limit``).
Values must be validated by the asker (``Catalog.validate`` at the installation's
system voltage): this module only encodes and carries them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from .. import codec
from ..engine import OK, Outcome, Request
from ..exceptions import DeviceError, XcomTimeout
from ..protocol import ObjectType, Property, Service, device_name

if TYPE_CHECKING:
    from .loop import SiteLogger


def write_request(dp: Any, value: object, *, address: int, src: int, flash: bool) -> Request:
    """The WRITE of parameter ``dp`` = ``value`` at ``address``: to RAM (the unsaved value)
    unless ``flash`` (flash endures about 1000 writes, section 4.5.4)."""
    prop = Property.VALUE_QSP if flash else Property.UNSAVED_VALUE_QSP
    data = codec.pack_value(dp.format, value)
    return Request(Service.WRITE, ObjectType.PARAMETER, dp.number, prop, data, dst=address, src=src)


class WriteQueue:
    """The writes waiting for a site's link, oldest first."""

    def __init__(self) -> None:
        self._queue: deque[tuple[Request, asyncio.Future, str]] = deque()
        #: Set while a write waits: the poll loop's sleeps end early for it.
        self.arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    async def write(self, request: Request, limit: float) -> None:
        """Queue ``request`` and wait until the site sent it; raises DeviceError (the
        device refused it) or XcomTimeout (no answer, or not sent within ``limit`` s)."""
        what = describe_write(request)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        while self._queue and self._queue[0][1].done():  # askers that gave up (link down)
            self._queue.popleft()
        self._queue.append((request, future, what))
        self.arrived.set()
        try:
            outcome: Outcome = await asyncio.wait_for(future, limit)
        except asyncio.TimeoutError:
            raise XcomTimeout(f"{what}: the link did not carry it within {limit:g} s") from None
        if outcome.kind == OK:
            return
        if outcome.code:
            raise DeviceError(outcome.code, what)
        raise XcomTimeout(f"{what}: no answer from {device_name(request.dst)}")

    async def send(self, site: SiteLogger, transport) -> None:
        """Send every queued write on ``transport`` (called by the site's poll loop)."""
        self.arrived.clear()
        while self._queue:
            request, future, what = self._queue.popleft()
            if future.done():
                continue  # the asker gave up
            outcome = await site._exchange(transport, request, quiet=True)
            if outcome.kind == OK:
                site.event("write", what, address=request.dst, number=request.object_id)
            if not future.done():
                future.set_result(outcome)


def describe_write(request: Request) -> str:
    """``parameter 1107 of xt1 (RAM)``: what a write is, for events and errors."""
    where = "flash" if request.property_id == Property.VALUE_QSP else "RAM"
    return f"parameter {request.object_id} of {device_name(request.dst)} ({where})"


__all__ = ["WriteQueue", "describe_write", "write_request"]
