"""``xcomlog log`` and ``xcomlog demo`` from the command line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_logger_support import Recorder, read_table

from xcomlog.cli import main
from xcomlog.sim import Simulator

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parent.parent


def test_log_needs_a_link_or_a_file(capsys):
    assert main(["log", "--out", "x"]) == 1
    assert "nothing to log" in capsys.readouterr().err


def test_log_refuses_both(tmp_path, capsys):
    assert (
        main(["log", "--config", str(REPO / "examples" / "logger.toml"), "--tcp", "127.0.0.1:1"])
        == 1
    )
    assert "not both" in capsys.readouterr().err


def test_unwritable_output_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["log", "--tcp", "127.0.0.1:9", "--out", str(blocker / "data"), "--no-status"]) == 1
    err = capsys.readouterr().err
    assert str(blocker) in err and "error" in err
    assert blocker.read_text() == "not a folder"


def test_plan_of_the_example(capsys):
    assert main(["log", "--config", str(REPO / "examples" / "logger.toml"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "site home: tcp://192.168.1.50:4001" in out
    assert "scanned at start" in out
    assert "devices: xt1, vt1, bsp" in out
    assert "group battery-1s: every 1 s, 3 values in 1 frames" in out


def test_log_runs_for_a_duration(tmp_path, capsys):
    sim = Simulator(seed=31)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        args = ["log", "--tcp", f"{host}:{port}", "--out", str(tmp_path), "--site", "cli"]
        args += ["--interval", "0.1", "--points", "essential,bsp:6001", "--devices", "xt1,bsp"]
        args += ["--duration", "1", "--no-status", "--flush-interval", "0.5"]
        assert main(args) == 0
    err = capsys.readouterr().err
    assert "stopped:" in err
    values = read_table(tmp_path, "values")
    assert set(values["address"]) == {101, 601}
    params = read_table(tmp_path, "parameters")
    assert set(params["number"]) == {6001} and len(params) >= 2  # read every cycle
    assert not any((tmp_path / "_journal").rglob("*.arrows")), "close() compacts the journal"


def test_sigterm_stops_cleanly(tmp_path):
    sim = Simulator(seed=32)
    rec = Recorder(sim)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        cmd = [
            sys.executable, "-m", "xcomlog", "log", "--tcp", f"{host}:{port}",
            "--out", str(tmp_path), "--interval", "0.05", "--devices", "xt1,xt2,bsp",
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(rec.snapshot()) < 20:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "stopped:" in err
    events = read_table(tmp_path, "events")
    assert list(events["kind"])[-1] == "stop"
    assert len(read_table(tmp_path, "values")) > 0


def test_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--seconds", "1.5", "--out", str(out), "--no-status"]) == 0
    text = capsys.readouterr().out
    assert "bytes per value" in text and "xcomlog.read" in text
    assert (out / "demo.png").stat().st_size > 1000
    assert len(read_table(out, "values")) > 0
    assert len(read_table(out, "parameters")) > 0
    # a second run replaces its own folder; a folder of other data is never touched
    from xcomlog.commands.demo import MARKER, _prepare_out

    _prepare_out(out)
    assert [p.name for p in out.iterdir()] == [MARKER]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(["demo", "--out", str(other)]) == 1
    assert (other / "keep.txt").read_text() == "x"
