"""The simulator plays real hardware (issue 10): 12/24/48 V, device models, the clock, old gateways.

Every check goes over a real loopback TCP link with our client (reads that bypass the
client's own catalog validation use ``fmt=``, so the simulator's answer is what is tested).
"""

from __future__ import annotations

import contextlib
import time

import pytest
from processes import run_xcomlog, sim_process

from xcomlog import codec
from xcomlog.client import XcomClient
from xcomlog.exceptions import DeviceError, ValidationError
from xcomlog.models import IDENTIFICATION_INFOS, describe_device
from xcomlog.protocol import (
    ADDRESS_GATEWAY,
    MULTI_INFO_OBJECT_ID,
    ErrorCode,
    Family,
    Format,
    ObjectType,
    Property,
    Service,
)
from xcomlog.sim import Installation, Simulator

ADDRESS = {Family.XTENDER: 101, Family.VARIOTRACK: 301, Family.VARIOSTRING: 701, Family.BSP: 601}


@contextlib.contextmanager
def client_for(installation: Installation, **options):
    sim = Simulator(installation, seed=3, message_every_s=0, **options)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address[:2]
        with XcomClient(f"tcp://{host}:{port}", timeout=2.0) as client:
            yield sim, client


def identify(client: XcomClient, family: Family, address: int) -> str:
    codes = {n: client.read_info(n, address=address) for n in IDENTIFICATION_INFOS[family]}
    return describe_device(family, codes).description


def test_a_24_volt_installation_with_models():
    inst = Installation(
        xtenders=2,
        variotracks=1,
        variostrings=2,
        system_voltage=24,
        models=("XTM 3500-24", "XTS 1200-24", "VS-70"),
    )
    with client_for(inst) as (sim, xcom):
        assert identify(xcom, Family.XTENDER, 101) == "XTM 3500-24"
        assert identify(xcom, Family.XTENDER, 102) == "XTS 1200-24"
        assert identify(xcom, Family.VARIOSTRING, 701) == "VarioString VS-70"
        assert identify(xcom, Family.VARIOSTRING, 702) == "VarioString VS-70"  # the last repeats
        assert identify(xcom, Family.VARIOTRACK, 301) == "VarioTrack VT-80"  # the default
        assert identify(xcom, Family.BSP, 601) == "BSP"
        # Battery voltages of a 24 V battery on every device.
        for number, address in ((3000, 101), (7000, 601), (11000, 301), (15000, 701)):
            assert 21.0 < xcom.read_info(number, address=address) < 30.0, number
        # Battery-voltage parameters: the 48 V appendix values halved.
        assert xcom.read_param(1140, address=101) == pytest.approx(27.2)
        assert xcom.read_param(1140, address=101, prop=Property.MIN_QSP) == pytest.approx(19.0)
        assert xcom.read_param(1140, address=101, prop=Property.MAX_QSP) == pytest.approx(36.0)
        assert xcom.read_param(10005, address=301) == pytest.approx(27.2)
        assert xcom.read_param(10103, address=301) == pytest.approx(70.0)  # PV: not scaled
        # "Voltage of the system" says 24 V (option 4) on the VarioTrack and the BSP.
        assert xcom.read_param(10001, address=301) == 4
        assert xcom.read_param(6057, address=601) == 4
        # A write of 27.2 V is taken, 54.4 V (a 48 V value) refused by the device.
        xcom.write_param(1140, 27.2, address=101, fmt=Format.FLOAT)
        assert sim.parameter(101, 1140)[1] == pytest.approx(27.2)
        with pytest.raises(DeviceError) as refused:
            xcom.write_param(1140, 54.4, address=101, fmt=Format.FLOAT)
        assert refused.value.code == ErrorCode.DATA_TOO_BIG


@pytest.mark.parametrize("volts,low,high", [(12, 10.5, 15.0), (48, 42.0, 60.0)])
def test_12_and_48_volt_batteries(volts, low, high):
    inst = Installation(xtenders=1, variotracks=0, variostrings=0, system_voltage=volts)
    with client_for(inst) as (_sim, xcom):
        assert low < xcom.read_info(3000, address=101) < high
        assert xcom.read_info(3127, address=101) == volts
        dp = xcom.catalog.get(1108, system_voltage=volts)
        assert xcom.read_param(1108, address=101) == pytest.approx(dp.default, abs=1e-4)
        assert identify(xcom, Family.XTENDER, 101) == {12: "XTH 3000-12", 48: "XTH 8000-48"}[volts]


def test_the_clock_through_value_and_unsaved_value():
    start = 1_718_000_000.0
    inst = Installation(xtenders=1, variotracks=0, variostrings=0, timezone="Europe/Zurich")
    with client_for(inst, start_time=start) as (sim, xcom):
        for prop in (Property.VALUE_QSP, Property.UNSAVED_VALUE_QSP):
            clock = xcom.read_param(5002, address=501, prop=prop)
            assert abs(clock - sim.device_time()) <= 2, prop
            assert abs(clock - (start + 7200)) < 60  # summer time in Zurich: UTC+2
        xcom.write_param(5002, int(start), address=501)  # set it back two hours, in RAM
        assert abs(xcom.read_param(5002, address=501, prop=Property.UNSAVED_VALUE_QSP) - start) < 5
        assert abs(xcom.read_param(5002, address=501) - start) < 5


def multi_info_answer(sim: Simulator):
    """The frame answering a raw 2-item multi-info request (no client fallback involved)."""
    data = codec.pack_multi_info_request([(3000, 1), (15010, 1)])
    request = codec.encode_request(
        Service.READ,
        ObjectType.MULTI_INFO,
        MULTI_INFO_OBJECT_ID,
        Property.VALUE,
        data,
        dst=ADDRESS_GATEWAY,
    )
    (out,) = sim.handle(request)
    return codec.decode_frame(out)


def test_an_old_gateway_refuses_multi_info_and_answers_single_reads():
    old = Installation(xtenders=1, variotracks=0, variostrings=1, gateway_version="1.6.50")
    assert not old.supports_multi_info
    with client_for(old) as (sim, xcom):
        refused = multi_info_answer(sim)
        assert refused.is_error and refused.error_code == ErrorCode.SERVICE_NOT_SUPPORTED
        assert 40 < xcom.read_info(3000, address=101) < 60
        # Our client notices and reads one info at a time.
        values = xcom.read_infos([(3000, 101), (15010, 701)])
        assert list(values) == [(3000, 101), (15010, 701)]
    for version in ("1.6.74", "1.7.2"):
        new = Installation(xtenders=1, variotracks=0, variostrings=1, gateway_version=version)
        answer = multi_info_answer(Simulator(new, message_every_s=0))
        assert not answer.is_error
        assert len(codec.decode_multi_info(answer.data).values) == 2
    assert Installation().supports_multi_info


def test_installation_file_keys(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(
        "[installation]\nsystem_voltage = 24\n"
        'models = ["XTH 5000-24", "XTM 2400-24"]\ngateway_version = "1.6.50"\n',
        encoding="utf-8",
    )
    inst = Installation.from_file(path)
    assert inst.nominal_voltage == 24 and inst.cells == 12
    assert [d.model for d in inst.devices if d.family is Family.XTENDER] == [
        "XTH 5000-24",
        "XTM 2400-24",
    ]
    gateway = next(d for d in inst.devices if d.family is Family.RCC)
    assert gateway.software == (1, 6, 50) and not inst.supports_multi_info
    # The Xtender models alone set the voltage.
    assert Installation(models=("XTH 3000-12",)).nominal_voltage == 12


@pytest.mark.parametrize(
    "options,message",
    [
        ({"system_voltage": 36}, "system_voltage must be 12, 24 or 48"),
        (
            {"system_voltage": 24, "models": ("XTH 8000-48",)},
            "48 V Xtender, the installation is 24 V",
        ),
        ({"models": ("XTH 8000-48", "XTM 2400-24")}, "one system voltage only"),
        ({"models": ("Xtender 9000",)}, "unknown device model"),
        ({"variotracks": 0, "models": ("VT-65",)}, "the installation has none"),
        ({"xtenders": 1, "models": ("XTH 8000-48", "XTM 4000-48")}, "2 xt models for 1"),
        ({"gateway_version": "1.6"}, "X.Y.Z"),
    ],
)
def test_bad_hardware_is_one_clear_sentence(options, message):
    with pytest.raises(ValidationError, match=message):
        Installation(**options)


def test_command_line_options(tmp_path):
    with sim_process(
        "--system-voltage", "24", "--models", "XTM 3500-24,VS-70", "--gateway-version", "1.6.50"
    ) as sim:  # fmt: skip
        host, _, port = sim.address.rpartition(":")
        deadline = time.monotonic() + 20
        banner = ""
        while "Ctrl-C" not in banner and time.monotonic() < deadline:
            banner += sim.proc.stderr.readline()
        assert "24 V" in banner and "XTM 3500-24" in banner and "1.6.50" in banner
        with XcomClient(f"tcp://{host}:{port}", timeout=2.0) as xcom:
            assert identify(xcom, Family.XTENDER, 101) == "XTM 3500-24"
            assert identify(xcom, Family.VARIOSTRING, 701) == "VarioString VS-70"
            assert xcom.read_infos([(3000, 101)])  # by single reads
    bad = run_xcomlog("sim", "--models", "XTH 8000-48", "--system-voltage", "12", timeout=30)
    assert bad.returncode == 1 and "48 V Xtender, the installation is 12 V" in bad.stderr
    assert "Traceback" not in bad.stderr
