"""The logger with MQTT on, end to end: simulator over loopback TCP, ``xcomlog log`` in a
subprocess, a real Mosquitto. What is published is what is written to Parquet."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mqtt_broker import read_retained, retained
from test_mqtt import _command

from xcomlog.catalog import load_catalog
from xcomlog.logger.config import simple_config
from xcomlog.logger.loop import Logger
from xcomlog.mqtt import publisher as publisher_module
from xcomlog.mqtt.settings import settings_from_dict
from xcomlog.mqtt.topics import point_id
from xcomlog.protocol import device_name, family_of_address
from xcomlog.sim import Installation, Simulator

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


def run_beside_logger(logger: Logger, body) -> None:
    """Run ``logger`` in asyncio and ``await body()`` beside it; then stop and close it."""

    async def main() -> None:
        stop = asyncio.Event()
        run = asyncio.create_task(logger.run(stop))
        try:
            await body()
        finally:
            stop.set()
            await run

    try:
        asyncio.run(main())
    finally:
        logger.close()


def wait_retained(port: int, topic: str, want: bytes | None = None, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = read_retained(port, "xcomlog/#", settle=0.3)
        if topic in state and (want is None or state[topic] == want):
            return state
        assert time.monotonic() < deadline, f"{topic} never became {want!r}: {sorted(state)}"


def assert_state_equals_parquet(out: Path, state: dict[str, bytes]) -> None:
    """Every datapoint's retained state topic holds the last value written to Parquet."""
    import pyarrow.dataset as ds

    values = (
        ds.dataset(out / "values", format="parquet", partitioning="hive").to_table().to_pandas()
    )
    last = values.sort_values("time").groupby(["address", "number"]).tail(1)
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

    state = read_retained(mosquitto.port, "xcomlog/home/#")
    assert_state_equals_parquet(out, state)
    assert state["xcomlog/home/status"] == b"offline"  # stopped cleanly
    import pyarrow.dataset as ds

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


def logger_with_mqtt(link, out, broker_url: str, **mqtt) -> Logger:
    """A Logger in this process: site "home", xt1, vt1 and bsp every second, MQTT on."""
    host, port = link.address[:2]
    cfg = simple_config(
        f"tcp://{host}:{port}",
        out,
        site="home",
        interval=1,
        devices=["xt1", "vt1", "bsp"],
        flush_interval=0.5,
    )
    settings = settings_from_dict({"url": broker_url, "interval": 0, **mqtt})
    return Logger(dataclasses.replace(cfg, mqtt=settings))


async def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.05)


def read_table(out: Path, table: str):
    import pyarrow.dataset as ds

    return ds.dataset(out / table, format="parquet", partitioning="hive").to_table().to_pandas()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_broker_away_30_s_during_a_logger_run_leaves_no_gap(tmp_path, mosquitto, monkeypatch):
    monkeypatch.setattr(publisher_module, "BACKOFF_S", (0.2, 2.0))  # quicker retries
    out = tmp_path / "data"
    report: dict = {}
    with Simulator(seed=33).serve_tcp("127.0.0.1", 0) as link:
        logger = logger_with_mqtt(link, out, mosquitto.url)

        async def beside() -> None:
            await wait_until(lambda: "home" in logger.mqtt.sites)
            publisher = logger.mqtt.sites["home"].publisher
            await wait_until(lambda: publisher.connected and publisher.sent > 20)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(mosquitto.stop)
            report["away_from"] = time.time()
            await asyncio.sleep(30.0)
            await asyncio.to_thread(mosquitto.start)  # same port, empty broker
            report["back_at"] = time.time()
            await wait_until(lambda: publisher.connected and publisher.pending == 0, 60)
            report["connects"] = publisher.connects
            # MQTT resumed: the latest values, read after the restart, reach the broker
            await asyncio.sleep(3.0)
            live = await retained(mosquitto.port, "xcomlog/home/#")
            report["live_soc"] = live.get("xcomlog/home/bsp/7002_state_of_charge")

        run_beside_logger(logger, beside)
    assert report["connects"] == 2
    assert report["live_soc"] is not None
    # the Parquet log has no gap: every 1 s interval of the run has its row, the broker's
    # 30 s away included, and no interval was reported missed
    values = read_table(out, "values")
    soc = values[(values["address"] == 601) & (values["number"] == 7002)]
    seconds = np.unique([int(t.timestamp()) for t in soc["time"]])
    assert seconds[0] < report["away_from"] - 1 and seconds[-1] > report["back_at"] + 3
    assert np.all(np.diff(seconds) == 1), np.diff(seconds).max()
    events = read_table(out, "events")
    assert (events["kind"] == "missed").sum() == 0, events[events["kind"] == "missed"]
    # and the retained state after the clean stop is the last Parquet value of each point
    state = read_retained(mosquitto.port, "xcomlog/home/#")
    assert_state_equals_parquet(out, state)
    assert state["xcomlog/home/status"] == b"offline"


def test_devices_carry_model_firmware_serial_and_writes_use_the_system_voltage(tmp_path, mosquitto):
    inst = Installation(xtenders=1, variotracks=1, system_voltage=24, models=("XTM 3500-24",))
    sim = Simulator(inst, seed=34)
    out = tmp_path / "data"
    results: dict = {}
    with sim.serve_tcp("127.0.0.1", 0) as link:
        logger = logger_with_mqtt(link, out, mosquitto.url, writes=[1108])

        async def beside() -> None:
            await wait_until(lambda: logger.sites[0].stats.values > 0)
            base = "xcomlog/home/xt1/1108_battery_undervoltage_level_without_load"
            # 46 V is inside the 48 V range (36..72) but not the 24 V one (18..36)
            results["48"] = await _command(mosquitto.port, base + "/set", "46", base + "/result")
            results["24"] = await _command(mosquitto.port, base + "/set", "23", base + "/result")
            results["configs"] = await retained(mosquitto.port, "homeassistant/#")

        run_beside_logger(logger, beside)
    assert logger.sites[0].system_voltage == 24
    assert results["48"]["ok"] is False and "18" in results["48"]["error"]
    assert results["24"]["ok"] is True
    assert sim.parameter(101, 1108)[1] == 23.0  # in RAM
    configs = results["configs"]
    soc = json.loads(configs["homeassistant/sensor/xcomlog_home_bsp/7002_state_of_charge/config"])
    assert soc["device"]["model"] == "BSP"
    xt = next(
        json.loads(p)["device"]
        for t, p in configs.items()
        if "/xcomlog_home_xt1/" in t and t.endswith("/config")
    )
    assert xt["model"] == "XTM 3500-24"
    assert xt["sw_version"].count(".") == 2
    assert xt["serial_number"].isdigit()
    assert xt["via_device"] == "xcomlog_home_gateway"
    number = json.loads(
        configs[
            "homeassistant/number/xcomlog_home_xt1/1108_battery_undervoltage_level_without_load/config"
        ]
    )
    assert (number["min"], number["max"]) == (18.0, 36.0)  # the 24 V limits
    devices = read_table(out, "devices")
    row = devices[devices["device"] == "xt1"].iloc[-1]
    assert (row["model"], row["serial"]) == ("XTM 3500-24", xt["serial_number"])
