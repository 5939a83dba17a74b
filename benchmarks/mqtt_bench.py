"""MQTT publishing cost: CPU per value of the 50-site logger run with MQTT off and on.

Both runs in the same benchmark, one after the other, in fresh interpreters: 50 sites
polling every user info each second (two simulator processes), into Parquet; the second
run also publishes to a local Mosquitto (started here on a free loopback port) with the
default 10 s interval and 5 % dead band and Home Assistant discovery. CPU is this
process's (read loop, writer thread, MQTT), counted from the first logged value to the
dataset closed: once from the first value (so the start-up, where every site prepares and
sends its HA discovery, is in it) and once after a 20 s warm-up (steady state, what a
logger running for months costs). The broker's own CPU is not included. Target: on/off
<= 1.5.
Needs ``mosquitto`` (tools/ensure_mosquitto.sh) and the mqtt extra.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def _broker(folder: Path):
    import getpass
    import socket

    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"user {getpass.getuser()}\n"
    )
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"mqtt://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def fifty_sites_cpu(
    seconds: float, mqtt_url: str | None, sites: int = 50, warmup: float = 20.0
) -> dict:
    """One 50-site run; CPU per value from the first value (start-up included: every site
    prepares, HA discovery goes out) and after ``warmup`` seconds (steady state)."""
    import dataclasses

    from benchmarks.logger_bench import Steady, _config, _run, _sim, _stop

    procs = [_sim(), _sim()]
    tmp = Path(tempfile.mkdtemp(prefix="xcomlog-mqtt-bench-"))
    try:
        links = [(f"site{i:02d}", f"tcp://{procs[i % 2][1]}") for i in range(sites)]
        cfg = _config(tmp, links, ["all-infos"], interval=1.0, timeout=2.0)
        if mqtt_url:
            from xcomlog.mqtt.settings import settings_from_dict

            cfg = dataclasses.replace(cfg, mqtt=settings_from_dict({"url": mqtt_url}))
        steady = Steady()
        warm: dict = {}

        async def mark(logger) -> None:
            await asyncio.sleep(warmup)
            warm.update(cpu=time.process_time(), wall=time.perf_counter())
            warm["values"] = int(logger.totals()["values"])
            warm["sent"] = _sent(logger)

        logger, wall, cpu = _run(cfg, seconds + warmup, sampler=mark, steady=steady)
        values = logger.totals()["values"] - steady.values
        return {
            "values": values,
            "cpu": steady.end_cpu - steady.cpu,
            "wall": steady.end_wall - steady.wall,
            "steady_values": logger.totals()["values"] - warm["values"],
            "steady_cpu": steady.end_cpu - warm["cpu"],
            "steady_wall": steady.end_wall - warm["wall"],
            "steady_sent": _sent(logger) - warm["sent"],
        }
    finally:
        for proc, _ in procs:
            _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _sent(logger) -> int:
    """MQTT messages the logger sent so far (0 with MQTT off)."""
    if logger.mqtt is None:
        return 0
    return sum(site.publisher.sent for site in logger.mqtt.sites.values())


def run(quick: bool = False) -> list[dict]:
    from benchmarks.logger_bench import _in_own_process

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise RuntimeError("mosquitto is not installed: run tools/ensure_mosquitto.sh")
    seconds = 15.0 if quick else 60.0  # measured after a 20 s warm-up
    folder = Path(tempfile.mkdtemp(prefix="xcomlog-mosquitto-"))
    broker, url = _broker(folder)
    try:
        off = _in_own_process(fifty_sites_cpu, seconds, None)
        on = _in_own_process(fifty_sites_cpu, seconds, url)
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for label, key in (("from the first value", ""), ("steady state", "steady_")):
        per_off = off[key + "cpu"] / off[key + "values"] * 1e6
        per_on = on[key + "cpu"] / on[key + "values"] * 1e6
        name = f"50 sites, all infos every 1 s, MQTT off/on, {label}"
        rows += [
            {
                "benchmark": name,
                "metric": "CPU per million values, MQTT off",
                "value": per_off,
                "unit": "CPU s",
                "values_per_s": off[key + "values"] / off[key + "wall"],
            },
            {
                "benchmark": name,
                "metric": "CPU per million values, MQTT on",
                "value": per_on,
                "unit": "CPU s",
                "values_per_s": on[key + "values"] / on[key + "wall"],
                **({"messages_per_s": on["steady_sent"] / on["steady_wall"]} if key else {}),
            },
            {
                "benchmark": name,
                "metric": "CPU per value, MQTT on / off",
                "value": per_on / per_off,
                "unit": "x",
                "target": "<= 1.5",
                "meets_target": per_on / per_off <= 1.5,
            },
        ]
    return rows
