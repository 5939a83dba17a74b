"""MQTT publishing against a real Mosquitto broker: discovery, state topics, rate limit,
availability, writes and a broker that goes away."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from mqtt_broker import PASSWORD, USER, read_retained

from xcomlog.exceptions import BrokerError, ConfigError
from xcomlog.mqtt import MqttBridge, parse_broker_url
from xcomlog.mqtt.discovery import HA_DEVICE_CLASS_UNITS, UNITS
from xcomlog.mqtt.settings import settings_from_dict

pytestmark = pytest.mark.timeout(120)

SITE = "home"
#: (address, number, name, unit, family, kind) as the logger describes what it logs
LABELS = [
    (601, 7002, "State of Charge", "%", "bsp", "info"),
    (601, 7000, "Battery voltage", "V", "bsp", "info"),
    (101, 3000, "Battery voltage", "Vdc", "xt", "info"),
    (101, 3010, "Battery cycle phase", "", "xt", "info"),
    (101, 3081, "Energy AC-In from the current day", "kWh", "xt", "info"),
    (101, 3080, "Energy AC-In from the previous day", "kWh", "xt", "info"),
    (301, 11009, "Total produced energy", "MWh", "vt", "info"),
    (101, 3136, "Output active power", "kW", "xt", "info"),
    (301, 11021, "Min battery voltage for the current day", "V", "vt", "info"),
    (601, 7019, "Custom counter duration", "h", "bsp", "info"),
]


def settings(url: str, **extra):
    return settings_from_dict({"url": url, **extra})


async def run_bridge(bridge: MqttBridge, body, *, settle: float = 0.6):
    """Run ``bridge`` while ``body()`` (a coroutine function) feeds it; stop cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        result = await body()
        await asyncio.sleep(settle)
        return result
    finally:
        stop.set()
        await task


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


# --- settings ------------------------------------------------------------------------------


def test_broker_urls():
    b = parse_broker_url("mqtt://ha:secret@192.168.1.10")
    assert (b.host, b.port, b.username, b.password, b.tls) == (
        "192.168.1.10",
        1883,
        "ha",
        "secret",
        False,
    )
    assert "secret" not in repr(b) and "secret" not in b.url
    assert parse_broker_url("mqtts://broker.lan").port == 8883
    assert parse_broker_url("127.0.0.1:1884").port == 1884
    for bad in ("http://x", "mqtt://", "mqtt://h:99999", "mqtt://h?foo=1"):
        with pytest.raises(ConfigError):
            parse_broker_url(bad)


def test_settings_refuse_nonsense():
    s = settings_from_dict(
        {"url": "mqtt://h", "writes": "1138,1107", "flash": [1107], "interval": "5s"}
    )
    assert s.writes == {1138, 1107} and s.flash == {1107} and s.interval == 5.0
    for table in (
        {"url": "mqtt://h", "writes": "abc"},
        {"url": "mqtt://h", "flash": [1107]},  # flash must be among the writes
        {"url": "mqtt://h", "prefix": "a/#"},
        {"url": "mqtt://h", "bogus": 1},
        {},
    ):
        with pytest.raises(ConfigError):
            settings_from_dict(table)


def test_every_unit_mapping_is_one_home_assistant_documents():
    for unit, (ha_unit, device_class) in UNITS.items():
        if device_class is not None:
            assert ha_unit in HA_DEVICE_CLASS_UNITS[device_class], (unit, device_class)


# --- discovery -----------------------------------------------------------------------------


def test_discovery_payloads_follow_home_assistant(mosquitto):
    bridge = MqttBridge(settings(mosquitto.url), version="1.2.3")

    async def body():
        bridge.devices(SITE, [{"address": 101, "family": "xt", "firmware": "1.6.30", "fid": 4242}])
        bridge.datapoints(SITE, LABELS)
        await wait_for(lambda: bridge.sites[SITE].publisher.connected)

    asyncio.run(run_bridge(bridge, body))
    configs = {
        t: json.loads(p) for t, p in read_retained(mosquitto.port, "homeassistant/#").items()
    }
    node = "xcomlog_home_bsp"
    soc = configs[f"homeassistant/sensor/{node}/7002_state_of_charge/config"]
    assert soc["state_topic"] == "xcomlog/home/bsp/7002_state_of_charge"
    assert (soc["unit_of_measurement"], soc["device_class"], soc["state_class"]) == (
        "%",
        "battery",
        "measurement",
    )
    assert soc["unique_id"] == "xcomlog_home_bsp_7002"
    assert soc["device"]["identifiers"] == [node]
    assert soc["device"]["via_device"] == "xcomlog_home_gateway"
    assert soc["device"]["model"] == "BSP"
    assert soc["availability_mode"] == "all"
    assert [a["topic"] for a in soc["availability"]] == [
        "xcomlog/home/status",
        "xcomlog/home/bsp/status",
    ]
    assert soc["origin"]["name"] == "xcomlog"

    xt = "homeassistant/sensor/xcomlog_home_xt1/"
    volts = configs[xt + "3000_battery_voltage/config"]
    assert (volts["unit_of_measurement"], volts["device_class"]) == ("V", "voltage")  # Vdc -> V
    assert volts["device"]["sw_version"] == "1.6.30"
    assert volts["device"]["serial_number"] == "4242"
    phase = configs[xt + "3010_battery_cycle_phase/config"]
    assert phase["device_class"] == "enum" and "Floating" in phase["options"]
    assert "unit_of_measurement" not in phase and "state_class" not in phase
    today = configs[xt + "3081_energy_ac_in_from_the_current_day/config"]
    assert (today["device_class"], today["unit_of_measurement"], today["state_class"]) == (
        "energy",
        "kWh",
        "total_increasing",
    )
    yesterday = configs[xt + "3080_energy_ac_in_from_the_previous_day/config"]
    assert yesterday["device_class"] == "energy" and "state_class" not in yesterday
    power = configs[xt + "3136_output_active_power/config"]
    assert (power["device_class"], power["unit_of_measurement"], power["state_class"]) == (
        "power",
        "kW",
        "measurement",
    )
    total = configs["homeassistant/sensor/xcomlog_home_vt1/11009_total_produced_energy/config"]
    assert (total["device_class"], total["unit_of_measurement"], total["state_class"]) == (
        "energy",
        "MWh",
        "total_increasing",
    )
    lowest = configs[
        "homeassistant/sensor/xcomlog_home_vt1/11021_min_battery_voltage_for_the_current_day/config"
    ]
    assert (lowest["device_class"], lowest["state_class"]) == ("voltage", "measurement")
    hours = configs["homeassistant/sensor/xcomlog_home_bsp/7019_custom_counter_duration/config"]
    assert (hours["device_class"], hours["unit_of_measurement"], hours["state_class"]) == (
        "duration",
        "h",
        "total_increasing",
    )
    gateway = configs["homeassistant/sensor/xcomlog_home_gateway/message/config"]
    assert (
        gateway["state_topic"] == "xcomlog/home/message" and "via_device" not in gateway["device"]
    )
    # every sensor: the keys HA's MQTT discovery documents, units allowed for the class
    for topic, config in configs.items():
        for key in ("unique_id", "state_topic", "device", "availability", "name"):
            assert key in config, (topic, key)
        cls = config.get("device_class")
        if cls in HA_DEVICE_CLASS_UNITS:
            assert config["unit_of_measurement"] in HA_DEVICE_CLASS_UNITS[cls], topic
        if cls == "energy":
            assert config.get("state_class") in (None, "total", "total_increasing"), topic


def test_entities_no_longer_logged_are_removed(mosquitto):
    first = MqttBridge(settings(mosquitto.url, discovery_prefix="ha"))

    async def body1():
        first.datapoints(SITE, LABELS)
        await wait_for(lambda: first.sites[SITE].publisher.connected)

    asyncio.run(run_bridge(first, body1))
    before = read_retained(mosquitto.port, "ha/#")
    assert "ha/sensor/xcomlog_home_vt1/11009_total_produced_energy/config" in before
    second = MqttBridge(settings(mosquitto.url, discovery_prefix="ha"))

    async def body2():
        second.datapoints(SITE, LABELS[:2])  # only the BSP is logged now
        await wait_for(lambda: second.sites[SITE].publisher.connected)

    asyncio.run(run_bridge(second, body2, settle=1.5))
    after = read_retained(mosquitto.port, "ha/#")
    assert sorted(after) == sorted(
        [
            "ha/sensor/xcomlog_home_bsp/7002_state_of_charge/config",
            "ha/sensor/xcomlog_home_bsp/7000_battery_voltage/config",
            "ha/sensor/xcomlog_home_gateway/message/config",
        ]
    )


# --- state topics, rate limit, dead band ---------------------------------------------------


def test_state_topics_are_retained_plain_values_rate_limited(mosquitto):
    bridge = MqttBridge(settings(mosquitto.url, interval="10s", deadband=0.05))
    addresses = np.array([601, 101, 101], np.uint16)
    numbers = np.array([7002, 3000, 3010], np.uint16)
    t0 = 1_700_000_000_000
    seen: list[dict] = []

    async def body():
        bridge.datapoints(SITE, LABELS)
        await wait_for(lambda: bridge.sites[SITE].publisher.connected)
        pub = bridge.sites[SITE].publisher

        def snap():
            return {
                n: pub.latest(f"xcomlog/home/{d}/{n}")
                for d, n in (
                    ("bsp", "7002_state_of_charge"),
                    ("xt1", "3000_battery_voltage"),
                    ("xt1", "3010_battery_cycle_phase"),
                )
            }

        bridge.values(SITE, t0, addresses, numbers, np.array([80.5, 51.2, 4], np.float32))
        seen.append(snap())
        # 1 s later, small changes: inside the dead band and the interval -> not published
        bridge.values(SITE, t0 + 1000, addresses, numbers, np.array([80.6, 51.3, 4], np.float32))
        seen.append(snap())
        # 2 s later: the SoC moves by 10 % (past the band), the enum changes -> at once
        bridge.values(SITE, t0 + 2000, addresses, numbers, np.array([88.0, 51.4, 5], np.float32))
        seen.append(snap())
        # 10 s after their last publication the values go out again, whatever they did
        # (the SoC was published at +2 s, so it waits until +12 s)
        bridge.values(SITE, t0 + 10_000, addresses, numbers, np.array([88.1, 51.5, 5], np.float32))
        seen.append(snap())
        bridge.values(SITE, t0 + 12_000, addresses, numbers, np.array([88.1, 51.5, 5], np.float32))
        seen.append(snap())
        await asyncio.sleep(0.3)

    asyncio.run(run_bridge(bridge, body))
    k = ("7002_state_of_charge", "3000_battery_voltage", "3010_battery_cycle_phase")
    assert [seen[0][x] for x in k] == [b"80.5", b"51.2", b"Floating"]
    assert [seen[1][x] for x in k] == [b"80.5", b"51.2", b"Floating"]
    assert [seen[2][x] for x in k] == [b"88", b"51.2", b"R.float."]
    assert [seen[3][x] for x in k] == [b"88", b"51.5", b"R.float."]
    assert [seen[4][x] for x in k] == [b"88.1", b"51.5", b"R.float."]
    on_broker = read_retained(mosquitto.port, "xcomlog/home/#")
    assert on_broker["xcomlog/home/bsp/7002_state_of_charge"] == b"88.1"
    assert on_broker["xcomlog/home/xt1/3000_battery_voltage"] == b"51.5"
    assert on_broker["xcomlog/home/status"] == b"offline"  # said on the clean stop
    # float32 payloads read back exactly
    assert np.float32(float(b"51.5")) == np.float32(51.5)


# --- writes --------------------------------------------------------------------------------


async def _command(port: int, topic: str, payload: str, result_topic: str) -> dict:
    """Send a command as Home Assistant would and wait for the published result."""
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(result_topic)
        await client.publish(topic, payload)

        async def first() -> dict:
            async for message in client.messages:
                return json.loads(message.payload)
            raise AssertionError("no result")

        return await asyncio.wait_for(first(), 10)


def test_commands_on_listed_parameters_only(mosquitto):
    writes: list[tuple] = []

    async def write(site, address, number, value, flash):
        writes.append((site, address, number, value, flash))

    bridge = MqttBridge(settings(mosquitto.url, writes=[1138, 1107], flash=[1107]), write=write)
    results: dict[str, dict] = {}

    async def body():
        bridge.datapoints(SITE, LABELS)
        await wait_for(lambda: bridge.sites[SITE].publisher.connected)
        await asyncio.sleep(0.3)  # subscriptions in place
        base = "xcomlog/home/xt1/1138_battery_charge_current"
        results["ok"] = await _command(mosquitto.port, base + "/set", "12.5", base + "/result")
        results["range"] = await _command(mosquitto.port, base + "/set", "9999", base + "/result")
        flash = "xcomlog/home/xt1/1107_maximum_current_of_ac_source_input_limit"
        results["flash"] = await _command(mosquitto.port, flash + "/set", "16", flash + "/result")
        unlisted = "xcomlog/home/xt1/1126_smart_boost_allowed"
        results["unlisted"] = await _command(
            mosquitto.port, unlisted + "/set", "1", unlisted + "/result"
        )

    asyncio.run(run_bridge(bridge, body))
    assert results["ok"]["ok"] is True and results["ok"]["flash"] is False
    assert results["range"]["ok"] is False and "maximum" in results["range"]["error"]
    assert results["flash"]["ok"] is True and results["flash"]["flash"] is True
    assert results["unlisted"]["ok"] is False and "--mqtt-writes" in results["unlisted"]["error"]
    # only the valid commands on listed parameters reached the write callable, validated
    assert writes == [(SITE, 101, 1138, 12.5, False), (SITE, 101, 1107, 16.0, True)]
    assert bridge.sites[SITE].gate.refused == 2
    configs = {
        t: json.loads(p) for t, p in read_retained(mosquitto.port, "homeassistant/#").items()
    }
    number = configs["homeassistant/number/xcomlog_home_xt1/1138_battery_charge_current/config"]
    assert number["command_topic"] == "xcomlog/home/xt1/1138_battery_charge_current/set"
    assert (number["min"], number["max"], number["unit_of_measurement"]) == (0, 200, "A")
    state = read_retained(mosquitto.port, "xcomlog/home/xt1/#")
    assert state["xcomlog/home/xt1/1138_battery_charge_current"] == b"12.5"


# --- faults --------------------------------------------------------------------------------


def test_bad_credentials_are_a_clear_error_at_start(mosquitto_auth):
    wrong = MqttBridge(settings(f"mqtt://{USER}:wrong@127.0.0.1:{mosquitto_auth.port}"))
    with pytest.raises(BrokerError, match="refused the login"):
        asyncio.run(wrong.check())
    right = MqttBridge(settings(f"mqtt://{USER}:{PASSWORD}@127.0.0.1:{mosquitto_auth.port}"))
    asyncio.run(right.check())


def test_refused_tls_handshake_is_a_clear_error(mosquitto_tls):
    bridge = MqttBridge(settings(f"mqtts://127.0.0.1:{mosquitto_tls.port}"))
    with pytest.raises(BrokerError, match="TLS"):
        asyncio.run(bridge.check())


def test_unreachable_broker_is_not_fatal():
    from processes import free_port

    asyncio.run(MqttBridge(settings(f"mqtt://127.0.0.1:{free_port()}")).check())


def test_messages_publish_the_latest_with_text_and_severity(mosquitto):
    bridge = MqttBridge(settings(mosquitto.url))

    async def body():
        await wait_for(lambda: SITE in bridge.sites and bridge.sites[SITE].publisher.connected)

    async def feed():
        bridge.message(
            SITE,
            {
                "time_ms": 1,
                "address": 101,
                "number": 16,
                "text": "Fan error detected",
                "severity": "Warning",
            },
        )
        bridge.message(
            SITE,
            {
                "time_ms": 2,
                "address": 101,
                "number": 20,
                "text": "Battery too low",
                "severity": "Alarm",
            },
        )
        await body()

    asyncio.run(run_bridge(bridge, feed))
    latest = json.loads(
        read_retained(mosquitto.port, "xcomlog/home/message")["xcomlog/home/message"]
    )
    assert latest == {
        "text": "Battery too low",
        "severity": "Alarm",
        "number": 20,
        "device": "xt1",
        "time_ms": 2,
    }
    config = json.loads(
        read_retained(mosquitto.port, "homeassistant/#")[
            "homeassistant/sensor/xcomlog_home_gateway/message/config"
        ]
    )
    assert config["value_template"] == "{{ value_json.text }}"
    assert config["json_attributes_topic"] == "xcomlog/home/message"


def test_system_voltage_from_the_setting_else_the_battery_voltage():
    from xcomlog.identification import system_voltage_of as system_voltage_from

    assert system_voltage_from(["24V"], [48]) == 24  # the "Voltage of the system" setting wins
    assert system_voltage_from(["Automatic", None], [None, 12]) == 12  # else the devices'
    assert system_voltage_from(["Automatic"], [36, None]) is None  # nothing says it
