"""MQTT publishing cost: CPU per value of the 50-site logger run with MQTT off and on.

Both runs in the same benchmark, one after the other, in fresh interpreters: 50 sites
polling every user info each second (two simulator processes), into Parquet; the second
run also publishes to a local Mosquitto (started here on a free loopback port) with the
default 10 s interval and 5 % dead band and Home Assistant discovery. CPU is this
process's (read loop, writer thread, MQTT), counted from the first logged value to the
dataset closed. The broker's own CPU is not included. Target: on/off <= 1.5.
Needs ``mosquitto`` (tools/ensure_mosquitto.sh) and the mqtt extra.
"""

from __future__ import annotations

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


def fifty_sites_cpu(seconds: float, mqtt_url: str | None, sites: int = 50) -> dict:
    """One 50-site run; CPU seconds per million values (steady state) and what MQTT sent."""
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
        logger, wall, cpu = _run(cfg, seconds, steady=steady)
        values = logger.totals()["values"] - steady.values
        sent = 0
        if logger.mqtt is not None:
            sent = sum(s.publisher.sent for s in logger.mqtt.sites.values())
        return {
            "values": values,
            "cpu": steady.end_cpu - steady.cpu,
            "wall": steady.end_wall - steady.wall,
            "published": logger.mqtt.published_values if logger.mqtt else 0,
            "sent": sent,
        }
    finally:
        for proc, _ in procs:
            _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool = False) -> list[dict]:
    from benchmarks.logger_bench import _in_own_process

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise RuntimeError("mosquitto is not installed: run tools/ensure_mosquitto.sh")
    seconds = 15.0 if quick else 60.0
    folder = Path(tempfile.mkdtemp(prefix="xcomlog-mosquitto-"))
    broker, url = _broker(folder)
    try:
        off = _in_own_process(fifty_sites_cpu, seconds, None)
        on = _in_own_process(fifty_sites_cpu, seconds, url)
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    per_off = off["cpu"] / off["values"] * 1e6
    per_on = on["cpu"] / on["values"] * 1e6
    name = f"50 sites, all infos every 1 s, {seconds:g} s each"
    return [
        {
            "benchmark": name,
            "metric": "CPU per million values, MQTT off",
            "value": per_off,
            "unit": "CPU s",
            "values_per_s": off["values"] / off["wall"],
        },
        {
            "benchmark": name,
            "metric": "CPU per million values, MQTT on",
            "value": per_on,
            "unit": "CPU s",
            "values_per_s": on["values"] / on["wall"],
            "published_share": on["published"] / on["values"] if on["values"] else 0.0,
            "messages_per_s": on["sent"] / on["wall"],
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
