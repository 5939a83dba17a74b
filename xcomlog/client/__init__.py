"""The Xcom client: read and write any value of an installation over any link.

``XcomClient`` (blocking) and ``AsyncXcomClient`` (asyncio) expose the same operations.
Each operation is written once, in ``operations.ClientOperations`` (with ``scan`` and
``transfer``), as a generator over the I/O commands of the protocol engine
(``xcomlog.engine``); ``_register`` gives both faces every operation of ``OPERATIONS``,
one driving it with ``run_sync``, the other with ``run_async``::

    from xcomlog.client import XcomClient
    with XcomClient("tcp://192.168.1.10:4001") as xcom:
        xcom.read_info(3000, address=101)          # battery voltage of Xtender 1
        xcom.read_infos([(3000, 101), (7002, 601)])  # {(3000, 101): ..., (7002, 601): ...}
        xcom.write_param(1138, 12.0, address=101)  # RAM only; flash=True to save it

Values are typed through the datapoint catalog (``xcomlog.catalog``); writes are
validated against it before anything is sent.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ..engine import Operation, PolitePolicy, run_async, run_sync
from ..links import AsyncTransport, Transport, open_transport
from ..options import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S
from ..protocol import ADDRESS_DTE
from .operations import OPERATIONS, ClientOperations, MessageRecord
from .scan import DeviceInfo

T = TypeVar("T")


def _sync_op(method: Callable[..., Operation[T]]) -> Callable[..., T]:
    @functools.wraps(method)
    def run(self: XcomClient, *args: Any, **kwargs: Any) -> T:
        self._ensure_open()
        return run_sync(self.transport, method(self, *args, **kwargs))

    run.__name__ = method.__name__.lstrip("_")
    return run


def _async_op(method: Callable[..., Operation[T]]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def run(self: AsyncXcomClient, *args: Any, **kwargs: Any) -> T:
        await self._ensure_open()
        async with self._lock:
            return await run_async(self.transport, method(self, *args, **kwargs))

    run.__name__ = method.__name__.lstrip("_")
    return run


def _client_options(
    timeout: float,
    retries: int,
    src: int,
    polite: PolitePolicy | None,
    catalog: Any,
    open_timeout: float | None,
    system_voltage: int | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    return dict(
        timeout=timeout,
        retries=retries,
        src=src,
        polite=polite,
        catalog=catalog,
        open_timeout=open_timeout,
        system_voltage=system_voltage,
        **options,
    )


class XcomClient(ClientOperations):
    """Blocking Xcom client over any ``Transport`` (or a transport URL).

    ``timeout`` is per try (the specification's 2 s), ``retries`` the extra tries after
    a timeout or a broken link (defaults: ``xcomlog.options``, as on the command line);
    ``system_voltage`` (12, 24, 48) sets the battery-voltage limits writes are checked
    against, else the installation is asked on the first write that needs it; more tuning (backoff, busy_timeout, reconnect_timeout)
    goes to ``xcomlog.engine.Session``. Use as a context manager, or ``open``/``close``.
    """

    def __init__(
        self,
        transport: Transport | str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        src: int = ADDRESS_DTE,
        polite: PolitePolicy | None = None,
        catalog: Any = None,
        open_timeout: float | None = None,
        system_voltage: int | None = None,
        **session_options: Any,
    ) -> None:
        if isinstance(transport, str):
            transport = open_transport(transport)
        if not isinstance(transport, Transport):
            raise TypeError(
                f"XcomClient needs a blocking Transport, got {type(transport).__name__}"
            )
        self.transport = transport
        self._setup(
            **_client_options(
                timeout,
                retries,
                src,
                polite,
                catalog,
                open_timeout,
                system_voltage,
                session_options,
            )
        )

    def open(self) -> XcomClient:
        if not self.transport.is_open:
            self.transport.open(self.open_timeout)
        return self

    def _ensure_open(self) -> None:
        if not self.transport.is_open and not self._session._broken:
            self.transport.open(self.open_timeout)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> XcomClient:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<XcomClient {self.transport.describe()}>"


class AsyncXcomClient(ClientOperations):
    """asyncio Xcom client: the same operations as ``XcomClient``, awaitable.

    Takes an ``AsyncTransport``, a blocking ``Transport`` (converted with its
    ``as_async()``) or a URL. Concurrent calls on one client are serialised (one request
    at a time per link, as the protocol requires); drive many links concurrently with one
    client each.
    """

    def __init__(
        self,
        transport: AsyncTransport | Transport | str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        src: int = ADDRESS_DTE,
        polite: PolitePolicy | None = None,
        catalog: Any = None,
        open_timeout: float | None = None,
        system_voltage: int | None = None,
        **session_options: Any,
    ) -> None:
        import asyncio

        if isinstance(transport, str):
            transport = open_transport(transport)
        if isinstance(transport, Transport):
            transport = transport.as_async()
        if not isinstance(transport, AsyncTransport):
            raise TypeError(
                f"AsyncXcomClient needs an AsyncTransport, got {type(transport).__name__}"
            )
        self.transport = transport
        self._lock = asyncio.Lock()
        self._setup(
            **_client_options(
                timeout,
                retries,
                src,
                polite,
                catalog,
                open_timeout,
                system_voltage,
                session_options,
            )
        )

    async def open(self) -> AsyncXcomClient:
        if not self.transport.is_open:
            await self.transport.open(self.open_timeout)
        return self

    async def _ensure_open(self) -> None:
        if not self.transport.is_open and not self._session._broken:
            await self.transport.open(self.open_timeout)

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> AsyncXcomClient:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncXcomClient {self.transport.describe()}>"


def _register(
    face: type, wrap: Callable[[Callable[..., Operation[Any]]], Callable[..., Any]]
) -> None:
    """Give ``face`` every operation of ``OPERATIONS``, each driven by ``wrap``."""
    for name in OPERATIONS:
        setattr(face, name, wrap(getattr(ClientOperations, "_" + name)))


_register(XcomClient, _sync_op)
_register(AsyncXcomClient, _async_op)
assert inspect.iscoroutinefunction(AsyncXcomClient.read_info)

__all__ = [
    "AsyncXcomClient",
    "DeviceInfo",
    "MessageRecord",
    "PolitePolicy",
    "XcomClient",
]
