"""``xcomlog sim`` as users run it, the installation file, and the SD-card day files."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import time

import pytest
from spec_frames import SPEC_BY_NAME

from xcomlog import codec
from xcomlog.exceptions import ValidationError
from xcomlog.protocol import DATALOG_INFOS, Family, xt
from xcomlog.sim import Installation, Simulator
from xcomlog.sim.sd_files import parse_name, render_day

pytestmark = pytest.mark.timeout(60)


def start(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "xcomlog", "sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    return proc, line


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_tcp_server_prints_its_address_first_and_stops_cleanly(sig):
    proc, line = start("--tcp-server", "127.0.0.1:0")
    try:
        host, _, port = line.rpartition(":")
        assert host == "127.0.0.1" and port.isdigit(), line
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(SPEC_BY_NAME["read parameter 1138 value_qsp request"].wire)
            data = b""
            while len(data) < 30:
                chunk = sock.recv(64)
                assert chunk
                data += chunk
        frame = codec.decode_frame(data)
        assert frame.object_id == 1138 and codec.unpack_value(6, frame.data) == 60.0
    finally:
        code = stop(proc, sig)
    assert code == 0, proc.stderr.read()


def test_pty_udp_and_faults_from_the_command_line():
    proc, line = start("--pty", "--udp", "127.0.0.1:0", "--busy", "1", "--seed", "4")
    try:
        assert line.startswith("/dev/"), line
        udp = proc.stdout.readline().strip()
        host, _, port = udp.rpartition(":")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(SPEC_BY_NAME["read user info 3000 request"].wire, (host, int(port)))
            frame = codec.decode_frame(sock.recvfrom(2048)[0])
        assert frame.error_code == 0x0013  # --busy 1: every answer is GATEWAY_BUSY
    finally:
        assert stop(proc) == 0


def test_tcp_client_mode_connects_out():
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        host, port = server.getsockname()
        proc, line = start("--tcp-client", f"{host}:{port}")
        try:
            assert line == f"{host}:{port}"
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                conn.sendall(SPEC_BY_NAME["read user info 3000 request"].wire)
                data = b""
                while len(data) < 30:
                    data += conn.recv(64)
            assert codec.decode_frame(data).object_id == 3000
        finally:
            assert stop(proc) == 0


def test_config_file_and_bad_arguments(tmp_path):
    config = tmp_path / "site.toml"
    config.write_text(
        '[installation]\nxtenders = 3\nphases = [1, 2, 3]\nvariostrings = 0\nbattery = "bms"\n'
    )
    proc, line = start("--config", str(config), "--tcp-server", "127.0.0.1:0")
    try:
        host, _, port = line.rpartition(":")
        request = codec.encode_request(1, 1, 3000, 1, dst=xt(3))
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(request)
            data = sock.recv(64)
        assert not codec.decode_frame(data).is_error
    finally:
        assert stop(proc) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("xtenders = 12\n")
    result = subprocess.run(
        [sys.executable, "-m", "xcomlog", "sim", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "xtenders must be 0..9" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "xcomlog", "sim", "--drop", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "probability" in result.stderr


# --- the installation -----------------------------------------------------------------------


def test_default_installation():
    inst = Installation()
    families = [d.family for d in inst.devices]
    assert families.count(Family.XTENDER) == 2
    assert families.count(Family.VARIOTRACK) == 1
    assert families.count(Family.VARIOSTRING) == 2
    assert families.count(Family.BSP) == 1
    assert inst.devices[-1].address == 501


def test_installation_files(tmp_path):
    data = {"xt": 2, "phases": [1, 3], "vt": 0, "vs": 15, "bsp": False, "timezone": "Europe/Zurich"}
    path = tmp_path / "site.json"
    path.write_text(json.dumps(data))
    inst = Installation.from_file(path)
    assert (inst.xtenders, inst.phases, inst.variotracks, inst.variostrings, inst.battery) == (
        2,
        (1, 3),
        0,
        15,
        None,
    )
    assert [d.address for d in inst.devices][-2:] == [715, 501]
    for text, message in [
        ('{"xtenders": 2, "phases": [1]}', "phases lists 1"),
        ('{"variotracks": 16}', "variotracks must be 0..15"),
        ('{"battery": "lead"}', "battery must be"),
        ('{"colour": "red"}', "unknown key"),
        ('{"timezone": "Mars/Olympus"}', "unknown timezone"),
        ("{not json", "invalid JSON"),
    ]:
        path.write_text(text)
        with pytest.raises(ValidationError, match=message):
            Installation.from_file(path)
    with pytest.raises(ValidationError, match="cannot read"):
        Installation.from_file(tmp_path / "missing.toml")


# --- SD-card day files --------------------------------------------------------------------------


def test_day_file_layout_matches_the_datalogger():
    sim = Simulator(Installation(xtenders=3, phases=(1, 2, 3), messages=0), message_every_s=0)
    day = dt.date(2024, 3, 2)
    text = render_day(sim, day).decode("latin-1")
    lines = text.split("\r\n")
    assert (
        lines[0].startswith("v7.0,")
        and lines[1].startswith(",I3090,")
        and lines[2].startswith(",L1,")
    )
    width = len(lines[1].split(","))
    rows = lines[3 : 3 + 1440]
    assert all(len(r.split(",")) == width + 1 for r in rows)  # rows carry one extra empty field
    assert rows[0].startswith("02.03.2024 00:00,") and rows[-1].startswith("02.03.2024 23:59,")
    assert lines[3 + 1440].startswith("P1107,")
    # Phase columns L1, L2, L3 for the first infos; one column per Xtender for the others.
    devices = lines[2].split(",")
    numbers = lines[1].split(",")
    assert [d for n, d in zip(numbers, devices, strict=True) if n == "I3090"] == ["L1", "L2", "L3"]
    assert [d for n, d in zip(numbers, devices, strict=True) if n == "I3092"] == [
        "L1-1",
        "L2-2",
        "L3-3",
    ]
    xt_infos = {f"I{n}" for n, _ in DATALOG_INFOS[Family.XTENDER]}
    assert xt_infos <= set(numbers)
    # Values are the model's at that minute.
    j = next(
        i
        for i, (n, d) in enumerate(zip(numbers, devices, strict=True))
        if n == "I3092" and d == "L2-2"
    )
    from zoneinfo import ZoneInfo

    t = dt.datetime(2024, 3, 2, 12, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    row = next(r for r in rows if r.startswith("02.03.2024 12:30,")).split(",")
    assert float(row[j]) == pytest.approx(sim.model.value(xt(2), 3092, t), abs=0.006)
    assert "L3-3:XTH" in text and "FID:" in text


def test_sdcard_names_and_new_file_flag():
    start_t = dt.datetime(2024, 2, 28, 23, 59, 58, tzinfo=dt.timezone.utc).timestamp()
    sim = Simulator(
        Installation(sd_days=2, messages=0), message_every_s=0, start_time=start_t, speed=0
    )
    assert sim.sdcard.names(sim.now()) == ["LG240226.CSV", "LG240227.CSV"]
    assert parse_name("LG240229.CSV") == dt.date(2024, 2, 29) and parse_name("LG240230.CSV") is None
    sim.sdcard.new_file = False
    sim.set_time(start_t + 5, speed=0)  # past midnight: yesterday's file is written
    assert sim.sdcard.new_file
    assert sim.sdcard.names(sim.now())[-1] == "LG240228.CSV"


def test_time_options_run_a_fast_clock():
    proc, line = start(
        "--tcp-server", "127.0.0.1:0", "--start", "2024-06-21T00:00Z", "--speed", "3600"
    )
    try:
        host, _, port = line.rpartition(":")
        times = []
        for _ in range(2):
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(codec.encode_multi_info_request([(3000, 0)]))
                frame = codec.decode_frame(sock.recv(256))
            times.append(codec.decode_multi_info(frame.data).timestamp)
            time.sleep(0.3)
        start_t = int(dt.datetime(2024, 6, 21, tzinfo=dt.timezone.utc).timestamp())
        assert start_t <= times[0] < times[1]
        assert times[1] - times[0] >= 300  # 0.3 s at 3600x is at least 5 simulated minutes
    finally:
        assert stop(proc) == 0
