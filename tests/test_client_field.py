"""Field fidelity on the client side (issues 10 and 16): the GUID's byte order, device
models in scan, the installation's system voltage for write validation, explicit write
targets, and ``read_infos`` answering in the request's shape. Against the simulator over
loopback TCP, and ``xcomlog`` itself as a subprocess for the command line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from spec_frames import SPEC_BY_NAME

from xcomlog.client import XcomClient
from xcomlog.client.system_voltage import check_system_voltage, system_voltage_from
from xcomlog.exceptions import ValidationError
from xcomlog.options import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S
from xcomlog.protocol import (
    SPEC_GUID_EXAMPLE,
    SPEC_GUID_EXAMPLE_BYTES,
    Family,
    Property,
    guid_from_bytes,
    guid_to_bytes,
)
from xcomlog.sim import Installation, Simulator

pytestmark = pytest.mark.timeout(120)

XCOMLOG = [sys.executable, "-m", "xcomlog"]


# --- GUID (section 6.1) -------------------------------------------------------------------


def test_spec_guid_example_reads_as_a_valid_version_4_uuid(codec):
    frame = codec.decode_frame(SPEC_BY_NAME["read GUID response"].wire)
    assert bytes(frame.data) == SPEC_GUID_EXAMPLE_BYTES
    guid = guid_from_bytes(frame.data)
    assert str(guid) == "407d3d61-2835-4dec-ba32-c9580b1bd03a" == SPEC_GUID_EXAMPLE
    assert guid.version == 4 and guid.variant == uuid.RFC_4122
    # Microsoft's mixed-endian reading gives another UUID, not a valid version 4 one.
    wrong = uuid.UUID(bytes_le=SPEC_GUID_EXAMPLE_BYTES)
    assert wrong != guid and wrong.version != 4
    assert guid_to_bytes(guid) == guid_to_bytes(SPEC_GUID_EXAMPLE) == SPEC_GUID_EXAMPLE_BYTES


@given(st.binary(min_size=16, max_size=16))
def test_guid_bytes_round_trip(data):
    guid = guid_from_bytes(data)
    assert guid_to_bytes(guid) == data
    assert guid_to_bytes(str(guid)) == data
    assert guid.int == int.from_bytes(data, "little")


def test_guid_of_another_size_is_refused():
    with pytest.raises(ValueError, match="16 bytes"):
        guid_from_bytes(b"\x00" * 15)


def test_client_sim_and_cli_agree_on_the_spec_guid():
    sim = Simulator(Installation(guid=SPEC_GUID_EXAMPLE), message_every_s=0)
    assert sim.installation.guid_bytes() == SPEC_GUID_EXAMPLE_BYTES  # the spec's wire bytes
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        with XcomClient(f"tcp://{host}:{port}", timeout=2.0) as xcom:
            assert str(xcom.read_guid()) == SPEC_GUID_EXAMPLE
        proc = subprocess.run(
            [*XCOMLOG, "scan", "--json", "--tcp", f"{host}:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["guid"] == SPEC_GUID_EXAMPLE


# --- system voltage -----------------------------------------------------------------------


def test_system_voltage_sources_decide():
    assert [system_voltage_from("parameter", 10001, v) for v in (1, 2, 4, 8)] == [
        None,  # Automatic says nothing
        12,
        24,
        48,
    ]
    assert [system_voltage_from("id", 3127, v) for v in (12.0, 24.0, 48.0, 36.0)] == [
        12,
        24,
        48,
        None,
    ]
    measured = [system_voltage_from("measured", 3000, v) for v in (12.7, 26.1, 51.3, 0.0)]
    assert measured == [12, 24, 48, None]
    assert system_voltage_from("id", 3127, float("nan")) is None
    assert check_system_voltage("24") == 24 and check_system_voltage("48V") == 48
    with pytest.raises(ValidationError, match="12, 24 or 48"):
        check_system_voltage(36)
    with pytest.raises(ValidationError, match="system_voltage"):
        XcomClient("tcp://127.0.0.1:4001", system_voltage=30)


@pytest.fixture
def sim24():
    sim = Simulator(
        Installation(system_voltage=24, models=("XTM 3500-24", "VS-70", "VT-65")),
        message_every_s=0,
    )
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        yield sim, f"{host}:{port}"


def test_client_checks_writes_against_the_installations_voltage(sim24):
    sim, where = sim24
    with XcomClient(f"tcp://{where}", timeout=2.0) as xcom:
        assert xcom.system_voltage is None
        xcom.write_param(1140, 27.2, address="xt1")  # a 24 V floating voltage
        assert xcom.system_voltage == 24
        assert xcom.read_param(1140, 101, Property.UNSAVED_VALUE_QSP) == pytest.approx(27.2)
        with pytest.raises(ValidationError, match="24 V"):
            xcom.write_param(1140, 54.4, address=101)
        assert sim.parameter(101, 1140)[1] == pytest.approx(27.2)  # nothing was sent
        assert xcom.detect_system_voltage() == 24
    # Given by the user, nothing is asked: a wrong 48 V refuses the 24 V value at once.
    with XcomClient(f"tcp://{where}", timeout=2.0, system_voltage=48) as xcom:
        before = xcom.stats["requests"]
        with pytest.raises(ValidationError, match="48 V"):
            xcom.write_param(1140, 27.2, address=101)
        assert xcom.stats["requests"] == before


def test_a_48_v_installation_refuses_the_24_v_value():
    sim = Simulator(Installation(), message_every_s=0)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        with XcomClient(f"tcp://{host}:{port}", timeout=2.0) as xcom:
            with pytest.raises(ValidationError, match="48 V"):
                xcom.write_param(1140, 27.2, address=101)
            assert xcom.system_voltage == 48


def test_scan_names_the_models(sim24):
    sim, where = sim24
    with XcomClient(f"tcp://{where}", timeout=2.0) as xcom:
        devices = {d.name: d for d in xcom.scan()}
    assert devices["xt1"].model == "XTM 3500-24"
    assert devices["xt1"].device_type.power_va == 3500
    assert devices["xt1"].device_type.codes[3124] == 256  # the raw code is kept
    assert devices["vs1"].model == "VarioString VS-70"
    assert devices["vt1"].model == "VarioTrack VT-65"
    assert devices["bsp"].model == "BSP"
    assert all(d.firmware for d in devices.values())


def test_scan_names_an_xcom_can_bms():
    sim = Simulator(Installation(battery="bms", models=("Xcom-CAN BMS PYLON",)), message_every_s=0)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        with XcomClient(f"tcp://{host}:{port}", timeout=2.0) as xcom:
            bms = [d for d in xcom.scan() if d.family is Family.XCOM_CAN_BMS]
    assert [d.model for d in bms] == ["Xcom-CAN BMS (PYLON)"]


# --- explicit targets, request-shaped results, defaults ------------------------------------


def test_a_write_names_its_target(sim24):
    sim, where = sim24
    with XcomClient(f"tcp://{where}", timeout=2.0) as xcom:
        before = xcom.stats["requests"]
        for missing in (None, [], ()):
            with pytest.raises(ValidationError, match="names its target"):
                xcom.write_param(1138, 12.0, missing)
        with pytest.raises(ValidationError, match="names its target"):
            xcom.write_param(1138, 12.0)
        with pytest.raises(ValidationError, match="twice"):
            xcom.write_param(1138, 12.0, address=["xt1", 101])
        assert xcom.stats["requests"] == before  # nothing sent
        xcom.write_param(1138, 11.0, address=["xt1", "xt2"])
        assert sim.parameter(101, 1138)[1] == sim.parameter(102, 1138)[1] == 11.0
        xcom.write_param(1138, 13.0, address="xt")  # an explicit multicast
        assert sim.parameter(101, 1138)[1] == sim.parameter(102, 1138)[1] == 13.0
    assert sim.flash_writes == {}


def test_read_infos_follows_the_requests_order_and_shape(sim24):
    _, where = sim24
    items = [(7002, 601), (3000, 102), (3000, 101, 2), (15000, 701)]
    with XcomClient(f"tcp://{where}", timeout=2.0) as xcom:
        values = xcom.read_infos(items)
        assert list(values) == items
        assert 20 < values[(3000, 102)] < 35  # a 24 V battery
        single = xcom.read_infos([(3000, 101)])
        assert list(single) == [(3000, 101)]


def test_client_defaults_come_from_the_options():
    client = XcomClient("tcp://127.0.0.1:4001")
    assert client.session.retries == DEFAULT_RETRIES
    assert client.session.timeout == DEFAULT_TIMEOUT_S


# --- the command line against `xcomlog sim --system-voltage 24` -----------------------------


def test_cli_on_a_24_v_simulator():
    sim = subprocess.Popen(
        [*XCOMLOG, "sim", "--tcp-server", "127.0.0.1:0", "--system-voltage", "24"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        where = sim.stdout.readline().strip()
        assert ":" in where, sim.stderr.read()

        def xcomlog(*argv):
            return subprocess.run(
                [*XCOMLOG, *argv, "--tcp", where], capture_output=True, text=True, timeout=60
            )

        scan = xcomlog("scan")
        assert scan.returncode == 0, scan.stderr
        assert "system voltage 24 V" in scan.stdout
        assert "-24" in scan.stdout and "VarioString VS-" in scan.stdout
        doc = json.loads(xcomlog("scan", "--json").stdout)
        assert doc["system_voltage"] == 24
        xt1 = next(d for d in doc["devices"] if d["device"] == "xt1")
        assert xt1["model"].endswith("-24") and xt1["codes"]["3124"] in (1, 256, 512)

        ok = xcomlog("write", "1140", "27.2", "--device", "xt1", "--yes", "--json")
        assert ok.returncode == 0, ok.stderr
        written = json.loads(ok.stdout)
        assert written["system_voltage"] == 24
        assert written["read_back"] == pytest.approx(27.2, abs=1e-4)

        refused = xcomlog("write", "1140", "54.4", "--device", "xt1", "--yes")
        assert refused.returncode == 1
        assert "24 V" in refused.stderr and "19..36" in refused.stderr
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
        given = xcomlog("write", "1140", "54.4", "--device", "xt1", "--system-voltage", "24")
        assert given.returncode == 1 and "24 V" in given.stderr
        unsaved = xcomlog("read", "1140", "--device", "xt1", "--prop", "unsaved", "--json")
        assert json.loads(unsaved.stdout)[0]["value"] == pytest.approx(27.2, abs=1e-4)
        bad = xcomlog("read", "3000", "--device", "xt1", "--system-voltage", "36")
        assert bad.returncode == 1 and "12, 24 or 48" in bad.stderr
    finally:
        sim.terminate()
        sim.wait(20)


def test_open_transport_checks_urls_as_the_cli_does():
    from xcomlog.exceptions import ConfigError
    from xcomlog.links import open_transport
    from xcomlog.logger.config import check_link_url

    for bad in (
        "tcp://127.0.0.1:0",
        "nosuch://x",
        "udp://127.0.0.1?reply_port=70000",
        "tcp://[::1",
    ):
        with pytest.raises(ConfigError) as checked:
            check_link_url(bad, "transport URL")
        with pytest.raises(ValueError) as opened:
            open_transport(bad)
        assert str(opened.value) == str(checked.value)
    with pytest.raises(ValueError):
        XcomClient("tcp://127.0.0.1:0")
