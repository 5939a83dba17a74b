"""MQTT availability and faults against a real Mosquitto: the last will of a killed
publisher, devices going quiet, and a broker that is away for 30 s."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from mqtt_broker import read_retained
from test_mqtt import LABELS, SITE, run_bridge, settings, wait_for

from xcomlog.mqtt import MqttBridge
from xcomlog.mqtt import bridge as bridge_module
from xcomlog.mqtt import publisher as publisher_module

pytestmark = pytest.mark.timeout(180)

PUBLISHER = textwrap.dedent(
    """
    import asyncio, sys, time
    import numpy as np
    from xcomlog.mqtt import MqttBridge
    from xcomlog.mqtt.settings import settings_from_dict

    async def main():
        bridge = MqttBridge(settings_from_dict({"url": sys.argv[1], "interval": 0}))
        bridge.datapoints("home", [(601, 7002, "State of Charge", "%", "bsp", "info")])
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop))
        while True:
            bridge.values("home", int(time.time() * 1000), 601, 7002, 55.0)
            if bridge.sites["home"].publisher.connected:
                print("ready", flush=True)
            await asyncio.sleep(0.2)

    asyncio.run(main())
    """
)


def test_last_will_when_the_publisher_is_killed(mosquitto):
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, mosquitto.url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while True:
            state = read_retained(mosquitto.port, "xcomlog/#", settle=0.3)
            if state.get("xcomlog/home/bsp/status") == b"online":
                break
            assert time.monotonic() < deadline, state
        assert state["xcomlog/home/status"] == b"online"
        assert state["xcomlog/home/bsp/7002_state_of_charge"] == b"55"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while (
            read_retained(mosquitto.port, "xcomlog/home/status", 0.3).get("xcomlog/home/status")
            != b"offline"
        ):
            assert time.monotonic() < deadline, "the broker did not publish the last will"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_device_availability_follows_answers(mosquitto, monkeypatch):
    monkeypatch.setattr(bridge_module, "STALE_FLOOR_S", 0.5)
    monkeypatch.setattr(bridge_module, "WATCH_PERIOD_S", 0.1)
    bridge = MqttBridge(settings(mosquitto.url))
    states: list[tuple[bytes, bytes]] = []

    async def body():
        bridge.datapoints(SITE, LABELS)
        await wait_for(lambda: bridge.sites[SITE].publisher.connected)
        pub = bridge.sites[SITE].publisher

        def snap():
            return (pub.latest("xcomlog/home/bsp/status"), pub.latest("xcomlog/home/xt1/status"))

        now = int(time.time() * 1000)
        bridge.values(SITE, now, np.array([601, 101]), np.array([7002, 3000]), np.array([50, 52]))
        states.append(snap())  # both answered
        bridge.device_lost(SITE, 101)  # the logger says xt1 stopped answering
        states.append(snap())
        bridge.values(SITE, now + 200, 101, 3000, 52.0)  # it answers again
        states.append(snap())
        # the BSP's values stop: offline once the watchdog sees it quiet
        for _ in range(11):
            bridge.values(SITE, int(time.time() * 1000), 101, 3000, 52.0)
            await asyncio.sleep(0.1)
        states.append(snap())
        bridge.link_lost(SITE)
        states.append(snap())

    asyncio.run(run_bridge(bridge, body))
    on, off = b"online", b"offline"
    assert states == [(on, on), (on, off), (on, on), (off, on), (off, off)]
    assert read_retained(mosquitto.port, "xcomlog/home/+/status") == {
        "xcomlog/home/bsp/status": off,
        "xcomlog/home/xt1/status": off,
        "xcomlog/home/vt1/status": off,  # logged but never answered, then the link went
    }


@pytest.mark.slow
def test_broker_away_for_30_s_does_not_block_and_latest_state_returns(mosquitto, monkeypatch):
    monkeypatch.setattr(publisher_module, "BACKOFF_S", (0.2, 2.0))  # quicker retries
    bridge = MqttBridge(settings(mosquitto.url, interval=0))
    report: dict = {}

    async def body():
        bridge.datapoints(SITE, LABELS)
        await wait_for(lambda: bridge.sites[SITE].publisher.connected)
        pub = bridge.sites[SITE].publisher
        addresses = np.array([601, 601, 101], np.uint16)
        numbers = np.array([7002, 7000, 3000], np.uint16)
        calls = 0
        last = None

        def feed():
            nonlocal calls, last
            calls += 1
            last = np.array([calls % 100, 48 + calls % 7, 50 + calls % 11], np.float32)
            bridge.values(SITE, int(time.time() * 1000), addresses, numbers, last)

        for _ in range(20):
            feed()
            await asyncio.sleep(0.02)
        await asyncio.to_thread(mosquitto.stop)
        await wait_for(lambda: not pub.connected)
        before = calls
        away_until = time.monotonic() + 30
        longest = 0.0
        while time.monotonic() < away_until:
            started = time.perf_counter()
            feed()
            longest = max(longest, time.perf_counter() - started)
            report["pending_max"] = max(report.get("pending_max", 0), pub.pending)
            await asyncio.sleep(0.02)
        report["calls_while_away"] = calls - before
        report["topics"] = len(pub._retained)
        sent_before = pub.sent
        await asyncio.to_thread(mosquitto.start)  # same port, empty broker (no persistence)
        await wait_for(lambda: pub.connected, timeout=60)
        await wait_for(lambda: pub.pending == 0)
        report["sent_after_reconnect"] = pub.sent - sent_before
        report["last"] = last
        report["connects"] = pub.connects

    asyncio.run(run_bridge(bridge, body))
    # the caller went on at its pace (each call returns without waiting on the network)
    assert report["calls_while_away"] > 30 / 0.02 * 0.3
    # memory stayed bounded: one payload per topic, never a backlog
    assert report["pending_max"] <= report["topics"]
    assert report["connects"] == 2
    # after the reconnect only the latest state went out: one message per retained topic
    assert report["sent_after_reconnect"] <= report["topics"] + 1
    state = read_retained(mosquitto.port, "xcomlog/home/#")
    last = report["last"]
    assert state["xcomlog/home/bsp/7002_state_of_charge"] == str(int(last[0])).encode()
    assert state["xcomlog/home/bsp/7000_battery_voltage"] == str(int(last[1])).encode()
    assert state["xcomlog/home/xt1/3000_battery_voltage"] == str(int(last[2])).encode()
    assert state["xcomlog/home/status"] == b"offline"  # the clean stop said so
    assert "homeassistant/sensor/xcomlog_home_bsp/7002_state_of_charge/config" in read_retained(
        mosquitto.port, "homeassistant/#"
    )
