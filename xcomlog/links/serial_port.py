"""The serial link (Xcom-232i on RS-232): pyserial device paths and URLs, blocking and asyncio."""

from __future__ import annotations

import asyncio
import logging
import os
import select
from typing import Any

from ..exceptions import LinkError
from ..protocol import DEFAULT_BAUDRATE
from .base import _RECV_SIZE, AsyncTransport, Transport, _hex, _timeout

log = logging.getLogger("xcomlog.links")


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


#: Longest blocking read of a worker thread (pyserial URL handlers without a descriptor).
_THREAD_SLICE_S = 0.2


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
        # A worker thread reads in short slices: a cancelled receive (a stop) leaves no
        # thread blocked for a whole timeout, which would hold up the loop's shutdown.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            wait = min(max(0.0, deadline - loop.time()), _THREAD_SLICE_S)
            data = await loop.run_in_executor(None, self._sync.receive, wait)
            if data or loop.time() >= deadline:
                break
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
