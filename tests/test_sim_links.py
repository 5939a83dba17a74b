"""The simulator over real links, driven by independent code: raw pyserial writes of the
specification's frames on a pty, raw TCP and UDP sockets. Loopback only, every wait bounded."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest
from spec_frames import SPEC_BY_NAME

from xcomlog import codec
from xcomlog.protocol import Aggregation, ObjectType, Property, Service, xt
from xcomlog.sim import FaultConfig, Installation, Simulator

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 5.0


def spec_sim(**kw) -> Simulator:
    """A simulator in the state the specification's examples show (frame flags 0x34)."""
    sim = Simulator(Installation(messages=0), restarted=False, message_every_s=0, **kw)
    sim.set_value(xt(1), 3000, 12.359375)
    return sim


def read_exact(recv, n: int) -> bytes:
    """Read exactly n bytes with ``recv(k)`` (each call bounded by the transport's timeout)."""
    out = b""
    deadline = time.monotonic() + TIMEOUT
    while len(out) < n and time.monotonic() < deadline:
        chunk = recv(n - len(out))
        if not chunk:  # end of stream, or the transport's own timeout expired
            break
        out += chunk
    return out


def read_frame(recv) -> bytes:
    """Read one frame: the header tells how many bytes follow."""
    header = read_exact(recv, 14)
    assert len(header) == 14, f"no response header (got {header!r})"
    size = codec.frame_size(header)
    return header + read_exact(recv, size - 14)


SPEC_EXCHANGES = [
    ("read user info 3000 request", "read user info 3000 response"),
    ("read parameter 1138 value_qsp request", "read parameter 1138 value_qsp response"),
    ("write parameter 1138 value_qsp request", "write parameter 1138 value_qsp response"),
]


def test_pty_spec_frames_with_pyserial():
    serial = pytest.importorskip("serial")
    sim = spec_sim()
    with sim.serve_pty() as link:
        assert link.path.startswith("/dev/")
        port = serial.Serial(link.path, 38400, bytesize=8, parity="E", stopbits=1, timeout=TIMEOUT)
        try:
            for request, response in SPEC_EXCHANGES:
                port.write(SPEC_BY_NAME[request].wire)
                assert read_frame(port.read) == SPEC_BY_NAME[response].wire
            # Split writes and junk before the start byte: the stream decoder copes.
            wire = SPEC_BY_NAME["read user info 3000 request"].wire
            port.write(b"\x00\xff" + wire[:5])
            port.flush()
            time.sleep(0.05)
            port.write(wire[5:])
            assert read_frame(port.read) == SPEC_BY_NAME["read user info 3000 response"].wire
        finally:
            port.close()
    assert sim.flash_writes == {(xt(1), 1138): 1}


def test_pty_throttled_to_baud_is_not_faster_than_the_wire():
    serial = pytest.importorskip("serial")
    sim = spec_sim()
    baud = 9600
    with sim.serve_pty(baud=baud) as link:
        port = serial.Serial(link.path, 38400, parity="E", timeout=TIMEOUT)
        try:
            request = SPEC_BY_NAME["read user info 3000 request"].wire
            started = time.monotonic()
            for _ in range(3):
                port.write(request)
                read_frame(port.read)
            elapsed = time.monotonic() - started
        finally:
            port.close()
    # A lower bound only: 3 x (26 + 30) bytes x 11 bits cannot cross 9600 bps sooner.
    assert elapsed >= 3 * (26 + 30) * 11 / baud * 0.95


def test_tcp_server_spec_frames_and_two_clients():
    sim = spec_sim()
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        assert host == "127.0.0.1" and port > 0
        a = socket.create_connection(link.address, timeout=TIMEOUT)
        b = socket.create_connection(link.address, timeout=TIMEOUT)
        try:
            for request, response in SPEC_EXCHANGES:
                a.sendall(SPEC_BY_NAME[request].wire)
                assert read_frame(a.recv) == SPEC_BY_NAME[response].wire
            b.sendall(codec.encode_multi_info_request([(3000, Aggregation.AVERAGE)] * 76, src=9))
            frame = codec.decode_frame(read_frame(b.recv))
            assert frame.dst == 9 and len(codec.decode_multi_info(frame.data).values) == 76
        finally:
            a.close()
            b.close()


def test_tcp_server_many_pipelined_requests():
    sim = spec_sim()
    requests = [
        codec.encode_request(
            Service.READ, ObjectType.USER_INFO, 3000 + (i % 8), Property.VALUE, dst=xt(1)
        )
        for i in range(200)
    ]
    with sim.serve_tcp("127.0.0.1", 0) as link:
        with socket.create_connection(link.address, timeout=TIMEOUT) as sock:
            sock.sendall(b"".join(requests))
            decoder = codec.StreamDecoder()
            frames = []
            deadline = time.monotonic() + TIMEOUT
            while len(frames) < len(requests) and time.monotonic() < deadline:
                frames += decoder.feed(sock.recv(65536))
    assert [f.object_id for f in frames] == [3000 + (i % 8) for i in range(200)]


def test_tcp_client_mode_connects_to_a_listening_logger():
    sim = spec_sim()
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(TIMEOUT)
        with sim.connect_tcp(*server.getsockname(), retry_s=0.05) as link:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                assert link.connected.wait(TIMEOUT)
                conn.sendall(SPEC_BY_NAME["read user info 3000 request"].wire)
                assert read_frame(conn.recv) == SPEC_BY_NAME["read user info 3000 response"].wire
            # The logger closes: the NPort comes back by itself.
            conn2, _ = server.accept()
            with conn2:
                conn2.settimeout(TIMEOUT)
                conn2.sendall(SPEC_BY_NAME["read parameter 1138 value_qsp request"].wire)
                assert (
                    read_frame(conn2.recv)
                    == SPEC_BY_NAME["read parameter 1138 value_qsp response"].wire
                )
            assert link.connections >= 2


def test_tcp_client_mode_retries_until_the_logger_listens():
    sim = spec_sim()
    probe = socket.create_server(("127.0.0.1", 0))
    address = probe.getsockname()
    probe.close()  # nobody listens yet
    with sim.connect_tcp(*address, retry_s=0.05) as link:
        time.sleep(0.2)
        assert not link.connected.is_set()
        with socket.create_server(address) as server:
            server.settimeout(TIMEOUT)
            conn, _ = server.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                conn.sendall(SPEC_BY_NAME["read user info 3000 request"].wire)
                assert read_frame(conn.recv) == SPEC_BY_NAME["read user info 3000 response"].wire


def test_udp_answers_go_to_the_reply_port():
    sim = spec_sim()
    with contextlib.ExitStack() as stack:
        sender = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        receiver = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sender.bind(("127.0.0.1", 0))
        receiver.bind(("127.0.0.1", 0))
        sender.settimeout(0.3)
        receiver.settimeout(TIMEOUT)
        link = stack.enter_context(
            sim.serve_udp("127.0.0.1", 0, reply_port=receiver.getsockname()[1])
        )
        sender.sendto(SPEC_BY_NAME["read user info 3000 request"].wire, link.address)
        data, peer = receiver.recvfrom(2048)
        assert data == SPEC_BY_NAME["read user info 3000 response"].wire
        assert peer == link.address
        with pytest.raises(socket.timeout):
            sender.recvfrom(2048)  # nothing comes back to the sending port


def test_udp_without_reply_port_answers_the_sender():
    sim = spec_sim()
    with sim.serve_udp("127.0.0.1", 0) as link:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.sendto(SPEC_BY_NAME["read parameter 1138 value_qsp request"].wire, link.address)
            assert (
                sock.recvfrom(2048)[0]
                == SPEC_BY_NAME["read parameter 1138 value_qsp response"].wire
            )


def test_tcp_link_that_closes_and_comes_back():
    sim = spec_sim(faults=FaultConfig(disconnect_every_s=0.3, disconnect_s=0.3))
    request = SPEC_BY_NAME["read user info 3000 request"].wire
    closed = answered_after = False
    with sim.serve_tcp("127.0.0.1", 0) as link:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (closed and answered_after):
            try:
                with socket.create_connection(link.address, timeout=1.0) as sock:
                    while time.monotonic() < deadline:
                        sock.sendall(request)
                        frame = read_frame(sock.recv)
                        if closed:
                            answered_after = (
                                frame == SPEC_BY_NAME["read user info 3000 response"].wire
                            )
                            break
                        time.sleep(0.02)
            except (OSError, AssertionError):
                closed = True
                time.sleep(0.05)
    assert closed and answered_after


def test_links_stop_cleanly_and_free_the_port():
    sim = spec_sim()
    with sim.serve_tcp("127.0.0.1", 0) as link:
        address = link.address
        sock = socket.create_connection(address, timeout=TIMEOUT)
    # The link closed our connection on exit and the port is free again.
    sock.settimeout(TIMEOUT)
    try:
        assert sock.recv(10) == b""
    except ConnectionResetError:
        pass  # closed before it was accepted: reset instead of FIN, closed all the same
    sock.close()
    with socket.create_server(address):
        pass


def test_shared_tcp_server_relays_every_response_to_every_client():
    sim = spec_sim()
    with sim.serve_tcp("127.0.0.1", 0, shared=True) as link:
        a = socket.create_connection(link.address, timeout=TIMEOUT)
        b = socket.create_connection(link.address, timeout=TIMEOUT)
        try:
            time.sleep(0.2)  # both accepted before the first answer goes out
            a.sendall(
                codec.encode_request(Service.READ, ObjectType.USER_INFO, 3000, 1, src=1, dst=xt(1))
            )
            seen_by_b = codec.decode_frame(read_frame(b.recv))
            seen_by_a = codec.decode_frame(read_frame(a.recv))
            assert seen_by_a == seen_by_b and seen_by_b.dst == 1  # b must ignore it: not its src
        finally:
            a.close()
            b.close()
