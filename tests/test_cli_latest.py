"""``xcomlog latest`` against a running logger: ``xcomlog sim`` and ``xcomlog log`` are
real processes on loopback TCP, and ``latest`` reads the dataset while the logger writes.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time

import pytest
from processes import run_xcomlog, sim_process, start_xcomlog, stop_process

pytest.importorskip("pandas")

pytestmark = pytest.mark.timeout(120)


def latest(*argv: str) -> subprocess.CompletedProcess:
    return run_xcomlog("latest", *argv)


@pytest.fixture
def running_logger(tmp_path):
    logger = None
    with sim_process("--seed", "2") as sim:
        try:
            out = tmp_path / "data"
            logger = start_xcomlog(
                "log", "--tcp", sim.address, "--out", str(out), "--site", "home",
                "--devices", "xt1,bsp", "--points", "essential", "--interval", "200ms",
                "--flush-interval", "300ms", "--no-status",
            )  # fmt: skip
            yield out, logger
        finally:
            stop_process(logger)


def test_latest_while_a_logger_writes(running_logger):
    out, logger = running_logger
    rows: list = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert logger.poll() is None, logger.stderr.read()
        # the site exists once the logger has written its labels (the folder comes first)
        if (out / "datapoints").is_dir():
            proc = latest(str(out), "--site", "home", "--json")
            assert proc.returncode == 0, proc.stderr
            rows = json.loads(proc.stdout)
            if {(r["device"], r["number"]) for r in rows} >= {("xt1", 3000), ("bsp", 7002)}:
                break
        time.sleep(0.3)
    by_key = {(r["device"], r["number"]): r for r in rows}
    voltage = by_key[("xt1", 3000)]
    assert voltage["name"] == "Battery voltage" and voltage["unit"] == "V"
    assert 40 < voltage["value"] < 70
    assert voltage["age_s"] < 30
    assert by_key[("bsp", 7002)]["unit"] == "%"
    first_time = dt.datetime.fromisoformat(voltage["time"])
    time.sleep(1.5)
    proc = latest(str(out), "--json")
    rows = json.loads(proc.stdout)
    newer = dt.datetime.fromisoformat(
        next(r for r in rows if (r["device"], r["number"]) == ("xt1", 3000))["time"]
    )
    assert newer > first_time, "the latest value moves on while the logger runs"
    proc = latest(str(out))
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if " 3000 " in line)
    assert "Battery voltage" in line and " V " in line and "ago" in line
    assert "e-" not in proc.stdout  # no exponents


def test_latest_watch_refreshes(running_logger):
    out, _ = running_logger
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "datapoints").is_dir():
        time.sleep(0.2)
    proc = start_xcomlog("latest", str(out), "--watch", "300ms", "--json")
    try:
        documents = [json.loads(proc.stdout.readline()) for _ in range(3)]
    finally:
        stop_process(proc)
    assert all(isinstance(d, list) for d in documents)
    assert len(documents) == 3


def test_latest_errors_are_one_sentence(tmp_path):
    proc = latest(str(tmp_path / "absent"))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "no dataset" in proc.stderr
    (tmp_path / "values").mkdir()
    proc = latest(str(tmp_path), "--site", "nope")
    assert proc.returncode == 1 and "no site 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
