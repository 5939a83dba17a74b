"""Simulator benchmark: requests per second in process and over loopback TCP.

The issue's target: at least 10,000 requests/s on loopback TCP without throttling, for
single user-info reads and 76-item multi-infos alike, so the simulator never limits the
logger's benchmarks. The TCP figures run ``xcomlog sim --tcp-server 127.0.0.1:0`` in its
own process (as users run it) and a raw-socket client here, one request at a time like a
real DTE ("ping-pong") and with 32 requests in flight ("pipelined"). Side by side in the
same run: the simulator process on the compiled codec and on the pure-Python one, and
the in-process ``Simulator.handle`` rate the TCP rate is compared to.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from benchmarks import best_rate

TARGET = 10_000.0


def _items(n: int = 76) -> list[tuple[int, int]]:
    from xcomlog.catalog import load_catalog
    from xcomlog.protocol import Aggregation, Family

    numbers = [dp.number for dp in load_catalog().datapoints(family=Family.XTENDER, kind="info")]
    return [(numbers[i % len(numbers)], Aggregation.SUM) for i in range(n)]


def _requests() -> dict[str, list[bytes]]:
    from xcomlog import codec
    from xcomlog.protocol import ObjectType, Property, Service, xt

    infos = [n for n, _ in _items()]
    return {
        "single read": [
            codec.encode_request(Service.READ, ObjectType.USER_INFO, n, Property.VALUE, dst=xt(1))
            for n in infos
        ],
        "multi-info 76": [codec.encode_multi_info_request(_items())],
    }


def _in_process(seconds: float) -> list[dict]:
    from xcomlog import codec
    from xcomlog.sim import Simulator

    sim = Simulator()
    rows = []
    for name, requests in _requests().items():

        def batch(requests=requests):
            for r in requests:
                sim.handle(r)
            return len(requests)

        def cold(requests=requests):
            # Worst case: every request is the first of a new second (no cached answer).
            for r in requests:
                sim._cache.clear()
                sim._multi_values.clear()
                sim.handle(r)
            return len(requests)

        for label, func in (("", batch), (" uncached", cold)):
            rows.append(
                {
                    "benchmark": f"sim in-process {name}{label}",
                    "metric": "requests/s",
                    "value": best_rate(func, seconds, 1),
                    "unit": "req/s",
                    "codec": codec.IMPLEMENTATION,
                }
            )
    return rows


#: A trivial echo server: the floor of one-at-a-time round trips between two processes
#: on this machine's loopback, measured beside the simulator with the same client.
_ECHO_SERVER = """
import socket, sys
srv = socket.create_server(("127.0.0.1", 0))
print("127.0.0.1:%d" % srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        conn.sendall(data)
    conn.close()
"""


class _ServerProcess:
    """A TCP server in a child process that prints ``host:port`` as its first line."""

    def __init__(self, argv: list[str], pure: bool = False) -> None:
        env = dict(os.environ)
        if pure:
            env["XCOMLOG_NO_EXTENSIONS"] = "1"
        else:
            env.pop("XCOMLOG_NO_EXTENSIONS", None)
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        host, _, port = line.rpartition(":")
        if not port.isdigit():
            self.close()
            raise RuntimeError(f"{argv[-1]} did not print its address (got {line!r})")
        self.address = (host, int(port))

    @classmethod
    def simulator(cls, pure: bool) -> _ServerProcess:
        """``xcomlog sim --tcp-server 127.0.0.1:0``, as users run it."""
        return cls(["-m", "xcomlog", "sim", "--tcp-server", "127.0.0.1:0"], pure)

    @classmethod
    def echo(cls) -> _ServerProcess:
        return cls(["-c", _ECHO_SERVER])

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _tcp(address: tuple[str, int], requests: list[bytes], seconds: float, window: int) -> float:
    from xcomlog import codec

    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        decoder = codec.StreamDecoder()
        stream = b"".join(requests)
        count = len(requests)
        burst = stream * max(1, window // count) if window > 1 else stream
        per_burst = count * max(1, window // count) if window > 1 else count

        def batch() -> int:
            if window > 1:
                sock.sendall(burst)
                got = 0
                while got < per_burst:
                    got += len(decoder.feed(sock.recv(1 << 20)))
                return per_burst
            for r in requests:
                sock.sendall(r)
                while not decoder.feed(sock.recv(1 << 16)):
                    pass
            return count

        return best_rate(batch, seconds, 1)


def _echo_floor(requests: list[bytes], seconds: float) -> float:
    """Ping-pong rate of the same client against a trivial echo server."""
    server = _ServerProcess.echo()
    try:
        return _tcp(server.address, requests, seconds, 1)
    finally:
        server.close()


def run(quick: bool = False) -> list[dict]:
    """Rows: in-process rates, then TCP ping-pong and pipelined on both codecs."""
    seconds = 0.5 if quick else 2.0
    rows = _in_process(seconds)
    in_process = {r["benchmark"].replace("sim in-process ", ""): r["value"] for r in rows}
    requests = _requests()
    floor = _echo_floor(requests["single read"], seconds)
    rows.append(
        {
            "benchmark": "loopback echo server, ping-pong (floor)",
            "metric": "requests/s",
            "value": floor,
            "unit": "req/s",
            "note": "trivial echo in another process: no simulator can beat this round trip",
        }
    )
    for pure in (False, True):
        try:
            server = _ServerProcess.simulator(pure)
        except RuntimeError as exc:
            rows.append(
                {
                    "benchmark": "sim tcp",
                    "metric": "error",
                    "value": 0.0,
                    "unit": "",
                    "error": str(exc),
                }
            )
            continue
        impl = "py" if pure else "c"
        try:
            for name, reqs in requests.items():
                for mode, window in (("ping-pong", 1), ("pipelined", 32)):
                    value = _tcp(server.address, reqs, seconds, window)
                    rows.append(
                        {
                            "benchmark": f"sim tcp {mode} {name} ({impl} codec)",
                            "metric": "requests/s",
                            "value": value,
                            "unit": "req/s",
                            "target": TARGET,
                            "meets_target": value >= TARGET,
                            "vs_in_process": value / in_process[name]
                            if in_process.get(name)
                            else None,
                            "vs_echo_floor": value / floor if mode == "ping-pong" else None,
                        }
                    )
        finally:
            server.close()
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(f"{row['benchmark']:<52} {row['value']:>12,.0f} {row['unit']}")
