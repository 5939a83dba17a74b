"""Client benchmark: request cost of the blocking and asyncio clients, and against xcom-proto.

Every row is measured in this run, side by side:

* client overhead: read_info through an in-process link that answers at once, so only
  xcomlog's own work is timed (encode, match, decode, catalog typing), blocking and asyncio;
* loopback TCP round trips: xcomlog and xcom-proto (if installed) reading the same info
  from the same responder thread, which connects to each of them (Moxa TCP-client mode);
* multi-info: 76 values in one request against 76 single reads, over the same loopback link;
* asyncio links: total requests/s of 16 links polled concurrently against one link.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from benchmarks import best_rate
from xcomlog import codec
from xcomlog.protocol import Format, ObjectType, Property, ServiceFlag

INFO = 3000
ADDRESS = 101
VALUE = 48.5


# --- a responder that answers from precomputed frames ----------------------------------------


class Answers:
    """Answers to user-info and multi-info reads, computed once per distinct request."""

    def __init__(self) -> None:
        self._cache: dict[bytes, bytes] = {}

    def __call__(self, frame) -> bytes:
        key = (
            bytes(frame.data)
            + frame.object_id.to_bytes(4, "little")
            + frame.dst.to_bytes(4, "little")
        )
        key += frame.object_type.to_bytes(2, "little") + frame.property_id.to_bytes(2, "little")
        answer = self._cache.get(key)
        if answer is None:
            if frame.object_type == ObjectType.MULTI_INFO:
                items = codec.unpack_multi_info_request(frame.data)
                data = codec.pack_multi_info_response(
                    0, 0, [i for i, _ in items], [a for _, a in items], [VALUE] * len(items)
                )
            else:
                data = codec.pack_value(Format.FLOAT, VALUE)
            answer = codec.encode_response(
                frame.service_id,
                frame.object_type,
                frame.object_id,
                frame.property_id,
                data,
                src=frame.dst,
                dst=frame.src,
            )
            self._cache[key] = answer
        return answer


class Responder:
    """A thread that connects to a listening client and answers every request on it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers = Answers()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Responder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        sock = None
        while sock is None and not self._stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            except OSError:
                time.sleep(0.01)
        if sock is None:
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(0.1)
        decoder = codec.StreamDecoder()
        with sock:
            while not self._stop.is_set():
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                out = [
                    self.answers(f)
                    for f in decoder.feed(chunk)
                    if not f.service_flags & ServiceFlag.RESPONSE
                ]
                if out:
                    try:
                        sock.sendall(b"".join(out))
                    except OSError:
                        return


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _row(benchmark: str, value: float, unit: str, **extra) -> dict:
    return {"benchmark": benchmark, "metric": "rate", "value": value, "unit": unit, **extra}


# --- in-process link: the client's own cost ------------------------------------------------------


class _InstantLink:
    """A blocking transport whose answer is ready as soon as the request is sent."""

    scheme = "bench"

    def __init__(self) -> None:
        self.answers = Answers()
        self.decoder = codec.StreamDecoder()
        self.pending = b""
        self.is_open = True

    def open(self, timeout=None) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def reconnect(self, timeout=None) -> None:
        self.is_open = True

    def send(self, data: bytes) -> None:
        self.pending = b"".join(self.answers(f) for f in self.decoder.feed(data))

    def receive(self, timeout: float) -> bytes:
        data, self.pending = self.pending, b""
        return data

    def stats(self) -> dict:
        return {}

    def describe(self) -> str:
        return "bench://"


class _AsyncInstantLink:
    """The asyncio twin of ``_InstantLink``."""

    scheme = "bench"

    def __init__(self) -> None:
        self.sync = _InstantLink()

    @property
    def is_open(self) -> bool:
        return self.sync.is_open

    async def open(self, timeout=None) -> None:
        self.sync.open()

    async def close(self) -> None:
        self.sync.close()

    async def reconnect(self, timeout=None) -> None:
        self.sync.open()

    async def send(self, data: bytes) -> None:
        self.sync.send(data)

    async def receive(self, timeout: float) -> bytes:
        return self.sync.receive(timeout)

    def stats(self) -> dict:
        return {}

    def describe(self) -> str:
        return "bench://"


def _overhead_rows(seconds: float, repeats: int) -> list[dict]:
    from xcomlog import client as client_module
    from xcomlog.links import AsyncTransport, Transport

    # The instant links duck-type the transport interface; register them for isinstance.
    Transport.register(_InstantLink)
    AsyncTransport.register(_AsyncInstantLink)
    sync = client_module.XcomClient(_InstantLink())
    sync.read_info(INFO, ADDRESS)

    def sync_batch() -> int:
        for _ in range(200):
            sync.read_info(INFO, ADDRESS)
        return 200

    sync_rate = best_rate(sync_batch, seconds, repeats)

    async def measure() -> float:
        client = client_module.AsyncXcomClient(_AsyncInstantLink())
        await client.read_info(INFO, ADDRESS)
        best = 0.0
        for _ in range(repeats):
            done = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                for _ in range(200):
                    await client.read_info(INFO, ADDRESS)
                done += 200
            best = max(best, done / (time.perf_counter() - start))
        return best

    async_rate = asyncio.run(measure())
    return [
        _row("client overhead, blocking", sync_rate, "requests/s", link="in-process"),
        _row(
            "client overhead, asyncio",
            async_rate,
            "requests/s",
            link="in-process",
            ratio_to_blocking=async_rate / sync_rate,
        ),
    ]


# --- loopback TCP ---------------------------------------------------------------------------------


def _tcp_rows(seconds: float, repeats: int) -> list[dict]:
    from xcomlog.client import XcomClient
    from xcomlog.links import TcpServerTransport

    rows = []
    server = TcpServerTransport("127.0.0.1", 0)
    port = server.address[1]
    with Responder(port), XcomClient(server, open_timeout=5) as client:

        def single() -> int:
            for _ in range(50):
                client.read_info(INFO, ADDRESS)
            return 50

        ours = best_rate(single, seconds, repeats)
        items = [(3000 + i, ADDRESS) for i in range(76)]

        def multi() -> int:
            client.read_infos(items)
            return 76

        def singles() -> int:
            for number, address in items:
                client.read_property(ObjectType.USER_INFO, number, Property.VALUE, address)
            return 76

        multi_rate = best_rate(multi, seconds, repeats)
        singles_rate = best_rate(singles, seconds, repeats)
    rows.append(_row("loopback TCP read_info", ours, "requests/s", implementation="xcomlog"))
    rows.append(
        _row(
            "76 infos: multi-info vs single reads",
            multi_rate,
            "values/s",
            single_reads=singles_rate,
            ratio=multi_rate / singles_rate,
        )
    )
    theirs = _xcom_proto_rate(seconds, repeats)
    if theirs is not None:
        rows.append(
            _row(
                "loopback TCP read_info",
                theirs,
                "requests/s",
                implementation="xcom-proto",
                xcomlog_ratio=ours / theirs,
            )
        )
    return rows


def _xcom_proto_rate(seconds: float, repeats: int) -> float | None:
    try:
        from xcom_proto import XcomLANTCP
        from xcom_proto import XcomP as param
    except ImportError:
        return None
    port = _free_port()
    with Responder(port):
        with XcomLANTCP(port=port) as xcom:

            def batch() -> int:
                for _ in range(50):
                    xcom.getValueByID(INFO, "FLOAT", dstAddr=ADDRESS)
                return 50

            del param
            return best_rate(batch, seconds, repeats)


# --- asyncio, many links ----------------------------------------------------------------------------


def _async_links_rows(seconds: float, links: int) -> list[dict]:
    from xcomlog.client import AsyncXcomClient
    from xcomlog.links import AsyncTcpServerTransport

    async def poll(n: int) -> float:
        servers = [AsyncTcpServerTransport("127.0.0.1", 0) for _ in range(n)]
        for s in servers:
            await s.bind()
        responders = [Responder(s.address[1]) for s in servers]
        for r in responders:
            r.__enter__()
        clients = [AsyncXcomClient(s, open_timeout=5) for s in servers]
        try:
            for c in clients:
                await c.open()
            done = 0
            start = time.perf_counter()

            async def loop(c: AsyncXcomClient) -> int:
                count = 0
                while time.perf_counter() - start < seconds:
                    await c.read_info(INFO, ADDRESS)
                    count += 1
                return count

            done = sum(await asyncio.gather(*(loop(c) for c in clients)))
            return done / (time.perf_counter() - start)
        finally:
            for c in clients:
                await c.close()
            for r in responders:
                r.__exit__()

    one = asyncio.run(poll(1))
    many = asyncio.run(poll(links))
    return [
        _row("asyncio loopback TCP, 1 link", one, "requests/s"),
        _row(
            f"asyncio loopback TCP, {links} links",
            many,
            "requests/s",
            ratio_to_one_link=many / one,
            note="responders are threads in the same process",
        ),
    ]


def run(quick: bool = False) -> list[dict]:
    seconds, repeats = (0.2, 2) if quick else (0.5, 3)
    rows = _overhead_rows(seconds, repeats)
    rows += _tcp_rows(seconds, repeats)
    rows += _async_links_rows(seconds * 2, 16)
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
