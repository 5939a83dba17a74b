"""xcomlog.compat: the xcom-proto 0.3.x API, checked against the simulator and xcom-proto itself.

The README examples of xcom-proto are read from its installed package metadata (never
copied here) and run with only the import line changed (and the example's addresses
pointed at the simulator on loopback).
"""

from __future__ import annotations

import re
import socket

import pytest
from processes import free_port

pytest.importorskip("xcomlog.sim.links")

from xcomlog import compat  # noqa: E402
from xcomlog.compat import XcomC, XcomLANTCP, XcomLANUDP, XcomP, XcomRS232  # noqa: E402
from xcomlog.exceptions import DeviceError, XcomTimeout  # noqa: E402
from xcomlog.protocol import ErrorCode  # noqa: E402
from xcomlog.sim import Simulator  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def make_sim() -> Simulator:
    sim = Simulator(seed=11, message_every_s=0)
    sim.set_value(601, 7032, 66.5)  # BATT_SOC
    sim.set_value(101, 3000, 50.0)
    # Pinned: moving values read twice (by the client, then here) may straddle a tick.
    sim.set_value(601, 7000, 51.25)  # BATT_VOLTAGE
    sim.set_value(301, 11016, 1)  # PV_OPERATION_MODE
    return sim


# --- the API surface, compared with xcom-proto when it is installed --------------------------


def test_constants_and_datapoints_equal_xcom_proto():
    xp = pytest.importorskip("xcom_proto")
    names = [n for n in dir(xp.XcomC) if not n.startswith("_")]
    checked = 0
    for name in names:
        theirs = getattr(xp.XcomC, name)
        if isinstance(theirs, (str, bytes, dict, tuple)) or type(theirs).__name__ == "ValueTuple":
            assert getattr(XcomC, name) == theirs, name
            checked += 1
    assert checked > 40
    points = {n: v for n, v in vars(xp.XcomP).items() if type(v).__name__ == "Datapoint"}
    assert len(points) > 40
    for name, theirs in points.items():
        ours = getattr(XcomP, name)
        assert (ours.id, ours.type) == (theirs.id, theirs.type), name


def test_datapoint_semantics():
    assert XcomP.BATT_SOC == 7032 and XcomP.BATT_SOC == XcomP.getParamByID(7032)
    assert XcomP.BATT_SOC != XcomP.BATT_VOLTAGE
    assert XcomP.PV_POWER.unit == "kW"  # from the catalog
    with pytest.raises(compat.UnknownDatapointException):
        XcomP.getParamByID(1)
    assert XcomC.MODE_CHARGE == 8 and str(XcomC.MODE_CHARGE) == "MODE_CHARGE"
    assert 9 in XcomC.MODE_CHARGING
    dp = compat.Datapoint(11016, "", XcomC.TYPE_SHORT_ENUM)
    assert dp.unpackValue(b"\x00\x00\x40\x41") == 12  # an enum info sent as FLOAT
    assert dp.unpackValue(b"\x03\x00") == 3
    assert compat.Datapoint(1, "", XcomC.TYPE_FLOAT).packValue(12.0) == b"\x00\x00\x40\x41"
    with pytest.raises(TypeError):
        compat.Datapoint(1, "", "NOPE").unpackValue(b"\0")


# --- behaviour against the simulator ------------------------------------------------------------


def test_udp_get_and_set_with_default_addresses():
    sim = make_sim()
    reply = free_port(socket.SOCK_DGRAM)
    with sim.serve_udp("127.0.0.1", 0, reply_port=reply) as link:
        xcom = XcomLANUDP("127.0.0.1", dstPort=link.address[1], srcPort=reply)
        try:
            assert xcom.getValue(XcomP.BATT_SOC) == 66.5  # a BSP info at the default address
            assert xcom.getValue(XcomP.BATT_VOLTAGE) == 51.25 == sim.value(601, 7000)
            assert xcom.getValueByID(3000, XcomC.TYPE_FLOAT) == 50.0
            mode = xcom.getValue(XcomP.PV_OPERATION_MODE)
            assert isinstance(mode, int) and mode == 1 == sim.value(301, 11016)
            xcom.setValue(XcomP.SMART_BOOST_LIMIT, 90)  # RAM, every Xtender
            assert sim.parameter(101, 1607)[1] == 90 and sim.parameter(102, 1607)[1] == 90
            assert sim.flash_writes == {}
            assert xcom.getValue(XcomP.SMART_BOOST_LIMIT) == 90  # reads the RAM value
            xcom.setValue(XcomP.BATTERY_CHARGE_CURR, 2, dstAddr=101, propertyID=XcomC.QSP_VALUE)
            assert sim.flash_writes == {(101, 1138): 1}
            assert (
                xcom.getValue(XcomP.BATTERY_CHARGE_CURR, dstAddr=101, propertyID=XcomC.QSP_VALUE)
                == 2
            )
        finally:
            xcom.close()


def test_errors_are_key_errors_and_device_errors():
    sim = make_sim()
    port = free_port()
    # XcomLANTCP listens and the simulator, as the Moxa, connects to it.
    with sim.connect_tcp("127.0.0.1", port, retry_s=0.05):
        with XcomLANTCP(port=port, connectTimeout=10) as xcom:
            with pytest.raises(KeyError) as info:
                xcom.getValue(XcomP.AC_POWER_IN, dstAddr=109)
            assert info.value.args == ("Error received", "DEVICE_NOT_FOUND")
            assert isinstance(info.value, DeviceError)
            assert info.value.code == ErrorCode.DEVICE_NOT_FOUND
            with pytest.raises(ValueError):
                xcom.setValue(XcomP.BATTERY_CHARGE_CURR, 999, dstAddr=101)  # above max
            assert xcom.getValue(XcomP.BATT_SOC) == 66.5


def test_timeout_is_a_timeout_error():
    port = free_port(socket.SOCK_DGRAM)
    xcom = XcomLANUDP("127.0.0.1", dstPort=port, srcPort=free_port(socket.SOCK_DGRAM))
    xcom.client.session.timeout = 0.1
    xcom.client.session.retries = 0
    try:
        with pytest.raises(TimeoutError):
            xcom.getValue(XcomP.BATT_SOC)
        with pytest.raises(XcomTimeout):
            xcom.getValue(XcomP.BATT_SOC)
    finally:
        xcom.close()


def test_rs232_over_a_pty():
    sim = make_sim()
    with sim.serve_pty() as link:
        xcom = XcomRS232(serialDevice=link.path, baudrate=115200)
        try:
            assert xcom.getValue(XcomP.BATT_SOC) == 66.5
            assert xcom.client.transport.baudrate == 115200
        finally:
            xcom.close()


# --- the README examples ----------------------------------------------------------------------


def readme_blocks() -> list[str]:
    metadata = pytest.importorskip("importlib.metadata")
    try:
        meta = metadata.metadata("xcom_proto")
    except metadata.PackageNotFoundError:
        pytest.skip("xcom-proto is not installed (its README holds the examples)")
    text = meta.get_payload() or meta.get("Description") or ""
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    if not blocks:
        pytest.skip("no examples in the installed xcom-proto README")
    return blocks


def adapt(block: str, *, udp: tuple[int, int], tcp: int, serial: str) -> str:
    """Only the import line changes; the example's addresses point at the simulator."""
    code = block.replace("from xcom_proto import", "from xcomlog.compat import")
    code = code.replace('"192.168.178.110"', '"127.0.0.1"')
    code = code.replace("dstPort=4002, srcPort=4001", f"dstPort={udp[0]}, srcPort={udp[1]}")
    code = code.replace("XcomLANTCP(port=4001)", f"XcomLANTCP(port={tcp})")
    return code.replace('"/dev/ttyUSB0"', repr(serial))


def test_readme_examples_run_against_the_simulator():
    blocks = readme_blocks()
    sim = make_sim()
    reply = free_port(socket.SOCK_DGRAM)
    tcp_port = free_port()
    ran = 0
    with sim.serve_udp("127.0.0.1", 0, reply_port=reply) as udp, sim.serve_pty() as pty:
        for block in blocks:
            code = adapt(block, udp=(udp.address[1], reply), tcp=tcp_port, serial=pty.path)
            assert "xcom_proto" not in code
            namespace: dict = {}
            if "XcomLANTCP(" in code:
                with sim.connect_tcp("127.0.0.1", tcp_port, retry_s=0.05):
                    exec(compile(code, "README", "exec"), namespace)
            else:
                exec(compile(code, "README", "exec"), namespace)
            xcom = namespace.get("xcom")
            if xcom is not None:
                xcom.close()
            ran += 1
    assert ran == len(blocks) >= 4
    # The writing examples: RAM by default, flash only where QSP_VALUE was asked for.
    assert sim.parameter(101, 1607)[1] == 100
    assert (101, 1607) not in sim.flash_writes and (102, 1607) not in sim.flash_writes
    assert sim.flash_writes.get((101, 1138), 0) >= 1
    assert sim.parameter(101, 1138) == (2, 2)


def test_readme_reading_example_over_serial(capsys):
    """The reading example with its serial link (the UDP lines that replace it dropped)."""
    blocks = [b for b in readme_blocks() if "getValue(" in b and "XcomLANUDP(" in b]
    assert blocks
    sim = make_sim()
    with sim.serve_pty() as pty:
        lines = [
            line
            for line in adapt(blocks[0], udp=(0, 0), tcp=0, serial=pty.path).splitlines()
            if "XcomLANUDP(" not in line
        ]
        namespace: dict = {}
        exec(compile("\n".join(lines), "README", "exec"), namespace)
        assert type(namespace["xcom"]).__name__ == "XcomRS232"
        namespace["xcom"].close()
    printed = capsys.readouterr().out.split()
    assert "66.5" in printed  # the SoC the simulator serves


def test_compat_writes_check_the_installations_system_voltage():
    """A 24 V installation: 27.2 V floating is accepted (to every Xtender, xcom-proto's
    default target), 54.4 V is refused before anything is sent."""
    from xcomlog.exceptions import ValidationError
    from xcomlog.sim import Installation

    sim = Simulator(Installation(system_voltage=24), message_every_s=0)
    reply = free_port(socket.SOCK_DGRAM)
    with sim.serve_udp("127.0.0.1", 0, reply_port=reply) as link:
        xcom = XcomLANUDP("127.0.0.1", dstPort=link.address[1], srcPort=reply)
        try:
            xcom.setValueByID(1140, XcomC.TYPE_FLOAT, 27.2)
            assert sim.parameter(101, 1140)[1] == sim.parameter(102, 1140)[1] == pytest.approx(27.2)
            with pytest.raises(ValidationError, match="24 V"):
                xcom.setValueByID(1140, XcomC.TYPE_FLOAT, 54.4, dstAddr=101)
            assert sim.parameter(101, 1140)[1] == pytest.approx(27.2)
        finally:
            xcom.close()
