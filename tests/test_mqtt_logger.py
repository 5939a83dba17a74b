"""The logger with MQTT on, end to end: simulator over loopback TCP, ``xcomlog log`` in a
subprocess, a real Mosquitto. What is published is what is written to Parquet."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mqtt_broker import read_retained
from test_mqtt import _command

from xcomlog.catalog import load_catalog
from xcomlog.mqtt.topics import point_id
from xcomlog.protocol import device_name, family_of_address
from xcomlog.sim import Simulator

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parent.parent


def start_logger(link, out, broker_url, *extra):
    host, port = link.address
    cmd = [
        sys.executable, "-m", "xcomlog", "log",
        "--tcp", f"{host}:{port}", "--out", str(out), "--site", "home",
        "--interval", "0.5", "--points", "essential", "--devices", "xt1,vt1,bsp",
        "--flush-interval", "0.5", "--no-status",
        "--mqtt", broker_url, *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def wait_retained(port: int, topic: str, want: bytes | None = None, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = read_retained(port, "xcomlog/#", settle=0.3)
        if topic in state and (want is None or state[topic] == want):
            return state
        assert time.monotonic() < deadline, f"{topic} never became {want!r}: {sorted(state)}"


def test_state_topics_equal_parquet_and_commands_reach_the_simulator(tmp_path, mosquitto):
    sim = Simulator(seed=31)
    flash_before, _ = sim.parameter(101, 1138)
    before_1107 = sim.parameter(101, 1107)
    out = tmp_path / "data"
    with sim.serve_tcp("127.0.0.1", 0) as link:
        proc = start_logger(
            link, out, mosquitto.url, "--mqtt-interval", "0", "--mqtt-writes", "1138"
        )
        try:
            wait_retained(mosquitto.port, "xcomlog/home/bsp/7002_state_of_charge")
            base = "xcomlog/home/xt1/1138_battery_charge_current"
            ok = asyncio.run(_command(mosquitto.port, base + "/set", "12", base + "/result"))
            other = "xcomlog/home/xt1/1107_maximum_current_of_ac_source_input_limit"
            refused = asyncio.run(_command(mosquitto.port, other + "/set", "16", other + "/result"))
            time.sleep(1.0)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    assert ok == {"ok": True, "number": 1138, "device": "xt1", "value": 12.0, "flash": False}
    assert refused["ok"] is False and "--mqtt-writes" in refused["error"]
    # the listed parameter reached the simulator's RAM, not its flash
    assert sim.parameter(101, 1138) == (flash_before, 12.0)
    assert sim.flash_writes == {}
    assert sim.parameter(101, 1107) == before_1107  # the unlisted one is untouched

    import pyarrow.dataset as ds

    values = (
        ds.dataset(out / "values", format="parquet", partitioning="hive").to_table().to_pandas()
    )
    last = values.sort_values("time").groupby(["address", "number"]).tail(1)
    state = read_retained(mosquitto.port, "xcomlog/home/#")
    catalog = load_catalog()
    compared = 0
    for address, number, value in zip(last["address"], last["number"], last["value"], strict=True):
        dp = catalog.get(int(number), family_of_address(int(address)))  # bsp, not bms, at 601
        topic = f"xcomlog/home/{device_name(int(address))}/{point_id(int(number), dp.name)}"
        if not np.isfinite(value):
            continue
        payload = state[topic].decode()
        label = catalog.label(dp, value) if dp.options and not dp.bit_field else None
        if label is not None:
            assert payload == label, topic
        else:
            assert np.float32(float(payload)) == np.float32(value), (topic, payload, value)
        compared += 1
    assert compared == len(last) > 20
    assert state["xcomlog/home/status"] == b"offline"  # stopped cleanly
    events = (
        ds.dataset(out / "events", format="parquet", partitioning="hive").to_table().to_pandas()
    )
    assert (events["kind"] == "write").sum() == 1


def test_last_will_when_the_logger_is_killed(tmp_path, mosquitto):
    sim = Simulator(seed=32)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        proc = start_logger(link, tmp_path / "data", mosquitto.url)
        try:
            state = wait_retained(mosquitto.port, "xcomlog/home/bsp/status", b"online")
            assert state["xcomlog/home/status"] == b"online"
            configs = read_retained(mosquitto.port, "homeassistant/#")
            assert "homeassistant/sensor/xcomlog_home_bsp/7002_state_of_charge/config" in configs
            soc = json.loads(
                configs["homeassistant/sensor/xcomlog_home_bsp/7002_state_of_charge/config"]
            )
            assert {"xcomlog/home/status", "xcomlog/home/bsp/status"} == {
                a["topic"] for a in soc["availability"]
            }
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            wait_retained(mosquitto.port, "xcomlog/home/status", b"offline", timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
