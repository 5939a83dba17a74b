"""Integration: the client against the simulator over a pty, TCP both ways and UDP, with faults.

Values are pinned in the simulator (``set_value``) so that any mixed-up answer would be
seen: under every fault the simulator injects, each call either returns exactly the
pinned value or raises one of the documented errors; pytest-timeout catches a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

pytest.importorskip("xcomlog.sim.links")

from xcomlog.client import AsyncXcomClient, XcomClient  # noqa: E402
from xcomlog.exceptions import DeviceError, LinkError, XcomTimeout  # noqa: E402
from xcomlog.links import (  # noqa: E402
    AsyncTcpServerTransport,
    SerialTransport,
    TcpClientTransport,
    TcpServerTransport,
    UdpTransport,
)
from xcomlog.protocol import ErrorCode, Family, FrameFlag, Property, guid_to_bytes  # noqa: E402
from xcomlog.sim import FaultConfig, Simulator  # noqa: E402

LINKS = ["pty", "tcp", "listen", "udp"]

PINNED = {
    (101, 3000): 51.25,
    (102, 3000): 52.5,
    (101, 3005): -3.75,
    (601, 7002): 77.0,
    (301, 11000): 49.75,
    (701, 15000): 50.5,
    (702, 15000): 50.25,
}


def pinned_simulator(**options) -> Simulator:
    sim = Simulator(seed=7, message_every_s=0, **options)
    for (address, number), value in PINNED.items():
        sim.set_value(address, number, value)
    return sim


@contextlib.contextmanager
def transport_for(sim: Simulator, kind: str):
    """A blocking transport of ``kind`` connected to ``sim`` (the sim link runs meanwhile)."""
    if kind == "pty":
        with sim.serve_pty() as link:
            yield SerialTransport(link.path)
    elif kind == "tcp":
        with sim.serve_tcp("127.0.0.1", 0) as link:
            host, port = link.address
            yield TcpClientTransport(host, port)
    elif kind == "listen":
        server = TcpServerTransport("127.0.0.1", 0)
        try:
            with sim.connect_tcp("127.0.0.1", server.address[1], retry_s=0.05):
                yield server
        finally:
            server.close()
    elif kind == "udp":
        transport = UdpTransport("127.0.0.1", 0, reply_port=0, bind_host="127.0.0.1")
        reply_port = transport.local_address[1]
        try:
            with sim.serve_udp("127.0.0.1", 0, reply_port=reply_port) as link:
                transport.port = link.address[1]
                yield transport
        finally:
            transport.close()
    else:  # pragma: no cover
        raise ValueError(kind)


FAST = dict(
    timeout=0.15, retries=4, backoff=0.01, busy_delay=0.02, busy_timeout=5.0, reconnect_timeout=3.0
)


# --- every service over every link ---------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", LINKS)
def test_every_service_over_every_link(kind):
    sim = pinned_simulator()
    with (
        transport_for(sim, kind) as transport,
        XcomClient(transport, timeout=2.0, open_timeout=5.0) as c,
    ):
        assert c.read_info(3000, address=101) == 51.25
        assert c.read_info(3005, address=101) == -3.75
        assert c.read_info(7002, address=601) == 77.0
        assert c.read_param(1138, address=101) == sim.parameter(101, 1138)[0]
        assert c.read_param(1138, address=101, prop=Property.MIN_QSP) <= c.read_param(
            1138, address=101, prop=Property.MAX_QSP
        )
        c.write_param(1138, 12.0, address=101)
        assert sim.parameter(101, 1138)[1] == 12.0
        assert c.read_param(1138, address=101, prop=Property.UNSAVED_VALUE_QSP) == 12.0
        items = list(PINNED)
        assert c.read_infos([(n, a) for a, n in items]) == {(n, a): PINNED[a, n] for a, n in items}
        assert c.last_frame_flags is not None and c.last_frame_flags & FrameFlag.SD_CARD_PRESENT
        guid = c.read_guid()
        assert guid_to_bytes(guid) == sim.installation.guid_bytes()
        c.write_datalog_field("#XCL:,integration test")
        assert sim.custom_datalog_field == "#XCL:,integration test"
        messages = c.read_messages(count=5)
        stored = sim.messages.messages()[::-1][:5]
        assert [(m.number, m.source, m.timestamp) for m in messages] == [
            (s.message_type, s.source, s.timestamp) for s in stored
        ]
        names = c.list_datalog_files()
        assert names == sim.sdcard.names(sim.now())
        devices = c.scan()
        assert {(d.address, d.family) for d in devices} == {
            (101, Family.XTENDER),
            (102, Family.XTENDER),
            (301, Family.VARIOTRACK),
            (701, Family.VARIOSTRING),
            (702, Family.VARIOSTRING),
            (601, Family.BSP),
        }
        assert all(d.firmware and d.firmware.count(".") == 2 for d in devices)
    assert sim.flash_writes == {}


def test_file_download_equals_the_sd_card_content():
    sim = pinned_simulator()
    with transport_for(sim, "tcp") as transport, XcomClient(transport) as c:
        name = c.list_datalog_files()[-1]
        data = c.download_datalog_file(name)
    assert data == sim.sdcard.read(name, sim.now())
    assert len(data) > 512 * 10


def test_writes_touch_flash_only_when_asked():
    sim = pinned_simulator()
    with transport_for(sim, "tcp") as transport, XcomClient(transport) as c:
        for value in (10.0, 11.0, 12.0, 13.0):
            c.write_param(1138, value, address=101)
        c.write_param(1107, 16.0, address=100)  # multicast: every Xtender, still RAM
        assert sim.flash_writes == {}
        assert sim.parameter(102, 1107)[1] == 16.0
        c.write_param(1138, 20.0, address=101, flash=True)
        assert sim.flash_writes == {(101, 1138): 1}
        assert sim.parameter(101, 1138) == (20.0, 20.0)


def test_device_errors_carry_the_protocol_code():
    sim = pinned_simulator()
    with transport_for(sim, "tcp") as transport, XcomClient(transport) as c:
        with pytest.raises(DeviceError) as info:
            c.read_info(3000, address=105)
        assert info.value.code == ErrorCode.DEVICE_NOT_FOUND
        assert c.stats["retries"] == 0


# --- faults -----------------------------------------------------------------------------------

# fault name -> (config, how long to keep the link busy so that a periodic fault happens)
FAULTS = {
    "drop": (FaultConfig(drop=0.1), 0.0),
    "corrupt": (FaultConfig(corrupt=0.2), 0.0),
    "junk": (FaultConfig(junk=0.5), 0.0),
    "leading_ff": (FaultConfig(leading_ff=0.5), 0.0),
    "foreign_frames": (FaultConfig(foreign_frames=0.5), 0.0),
    "busy": (FaultConfig(busy=0.3), 0.0),
    "delay": (FaultConfig(delay_s=0.1), 0.0),
    "slowdown": (FaultConfig(slowdown_every_s=0.4, slowdown_s=0.25, slowdown_window_s=0.15), 0.5),
    "restart": (FaultConfig(restart_every_s=0.35), 0.4),
    "disconnect": (FaultConfig(disconnect_every_s=0.25, disconnect_s=0.15), 0.45),
}


def _check(result, expected, failures):
    if isinstance(result, BaseException):
        ok = isinstance(result, (XcomTimeout, LinkError)) or (
            isinstance(result, DeviceError) and result.code == ErrorCode.SCOM_ERROR_GATEWAY_BUSY
        )
        assert ok, f"undocumented failure {type(result).__name__}: {result}"
        failures.append(result)
        return
    assert result == expected


def _attempt(call):
    try:
        return call()
    except Exception as exc:  # checked by _check
        return exc


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("kind", LINKS)
def test_no_wrong_value_under_faults(kind, fault):
    config, busy_for = FAULTS[fault]
    sim = pinned_simulator()
    failures: list[BaseException] = []
    calls = 0
    with transport_for(sim, kind) as transport:
        client = XcomClient(transport, open_timeout=5.0, **FAST)
        client.open()
        sim.faults = config
        started = time.monotonic()
        try:
            rounds = 0
            # Periodic faults need the link busy for a while; bounded by a round count too.
            while rounds < 3 or (time.monotonic() - started < busy_for and rounds < 5000):
                calls += 3
                _check(_attempt(lambda: client.read_info(3000, address=101)), 51.25, failures)
                subset = {k: PINNED[k] for k in list(PINNED)[rounds % 4 : rounds % 4 + 4]}
                _check(
                    _attempt(lambda s=subset: client.read_infos([(n, a) for a, n in s])),
                    {(n, a): v for (a, n), v in subset.items()},
                    failures,
                )
                value = 10.0 + rounds % 100
                result = _attempt(lambda v=value: client.write_param(1138, v, address=101))
                _check(result, None, failures)
                if not isinstance(result, BaseException):
                    assert sim.parameter(101, 1138)[1] == value
                rounds += 1
            counts = dict(sim.injector.counts)
        finally:
            sim.faults = FaultConfig()
            client.close()
    assert len(failures) <= calls // 2, f"too many failures: {failures}"
    assert sim.flash_writes == {}
    stats = client.stats
    # The fault really happened, and the client saw it.
    if fault in ("drop", "corrupt", "busy", "restart", "slowdown"):
        assert counts.get(fault, 0) > 0
    if fault in ("junk", "leading_ff"):
        assert stats["decoder_skipped_bytes"] > 0
    if fault == "foreign_frames":
        assert stats["unmatched_frames"] + stats["stale_frames"] > 0
    if fault == "busy":
        assert stats["busy"] > 0
    if fault == "corrupt":
        assert stats["damaged_answers"] + stats["timeouts"] > 0
    if fault == "disconnect":
        assert stats["reconnects"] + stats["timeouts"] + stats["link_errors"] > 0


@pytest.mark.timeout(60)
def test_file_download_under_faults_is_exact():
    sim = pinned_simulator()
    with transport_for(sim, "tcp") as transport, XcomClient(transport, **FAST) as c:
        name = c.list_datalog_files()[0]
        expected = sim.sdcard.read(name, sim.now())
        sim.faults = FaultConfig(
            drop=0.004, corrupt=0.01, junk=0.02, foreign_frames=0.02, busy=0.01
        )
        data = c.download_datalog_file(name)
        sim.faults = FaultConfig()
    assert data == expected
    assert c.stats["retries"] + c.stats["busy"] > 0


@pytest.mark.timeout(60)
def test_file_download_survives_a_gateway_restart():
    sim = pinned_simulator()
    with transport_for(sim, "tcp") as transport, XcomClient(transport, **FAST) as c:
        name = c.list_datalog_files()[0]
        expected = sim.sdcard.read(name, sim.now())
        calls = {"n": 0}
        original = sim.handle_frame

        def restart_midway(frame):
            calls["n"] += 1
            if calls["n"] == 40:
                sim.restart()  # the transfer state is lost: the client starts again
            return original(frame)

        sim.handle_frame = restart_midway
        data = c.download_datalog_file(name)
    assert data == expected


def test_multicast_read_is_refused_in_strict_mode():
    sim = pinned_simulator(strict=True)
    with transport_for(sim, "tcp") as transport, XcomClient(transport) as c:
        with pytest.raises(DeviceError) as info:
            c.read_info(3000, address=100)
        assert info.value.code == ErrorCode.SCOM_ERROR_MULTICAST_READ_NOT_SUPPORTED


# --- asyncio against the simulator -------------------------------------------------------------


@pytest.mark.timeout(60)
def test_async_client_over_tcp_both_ways_with_faults():
    sim = pinned_simulator()

    async def use(transport):
        async with AsyncXcomClient(transport, open_timeout=5.0, **FAST) as c:
            values = []
            for _ in range(5):
                try:
                    values.append(await c.read_info(3000, address=101))
                except (XcomTimeout, LinkError):
                    pass
            infos = await c.read_infos([(3000, 102), (7002, 601)])
            await c.write_param(1138, 14.0, address=101)
        return values, infos

    async def main():
        sim.faults = FaultConfig(drop=0.1, corrupt=0.1, foreign_frames=0.3, junk=0.3)
        with sim.serve_tcp("127.0.0.1", 0) as link:
            host, port = link.address
            first = await use(f"tcp://{host}:{port}")
        server = AsyncTcpServerTransport("127.0.0.1", 0)
        await server.bind()
        with sim.connect_tcp("127.0.0.1", server.address[1], retry_s=0.05):
            second = await use(server)
        sim.faults = FaultConfig()
        return first, second

    for values, infos in asyncio.run(main()):
        assert values and all(v == 51.25 for v in values)
        assert infos == {(3000, 102): 52.5, (7002, 601): 77.0}
    assert sim.parameter(101, 1138)[1] == 14.0 and sim.flash_writes == {}


def test_scan_tells_an_xcom_can_bms_from_a_bsp():
    from xcomlog.sim import Installation

    sim = Simulator(Installation(battery="bms", variostrings=0), message_every_s=0)
    with transport_for(sim, "tcp") as transport, XcomClient(transport) as c:
        devices = c.scan()
    assert [(d.address, d.family, d.name) for d in devices if d.address == 601] == [
        (601, Family.XCOM_CAN_BMS, "bms")
    ]
    assert not any(d.family is Family.VARIOSTRING for d in devices)
