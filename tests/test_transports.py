"""Transports over real loopback sockets and a pseudo-terminal, blocking and asyncio.

Peers are tiny threads answering with the in-test fake gateway, so these tests cover
the byte links themselves: URLs, open timeouts, clean closes, the TCP server's allow
list and replacement rules, UDP's fixed reply port, pty serial at 8E1.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest
from processes import free_port
from test_client_support import TcpPeer, default_gateway

from xcomlog import codec
from xcomlog.client import AsyncXcomClient, XcomClient
from xcomlog.exceptions import LinkError
from xcomlog.links import (
    AsyncTcpServerTransport,
    AsyncUdpTransport,
    SerialTransport,
    TcpClientTransport,
    TcpServerTransport,
    UdpTransport,
    open_async_transport,
    open_transport,
)
from xcomlog.protocol import ObjectType, Property, Service

pytestmark = pytest.mark.timeout(30)

REQUEST = codec.encode_request(Service.READ, ObjectType.USER_INFO, 3000, Property.VALUE, dst=101)


# --- URLs -----------------------------------------------------------------------------------


def test_urls_make_the_right_transports():
    t = open_transport("tcp://127.0.0.1:4001")
    assert isinstance(t, TcpClientTransport) and (t.host, t.port) == ("127.0.0.1", 4001)
    t = open_transport("listen://127.0.0.1:5000?allow=127.0.0.1")
    assert isinstance(t, TcpServerTransport) and t.allow == frozenset({"127.0.0.1"})
    t = open_transport("listen://:4001")
    assert t.host == "0.0.0.0"
    t = open_transport("udp://127.0.0.1?reply_port=4005&bind=127.0.0.1")
    assert isinstance(t, UdpTransport) and (t.port, t.reply_port, t.bind_host) == (
        4002,
        4005,
        "127.0.0.1",
    )
    t = open_transport("serial:///dev/ttyUSB0?baud=115200")
    assert isinstance(t, SerialTransport) and (t.port, t.baudrate) == ("/dev/ttyUSB0", 115200)
    t = open_transport("/dev/ttyS0")
    assert isinstance(t, SerialTransport) and t.baudrate == 38400
    t = open_transport("rfc2217://127.0.0.1:7000")
    assert isinstance(t, SerialTransport) and t.port == "rfc2217://127.0.0.1:7000"
    assert open_async_transport("tcp://127.0.0.1:4001").scheme == "tcp"
    for bad in (
        "",
        "tcp://:4001",
        "tcp://127.0.0.1:notaport",
        "udp://:4002",
        "tcp://127.0.0.1:70000",
    ):
        with pytest.raises(ValueError):
            open_transport(bad)


def test_open_failures_are_link_errors_within_the_timeout():
    port = free_port()
    with pytest.raises(LinkError):
        TcpClientTransport("127.0.0.1", port).open(1.0)
    with pytest.raises(LinkError):
        SerialTransport("/dev/does-not-exist").open(1.0)
    server = TcpServerTransport("127.0.0.1", 0)
    started = time.monotonic()
    with pytest.raises(LinkError):
        server.open(0.2)
    assert time.monotonic() - started < 5
    server.close()


# --- TCP client -----------------------------------------------------------------------------


def test_tcp_client_exchanges_and_closes_cleanly():
    gw = default_gateway()
    with TcpPeer(gw) as peer:
        with XcomClient(f"tcp://127.0.0.1:{peer.port}", timeout=1.0) as client:
            assert client.read_info(3000, address=101) == pytest.approx(12.359375)
            client.write_param(1138, 12.0, address=101)
        assert not client.transport.is_open
    assert gw.ram[(101, 1138)] == 12.0 and gw.flash_writes == {}


def test_tcp_client_reconnects_after_the_peer_closed():
    gw = default_gateway()
    with TcpPeer(gw) as peer:
        with XcomClient(f"tcp://127.0.0.1:{peer.port}", timeout=0.5, backoff=0.01) as client:
            assert client.read_info(3000, address=101) == pytest.approx(12.359375)
            gw.script.append("close")  # the Moxa drops the connection instead of answering
            assert client.read_info(3000, address=102) == 12.5
            assert client.stats["reconnects"] == 1
        assert peer.connections == 2


def test_tcp_receive_returns_empty_on_timeout_and_raises_on_close():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        t = TcpClientTransport("127.0.0.1", listener.getsockname()[1])
        t.open(1.0)
        conn, _ = listener.accept()
        assert t.receive(0.05) == b""
        conn.sendall(b"abc")
        assert t.receive(1.0) == b"abc"
        conn.close()
        with pytest.raises(LinkError):
            t.receive(1.0)
        t.close()
        t.close()  # twice is fine


def test_async_receive_timeouts_short_after_long_and_across_event_loops():
    """One timer per transport is moved, not re-created: a short wait after a long one
    still ends on time, and a transport used by a second event loop keeps working."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        t = open_async_transport(f"tcp://127.0.0.1:{listener.getsockname()[1]}")

        async def first():
            await t.open(1.0)
            conn, _ = listener.accept()
            conn.sendall(b"abc")
            assert await t.receive(5.0) == b"abc"  # arms the timer 5 s ahead
            start = time.monotonic()
            assert await t.receive(0.05) == b""
            short = time.monotonic() - start
            start = time.monotonic()
            assert await t.receive(0.2) == b""  # longer than the last: the timer moves
            longer = time.monotonic() - start
            conn.sendall(b"z")
            assert await t.receive(5.0) == b"z"
            await t.close()  # the 5 s timer of this loop stays behind, unfired
            return conn, short, longer

        conn, short, longer = asyncio.run(first())
        conn.close()
        assert 0.04 <= short < 1.0 and 0.19 <= longer < 1.5

        async def second():  # a new event loop (a connection belongs to its loop: reopen)
            await t.open(1.0)
            conn, _ = listener.accept()
            conn.sendall(b"de")
            data = await t.receive(2.0)
            start = time.monotonic()
            assert await t.receive(0.05) == b""
            elapsed = time.monotonic() - start
            await t.close()
            conn.close()
            return data, elapsed

        data, elapsed = asyncio.run(second())
        assert data == b"de" and 0.04 <= elapsed < 1.0


def test_async_chunk_hook_sees_chunks_first_and_link_failure_as_empty():
    """The burst mode's hook: a consumed chunk never reaches receive, a refused one does,
    a closed connection calls it with b"", and send_nowait writes from a callback."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        t = open_async_transport(f"tcp://127.0.0.1:{listener.getsockname()[1]}")
        seen: list[bytes] = []

        async def main():
            assert t.send_nowait(b"x") is False  # not connected yet
            await t.open(1.0)
            conn, _ = listener.accept()
            got = asyncio.get_running_loop().create_future()

            def hook(chunk: bytes) -> bool:
                seen.append(chunk)
                if chunk == b"mine":
                    assert t.send_nowait(b"next")  # from the data callback itself
                    got.set_result(None)
                    return True
                return False

            t.chunk_hook = hook
            conn.sendall(b"mine")
            await asyncio.wait_for(got, 2.0)
            assert conn.recv(10) == b"next"
            assert t.buffered == 0
            conn.sendall(b"yours")
            assert await t.receive(2.0) == b"yours"
            conn.close()
            with pytest.raises(LinkError):
                while True:
                    await t.receive(2.0)
            await t.close()

        asyncio.run(main())
        assert seen[:2] == [b"mine", b"yours"] and seen[-1] == b""


# --- TCP server (the Moxa connects to us) ------------------------------------------------------


def test_tcp_server_mode_with_peer_connecting():
    gw = default_gateway()
    server = TcpServerTransport("127.0.0.1", 0)
    port = server.address[1]
    with TcpPeer(gw, mode="client", port=port):
        with XcomClient(server, timeout=0.3, open_timeout=5.0) as client:
            assert client.read_info(3000, address=101) == pytest.approx(12.359375)
            gw.script.append("close")  # the Moxa's connection breaks; it connects again
            assert client.read_info(3000, address=102) == 12.5
        assert server.replaced + server.accepted >= 2


def test_tcp_server_allow_list_refuses_other_peers():
    server = TcpServerTransport("127.0.0.1", 0, allow=["127.0.0.2"])
    port = server.address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        with pytest.raises(LinkError):
            server.open(0.3)
    assert server.refused == 1 and server.accepted == 0
    server.close()


def test_tcp_server_same_peer_replaces_the_old_connection():
    server = TcpServerTransport("127.0.0.1", 0)
    port = server.address[1]
    first = socket.create_connection(("127.0.0.1", port), timeout=1)
    server.open(2.0)
    second = socket.create_connection(("127.0.0.1", port), timeout=1)
    second.sendall(b"\x01")
    deadline = time.monotonic() + 5
    got = b""
    while not got and time.monotonic() < deadline:
        got = server.receive(0.2)
    assert got == b"\x01" and server.replaced == 1
    first.settimeout(1)
    assert first.recv(10) == b""  # the old connection was closed
    first.close()
    second.close()
    server.close()


def test_tcp_server_other_peer_refused_while_current_lives_taken_when_dead():
    # Two loopback source addresses make two different peers.
    server = TcpServerTransport("127.0.0.1", 0)
    port = server.address[1]
    first = socket.socket()
    first.bind(("127.0.0.1", 0))
    first.connect(("127.0.0.1", port))
    server.open(2.0)
    other = socket.socket()
    other.bind(("127.0.0.2", 0))
    other.connect(("127.0.0.1", port))
    assert server.receive(0.3) == b""
    assert server.refused == 1 and server.peer[0] == "127.0.0.1"
    first.close()  # the current peer goes away
    third = socket.socket()
    third.bind(("127.0.0.2", 0))
    third.connect(("127.0.0.1", port))
    third.sendall(b"\x02")
    deadline = time.monotonic() + 5
    got = b""
    while time.monotonic() < deadline and not got:
        try:
            got = server.receive(0.2)
        except LinkError:
            server.reconnect(2.0)
    assert got == b"\x02" and server.peer[0] == "127.0.0.2"
    other.close()
    third.close()
    server.close()


# --- UDP --------------------------------------------------------------------------------------


class UdpPeer:
    """A Moxa in UDP mode: requests on its port, answers to (client host, reply_port)."""

    def __init__(self, gateway, reply_port: int) -> None:
        self.gateway = gateway
        self.reply_port = reply_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, (host, _port) = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            for answer in self.gateway.handle(data):
                self.sock.sendto(answer, (host, self.reply_port))


def test_udp_answers_come_to_the_fixed_reply_port():
    gw = default_gateway()
    link = UdpTransport("127.0.0.1", 0, reply_port=0, bind_host="127.0.0.1")
    reply_port = link.local_address[1]
    with UdpPeer(gw, reply_port) as peer:
        link.port = peer.port
        with XcomClient(link, timeout=0.3) as client:
            assert client.read_info(3000, address=101) == pytest.approx(12.359375)
            gw.script.append("drop")
            assert client.read_info(3000, address=102) == 12.5
            assert client.stats["retries"] == 1
    assert not link.is_open


def test_udp_ignores_datagrams_from_other_hosts():
    link = UdpTransport(
        "127.0.0.1", free_port(socket.SOCK_DGRAM), reply_port=0, bind_host="0.0.0.0"
    )
    port = link.local_address[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.2", 0))
        stranger.sendto(b"\xaa junk", ("127.0.0.1", port))
        assert link.receive(0.3) == b""
    assert link.foreign_datagrams == 1
    link.close()


def _forge_then_answer(sync_or_async_link, gw_port_sock, forger, answer: bytes) -> None:
    """The forger (same host, another port) sends first; then the gateway's port."""
    port = sync_or_async_link.local_address[1]
    forger.sendto(answer, ("127.0.0.1", port))
    gw_port_sock.sendto(answer, ("127.0.0.1", port))


def test_udp_ignores_datagrams_from_another_port_of_the_gateway_host():
    """Issue 15 item 6: an answer counts only from the gateway's address AND port."""
    answer = codec.encode_response(
        Service.READ, ObjectType.USER_INFO, 3000, Property.VALUE, b"\0\0\x40\x41", src=101
    )
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gw_sock,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger,
    ):
        gw_sock.bind(("127.0.0.1", 0))
        forger.bind(("127.0.0.1", 0))
        link = UdpTransport(
            "127.0.0.1", gw_sock.getsockname()[1], reply_port=0, bind_host="127.0.0.1"
        )
        _forge_then_answer(link, gw_sock, forger, answer)
        assert link.receive(1.0) == answer  # the gateway's datagram, not the forged one
        assert link.receive(0.2) == b""
        assert link.foreign_datagrams == 1
        link.close()
        # setups that answer from another port say so: answer_port=N (or any)
        link = open_transport(
            f"udp://127.0.0.1:{gw_sock.getsockname()[1]}"
            f"?reply_port={free_port(socket.SOCK_DGRAM)}&bind=127.0.0.1"
            f"&answer_port={forger.getsockname()[1]}"
        )
        assert link.answer_port == forger.getsockname()[1]
        _forge_then_answer(link, gw_sock, forger, answer)
        assert link.receive(1.0) == answer and link.receive(0.2) == b""
        assert link.foreign_datagrams == 1  # now the request port's datagram is the stranger
        link.close()
        link = open_transport(
            f"udp://127.0.0.1:{gw_sock.getsockname()[1]}"
            f"?reply_port={free_port(socket.SOCK_DGRAM)}&answer_port=any"
        )
        _forge_then_answer(link, gw_sock, forger, answer)
        assert link.receive(1.0) == answer and link.receive(1.0) == answer
        assert link.foreign_datagrams == 0
        link.close()

    async def forged_async():
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gw_sock,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger,
        ):
            gw_sock.bind(("127.0.0.1", 0))
            forger.bind(("127.0.0.1", 0))
            link = AsyncUdpTransport(
                "127.0.0.1", gw_sock.getsockname()[1], reply_port=0, bind_host="127.0.0.1"
            )
            await link.open()
            _forge_then_answer(link, gw_sock, forger, answer)
            got = await link.receive(1.0)
            rest = await link.receive(0.2)
            await link.close()
            return got, rest, link.foreign_datagrams

    assert asyncio.run(forged_async()) == (answer, b"", 1)


def test_udp_answer_port_is_checked():
    for bad in ("x", "-1", "70000"):
        with pytest.raises(ValueError, match="answer_port"):
            open_transport(f"udp://127.0.0.1:4002?answer_port={bad}")
    with pytest.raises(ValueError, match="answer_port"):
        UdpTransport("127.0.0.1", 4002, answer_port="some")


def test_udp_reply_port_in_use_is_a_link_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(LinkError):
            UdpTransport(
                "127.0.0.1", 4002, reply_port=taken.getsockname()[1], bind_host="127.0.0.1"
            ).open()


# --- serial over a pseudo-terminal -------------------------------------------------------------


class PtyPeer:
    """The gateway end of a pty: reads requests from the master, writes answers back."""

    def __init__(self, gateway) -> None:
        import tty

        self.gateway = gateway
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self._slave)

    def _run(self):
        import select

        decoder = codec.StreamDecoder()
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            for frame in decoder.feed(data):
                request = codec.encode_request(
                    frame.service_id,
                    frame.object_type,
                    frame.object_id,
                    frame.property_id,
                    frame.data,
                    src=frame.src,
                    dst=frame.dst,
                )
                for answer in self.gateway.handle(request):
                    os.write(self.master, answer)


def test_serial_over_a_pty_at_8e1():
    gw = default_gateway()
    with PtyPeer(gw) as peer:
        link = SerialTransport(peer.path)
        with XcomClient(link, timeout=1.0) as client:
            assert client.read_info(3000, address=101) == pytest.approx(12.359375)
            gw.script.extend(["split", "junk"])
            assert client.read_info(3000, address=102) == 12.5
            assert client.read_info(3000, address=101) == pytest.approx(12.359375)
            ser = link._serial
            assert (ser.baudrate, ser.parity, ser.bytesize, ser.stopbits) == (38400, "E", 8, 1)
        assert not link.is_open


def test_serial_url_handler_without_a_file_descriptor():
    # pyserial's loop:// echoes what is written: a request comes back as a non-answer.
    link = open_transport("loop://")
    with XcomClient(link, timeout=0.2, retries=0) as client:
        with pytest.raises(Exception) as info:
            client.request(REQUEST)
        assert type(info.value).__name__ == "XcomTimeout"
        assert client.stats["unmatched_frames"] >= 1


# --- asyncio ----------------------------------------------------------------------------------


def test_async_transports_tcp_both_directions_udp_and_pty():
    gw = default_gateway()

    async def read_twice(transport):
        async with AsyncXcomClient(transport, timeout=0.3, backoff=0.01) as client:
            first = await client.read_info(3000, address=101)
            gw.script.append("drop")
            second = await client.read_info(3000, address=102)
            await client.write_param(1138, 13.0, address=101)
        assert not transport.is_open
        return first, second

    async def main():
        results = []
        with TcpPeer(gw) as peer:
            results.append(await read_twice(open_async_transport(f"tcp://127.0.0.1:{peer.port}")))
        server = AsyncTcpServerTransport("127.0.0.1", 0)
        await server.bind()
        with TcpPeer(gw, mode="client", port=server.address[1]):
            results.append(await read_twice(server))
        udp = AsyncUdpTransport("127.0.0.1", 0, reply_port=0, bind_host="127.0.0.1")
        await udp.open()
        with UdpPeer(gw, udp.local_address[1]) as peer:
            udp.port = peer.port
            results.append(await read_twice(udp))
        with PtyPeer(gw) as peer:
            results.append(await read_twice(SerialTransport(peer.path).as_async()))
        return results

    results = asyncio.run(main())
    assert results == [(pytest.approx(12.359375), 12.5)] * 4
    assert gw.flash_writes == {} and gw.ram[(101, 1138)] == 13.0


def test_async_tcp_reconnects_after_close():
    gw = default_gateway()

    async def main():
        with TcpPeer(gw) as peer:
            async with AsyncXcomClient(
                f"tcp://127.0.0.1:{peer.port}", timeout=0.5, backoff=0.01
            ) as c:
                await c.read_info(3000, address=101)
                gw.script.append("close")
                value = await c.read_info(3000, address=102)
                return value, c.stats["reconnects"], peer.connections

    assert asyncio.run(main()) == (12.5, 1, 2)


def test_async_many_links_concurrently():
    gw = default_gateway()

    async def main():
        with TcpPeer(gw) as peer:
            clients = [
                AsyncXcomClient(f"tcp://127.0.0.1:{peer.port}", timeout=1.0) for _ in range(8)
            ]
            for c in clients:
                await c.open()
            try:
                rounds = await asyncio.gather(
                    *(c.read_infos([(3000, 101), (3000, 102)]) for c in clients for _ in range(5))
                )
            finally:
                for c in clients:
                    await c.close()
        return rounds

    rounds = asyncio.run(main())
    assert len(rounds) == 40
    assert all(r == {(3000, 101): 12.359375, (3000, 102): 12.5} for r in rounds)


def test_async_tcp_server_allow_list_and_replacement():
    async def main():
        refused = AsyncTcpServerTransport("127.0.0.1", 0, allow="127.0.0.2")
        await refused.bind()
        with socket.create_connection(("127.0.0.1", refused.address[1]), timeout=1):
            with pytest.raises(LinkError):
                await refused.open(0.3)
        assert refused.refused == 1
        await refused.close()

        server = AsyncTcpServerTransport("127.0.0.1", 0)
        await server.bind()
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(
            None, socket.create_connection, ("127.0.0.1", server.address[1]), 1
        )
        await server.open(2.0)
        second = await loop.run_in_executor(
            None, socket.create_connection, ("127.0.0.1", server.address[1]), 1
        )
        second.sendall(b"\x07")
        got = b""
        for _ in range(20):
            got = await server.receive(0.1)
            if got:
                break
        assert got == b"\x07" and server.replaced == 1
        await server.reconnect(1.0)  # the new connection is kept, not dropped
        second.sendall(b"\x08")
        assert await server.receive(1.0) == b"\x08"
        first.close()
        second.close()
        await server.close()

    asyncio.run(main())


def test_pyserial_socket_url_blocking_and_asyncio():
    """pyserial's socket:// handler has no tty descriptor: both paths still work."""
    gw = default_gateway()
    with TcpPeer(gw) as peer:
        url = f"socket://127.0.0.1:{peer.port}"
        link = open_transport(url)
        assert isinstance(link, SerialTransport)
        with XcomClient(link, timeout=1.0) as client:
            assert client.read_info(3000, address=101) == pytest.approx(12.359375)

        async def main():
            async with AsyncXcomClient(open_transport(url), timeout=1.0) as c:
                return await c.read_info(3000, address=102)

        assert asyncio.run(main()) == 12.5
