"""A tiny in-test Xcom gateway and in-process transports, for client and session tests.

Deliberately independent of ``xcomlog.sim``: it answers from a dict with the codec and
lets each test script faults (drop, busy, corrupt, foreign frames, late answers)
precisely, request by request. Imported by the client and transport tests.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable

from xcomlog import codec
from xcomlog.exceptions import LinkError
from xcomlog.links import AsyncTransport, Transport
from xcomlog.protocol import (
    ADDRESS_GATEWAY,
    ErrorCode,
    Format,
    ObjectType,
    Property,
    Service,
    ServiceFlag,
)

FLAGS = 0x34  # SD card present, new datalog file, datalogger supported (the spec's examples)


class FakeGateway:
    """Answers requests from dictionaries; faults are scripted per request."""

    def __init__(self) -> None:
        # (address, number) -> (format, value)
        self.infos: dict[tuple[int, int], tuple[Format, object]] = {}
        self.params: dict[tuple[int, int], tuple[Format, object]] = {}
        self.ram: dict[tuple[int, int], object] = {}
        self.levels: dict[tuple[int, int], int] = {}
        self.devices: set[int] = set()
        self.flash_writes: dict[tuple[int, int], int] = {}
        self.ram_writes: dict[tuple[int, int], int] = {}
        self.messages: list[tuple[int, int, int]] = []  # (type, source, time), oldest first
        self._msg_pointer: int | None = None
        self.guid = bytes(range(16))
        self.datalog_field: bytes | None = None
        self.files: dict[str, bytes] = {}
        self.multi_info = True
        self.multi_info_requests = 0
        self.requests: list = []  # decoded request frames, in order
        self.frame_flags = FLAGS
        # Scripted faults: each is a deque of actions consumed per request.
        self.script: deque[str] = deque()
        self.transfer: dict | None = None
        self.block_sends = 0

    # --- set-up helpers ---------------------------------------------------------------
    def add_info(
        self, address: int, number: int, value: object, fmt: Format = Format.FLOAT
    ) -> None:
        self.devices.add(address)
        self.infos[(address, number)] = (fmt, value)

    def add_param(
        self, address: int, number: int, value: object, fmt: Format = Format.FLOAT
    ) -> None:
        self.devices.add(address)
        self.params[(address, number)] = (fmt, value)
        self.levels[(address, number)] = 0x10

    # --- request handling -------------------------------------------------------------
    def handle(self, request: bytes) -> list[bytes]:
        frame = codec.decode_frame(request)
        self.requests.append(frame)
        action = self.script.popleft() if self.script else "ok"
        if action in ("drop", "close"):
            return []
        if action == "busy":
            return [self._error(frame, ErrorCode.SCOM_ERROR_GATEWAY_BUSY)]
        if action == "device_timeout":
            return [self._error(frame, ErrorCode.RESPONSE_TIMEOUT)]
        answers = self._answer(frame)
        if action == "ok":
            return answers
        if action == "corrupt":
            data = bytearray(answers[0])
            data[-3] ^= 0x40
            return [bytes(data)]
        if action == "foreign":  # another client's copy first, then ours
            return [self._readdress(answers[0], 7), *answers]
        if action == "wrong_object":  # an answer about another object first
            other = codec.decode_frame(answers[0])
            fake = codec.encode_frame(
                other.service_id,
                other.object_type,
                other.object_id + 1,
                other.property_id,
                other.data,
                src=other.src,
                dst=other.dst,
                service_flags=other.service_flags,
                frame_flags=other.frame_flags,
            )
            return [fake, *answers]
        if action == "junk":
            return [b"\x00\xff\x13junk\xaa\x01", *answers]
        if action == "split":  # the answer arrives byte by byte
            return [bytes([b]) for b in answers[0]]
        if action == "drop_after":  # the request was processed, the answer lost
            return []
        raise AssertionError(f"unknown scripted action {action!r}")

    def _readdress(self, response: bytes, dst: int) -> bytes:
        f = codec.decode_frame(response)
        return codec.encode_frame(
            f.service_id,
            f.object_type,
            f.object_id,
            f.property_id,
            f.data,
            src=f.src,
            dst=dst,
            service_flags=f.service_flags,
            frame_flags=f.frame_flags,
        )

    def _response(self, req, data: bytes = b"", property_id: int | None = None) -> bytes:
        return codec.encode_response(
            req.service_id,
            req.object_type,
            req.object_id,
            req.property_id if property_id is None else property_id,
            data,
            src=req.dst,
            dst=req.src,
            frame_flags=self.frame_flags,
        )

    def _error(self, req, code: int, src: int | None = None) -> bytes:
        return codec.encode_response(
            req.service_id,
            req.object_type,
            req.object_id,
            req.property_id,
            src=req.dst if src is None else src,
            dst=req.src,
            frame_flags=self.frame_flags,
            error_code=int(code),
        )

    def _answer(self, req) -> list[bytes]:
        t = req.object_type
        if req.dst != ADDRESS_GATEWAY and req.dst not in self.devices:
            return [self._error(req, ErrorCode.DEVICE_NOT_FOUND, src=ADDRESS_GATEWAY)]
        if t == ObjectType.USER_INFO:
            key = (req.dst, req.object_id)
            if key not in self.infos:
                return [self._error(req, ErrorCode.OBJECT_ID_NOT_FOUND)]
            fmt, value = self.infos[key]
            return [self._response(req, codec.pack_value(fmt, value))]
        if t == ObjectType.PARAMETER:
            return [self._parameter(req)]
        if t == ObjectType.MULTI_INFO:
            self.multi_info_requests += 1
            if not self.multi_info:
                return [self._error(req, ErrorCode.TYPE_NOT_SUPPORTED)]
            items = codec.unpack_multi_info_request(req.data)
            ids, aggs, values = [], [], []
            for number, agg in items:
                address = self._device_for(number, agg)
                fmt, value = self.infos.get((address, number), (Format.FLOAT, float("nan")))
                ids.append(number)
                aggs.append(agg)
                values.append(float(value))
            data = codec.pack_multi_info_response(0x1E0, 1_700_000_000, ids, aggs, values)
            return [self._response(req, data)]
        if t == ObjectType.MESSAGE:
            return [self._message(req)]
        if t == ObjectType.GUID:
            return [self._response(req, self.guid)]
        if t == ObjectType.CUSTOM_DATALOG_FIELD:
            self.datalog_field = req.data
            return [self._response(req)]
        if t == ObjectType.DATALOG_TRANSFER:
            return [self._transfer(req)]
        return [self._error(req, ErrorCode.TYPE_NOT_SUPPORTED)]

    @staticmethod
    def _device_for(number: int, agg: int) -> int:
        base = {3: 100, 7: 600, 11: 300, 15: 700}.get(number // 1000, 100)
        return base + (agg or 1)

    def _parameter(self, req) -> bytes:
        key = (req.dst, req.object_id)
        if key not in self.params:
            return self._error(req, ErrorCode.OBJECT_ID_NOT_FOUND)
        fmt, value = self.params[key]
        if req.service_id == Service.READ:
            if req.property_id == Property.VALUE_QSP:
                return self._response(req, codec.pack_value(fmt, value))
            if req.property_id == Property.UNSAVED_VALUE_QSP:
                return self._response(req, codec.pack_value(fmt, self.ram.get(key, value)))
            if req.property_id == Property.LEVEL_QSP:
                return self._response(req, struct.pack("<H", self.levels[key]))
            if req.property_id in (Property.MIN_QSP, Property.MAX_QSP):
                return self._response(
                    req, codec.pack_value(fmt, 0 if req.property_id == 6 else 100)
                )
            return self._error(req, ErrorCode.PROPERTY_NOT_SUPPORTED)
        value = codec.unpack_value(fmt, req.data)
        if req.property_id == Property.VALUE_QSP:
            self.params[key] = (fmt, value)
            self.ram[key] = value
            self.flash_writes[key] = self.flash_writes.get(key, 0) + 1
        elif req.property_id == Property.UNSAVED_VALUE_QSP:
            self.ram[key] = value
            self.ram_writes[key] = self.ram_writes.get(key, 0) + 1
        else:
            return self._error(req, ErrorCode.PROPERTY_IS_READ_ONLY)
        return self._response(req)

    def _message(self, req) -> bytes:
        index = req.object_id
        if index == 0:
            if not self.messages:
                return self._error(req, ErrorCode.OBJECT_ID_NOT_FOUND)
            self._msg_pointer = len(self.messages) - 1
            position = self._msg_pointer
        else:
            if self._msg_pointer is None or self._msg_pointer - index < 0:
                return self._error(req, ErrorCode.OBJECT_ID_NOT_FOUND)
            position = self._msg_pointer - index
        kind, source, when = self.messages[position]
        return self._response(req, codec.pack_message(position, kind, source, when))

    def _transfer(self, req) -> bytes:
        prop = req.property_id
        if prop == Property.SD_START:
            if req.object_id == 1:
                content = "".join(name + "\n" for name in sorted(self.files)).encode()
            else:
                name = req.data.decode("ascii").strip("\r\n\0 ")
                if name not in self.files:
                    return self._error(req, ErrorCode.FILE_OR_DIR_NOT_PRESENT)
                content = self.files[name]
            blocks = [content[i : i + 512] for i in range(0, len(content), 512)] or [b""]
            self.transfer = {"blocks": blocks, "pos": 0, "object": req.object_id}
        elif prop == Property.SD_ACK_CONTINUE:
            if self.transfer is None:
                return self._error(req, ErrorCode.OBJECT_PROPERTY_INVALID)
            self.transfer["pos"] += 1
        elif prop == Property.SD_NACK_RETRY:
            if self.transfer is None:
                return self._error(req, ErrorCode.OBJECT_PROPERTY_INVALID)
        elif prop == Property.SD_ABORT:
            self.transfer = None
            return self._response(req, b"", property_id=Property.SD_FINISH)
        else:
            return self._error(req, ErrorCode.OBJECT_PROPERTY_INVALID)
        blocks, pos = self.transfer["blocks"], self.transfer["pos"]
        self.block_sends += 1
        if pos >= len(blocks) - 1:
            data = blocks[-1]
            return self._response(req, data, property_id=Property.SD_FINISH)
        return self._response(req, blocks[pos], property_id=Property.SD_DATABLOCK)


def default_gateway() -> FakeGateway:
    gw = FakeGateway()
    gw.add_info(101, 3000, 12.359375)  # the specification's example value
    gw.add_info(102, 3000, 12.5)
    gw.add_info(101, 3028, 3.0)  # an enum info (operating state) sent as FLOAT
    gw.add_info(601, 7002, 87.5)
    gw.add_info(301, 11000, 48.0)
    gw.add_param(101, 1138, 60.0)
    gw.add_param(101, 1107, 32.0)
    gw.add_param(101, 1552, 1, Format.LONG_ENUM)
    return gw


class VirtualClock:
    """A clock that advances only when the fake link waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTransport(Transport):
    """In-process link to a FakeGateway: what a request triggers can be read at once.

    With a VirtualClock, waiting for nothing advances the clock instead of sleeping.
    """

    scheme = "fake"

    def __init__(self, gateway: FakeGateway, clock: VirtualClock | None = None) -> None:
        super().__init__()
        self.gateway = gateway
        self.clock = clock
        self.queue: deque[bytes] = deque()
        self.late: deque[bytes] = deque()  # delivered before the next answer
        self._open = False
        self.fail_next_send = 0
        self.reconnects = 0

    def open(self, timeout: float | None = None) -> None:
        self._open = True
        self.opens += 1

    def close(self) -> None:
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def reconnect(self, timeout: float | None = None) -> None:
        self.reconnects += 1
        self.queue.clear()
        self._open = True

    def send(self, data: bytes) -> None:
        if not self._open:
            raise LinkError("fake link closed")
        if self.fail_next_send:
            self.fail_next_send -= 1
            self._open = False
            raise LinkError("fake link broke")
        self.bytes_sent += len(data)
        self.queue.extend(self.gateway.handle(data))

    def receive(self, timeout: float) -> bytes:
        if not self._open:
            raise LinkError("fake link closed")
        if self.queue:
            data = self.queue.popleft()
            self.bytes_received += len(data)
            return data
        if self.clock is not None:
            self.clock.now += timeout
        return b""

    def as_async(self) -> AsyncFakeTransport:
        return AsyncFakeTransport(self.gateway, self.clock)


class AsyncFakeTransport(AsyncTransport):
    scheme = "fake"

    def __init__(self, gateway: FakeGateway, clock: VirtualClock | None = None) -> None:
        super().__init__()
        self.sync = FakeTransport(gateway, clock)

    @property
    def is_open(self) -> bool:
        return self.sync.is_open

    async def open(self, timeout: float | None = None) -> None:
        self.sync.open(timeout)

    async def close(self) -> None:
        self.sync.close()

    async def reconnect(self, timeout: float | None = None) -> None:
        self.sync.reconnect(timeout)

    async def send(self, data: bytes) -> None:
        self.sync.send(data)

    async def receive(self, timeout: float) -> bytes:
        data = self.sync.receive(timeout)
        await asyncio.sleep(0)
        return data


class TcpPeer:
    """A loopback TCP peer that answers with a FakeGateway (a stand-in Moxa/Xcom-LAN).

    ``mode="server"``: listens, clients connect (--tcp). ``mode="client"``: connects to
    a listening client transport (--listen).
    """

    def __init__(self, gateway: FakeGateway, mode: str = "server", port: int = 0) -> None:
        self.gateway = gateway
        self.mode = mode
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self.port = port
        self.connections = 0
        self.on_connect: Callable[[socket.socket], None] | None = None

    def __enter__(self) -> TcpPeer:
        if self.mode == "server":
            self._listener = socket.socket()
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(("127.0.0.1", self.port))
            self._listener.listen(4)
            self._listener.settimeout(0.05)
            self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close()

    def _connections(self):
        while not self._stop.is_set():
            if self.mode == "server":
                try:
                    conn, _ = self._listener.accept()  # type: ignore[union-attr]
                except (TimeoutError, OSError):
                    continue
            else:
                try:
                    conn = socket.create_connection(("127.0.0.1", self.port), timeout=1)
                except OSError:
                    self._stop.wait(0.05)
                    continue
            self.connections += 1
            yield conn

    def _run(self) -> None:
        workers = []
        for conn in self._connections():
            if self.mode == "client":
                self._serve(conn)  # a Moxa holds one connection at a time
                continue
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            worker.start()
            workers.append(worker)
        for worker in workers:
            worker.join(5)

    def _serve(self, conn: socket.socket) -> None:
        decoder = codec.StreamDecoder()
        conn.settimeout(0.05)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                for frame in decoder.feed(data):
                    request = codec.encode_frame(
                        frame.service_id,
                        frame.object_type,
                        frame.object_id,
                        frame.property_id,
                        frame.data,
                        src=frame.src,
                        dst=frame.dst,
                        service_flags=frame.service_flags & ~ServiceFlag.RESPONSE,
                    )
                    action = self.gateway.script[0] if self.gateway.script else "ok"
                    answers = self.gateway.handle(request)
                    if action == "close":
                        return
                    try:
                        for chunk in answers:
                            conn.sendall(chunk)
                    except OSError:
                        return
