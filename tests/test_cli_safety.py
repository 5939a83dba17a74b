"""Writes that could harm an installation ask first; reads; the CLI as a Unix tool.

The confirmation runs the real command in a child process whose stdin and stderr are a
pseudo-terminal, against the simulator on loopback TCP.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

pytest.importorskip("xcomlog.sim.links")

from cli_support import run, tcp_options  # noqa: E402

from xcomlog.cli import main  # noqa: E402
from xcomlog.sim import Simulator  # noqa: E402

pytestmark = pytest.mark.timeout(60)

XCOMLOG = [sys.executable, "-m", "xcomlog"]


@pytest.fixture
def sim():
    simulator = Simulator(seed=5, message_every_s=0)
    simulator.set_value(101, 3000, 49.5)
    simulator.set_value(601, 7002, 81.0)
    return simulator


@pytest.fixture
def tcp(sim):
    with tcp_options(sim) as options:
        yield options


def on_terminal(argv: list[str], answer: str | None, timeout: float = 30.0) -> tuple[int, str]:
    """Run the CLI with stdin and stderr on a pty; type ``answer`` when it asks."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [*XCOMLOG, *argv], stdin=terminal, stderr=terminal, stdout=subprocess.PIPE
    )
    os.close(terminal)
    seen = b""
    answered = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if answer is not None and not answered and b"[y/N]" in seen:
            os.write(controller, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    out = proc.communicate(timeout=timeout)[0].decode()
    os.close(controller)
    return proc.returncode, seen.decode(errors="replace") + out


def test_write_needs_a_target(capsys, tcp, sim):
    with pytest.raises(SystemExit) as stop:
        main(["write", "1138", "12", *tcp])
    assert stop.value.code == 2
    assert "--device" in capsys.readouterr().err
    assert sim.parameter(101, 1138)[1] != 12.0


def test_write_to_a_list_and_to_a_family(capsys, tcp, sim):
    code, out, err = run(capsys, "write", "1138", "13", "--device", "xt1,xt2", *tcp)
    assert code == 0, err
    assert "xt1 1138" in out and "xt2 1138" in out
    assert sim.parameter(101, 1138)[1] == 13.0 and sim.parameter(102, 1138)[1] == 13.0
    code, out, err = run(capsys, "write", "1138", "15", "--device", "xt", *tcp)
    assert code == 0, err
    assert "every Xtender" in out
    assert sim.parameter(101, 1138)[1] == 15.0 and sim.parameter(102, 1138)[1] == 15.0


def test_expert_parameter_is_refused_without_terminal_or_yes(capsys, tcp, sim):
    before = sim.parameter(101, 1143)
    code, _, err = run(capsys, "write", "1143", "46", "--device", "xt1", *tcp)
    assert code == 1
    [line] = err.strip().splitlines()
    assert "Expert-level parameter 1143" in line and "--yes" in line and "RAM" in line
    assert sim.parameter(101, 1143) == before
    code, out, err = run(capsys, "write", "1143", "46", "--device", "xt1", "--yes", *tcp)
    assert code == 0, err
    assert sim.parameter(101, 1143)[1] == 46.0
    assert "written to RAM only" in out


def test_signal_says_it_acts_at_once(capsys, tcp, sim):
    code, _, err = run(capsys, "write", "1287", "1", "--device", "xt1", *tcp)
    assert code == 1 and "signal 1287" in err and "acts at once" in err
    code, _, err = run(capsys, "write", "1287", "1", "--device", "xt1", "--flash", "--yes", *tcp)
    assert code == 1 and "--flash does not apply" in err
    code, out, err = run(capsys, "write", "1287", "1", "--device", "xt1", "--yes", *tcp)
    assert code == 0, err
    assert "acted at once" in out and "RAM" not in out.replace("RAM and flash do not", "")
    code, out, err = run(capsys, "write", "1287", "1", "--device", "xt1", "--yes", "--json", *tcp)
    assert code == 0 and json.loads(out)["stored_in"] == "signal"


def test_confirmation_on_a_terminal(tcp, sim):
    sim.restarted = True
    argv = ["write", "5104", "1", "--device", "gateway", *tcp]
    code, text = on_terminal(argv, "n")
    assert code == 1, text
    assert "Clears the restart flag" in text and "acts at once" in text
    assert "nothing was written" in text
    assert sim.restarted is True
    code, text = on_terminal(argv, "y")
    assert code == 0, text
    assert "acted at once" in text
    assert sim.restarted is False
    before = sim.parameter(101, 1143)
    code, text = on_terminal(["write", "1143", "47", "--device", "xt1", "--flash", *tcp], "")
    assert code == 1 and "flash (kept across restarts)" in text
    assert sim.parameter(101, 1143) == before


def test_read_prop_min_prints_the_minimum(capsys, tcp):
    code, out, err = run(capsys, "read", "1143", "--device", "xt1", "--prop", "min", "--json", *tcp)
    assert code == 0, err
    assert json.loads(out)[0]["value"] == 36.0  # the appendix minimum, not the value 49.9
    code, out, _ = run(capsys, "read", "1143", "--device", "xt1", "--prop", "min", *tcp)
    assert code == 0 and "[min]  36 Vdc" in out
    code, _, err = run(capsys, "read", "3000", "--device", "xt1", "--prop", "min", *tcp)
    assert code == 1
    [line] = err.strip().splitlines()
    assert "--prop min applies to parameters" in line and "3000" in line


def test_mixed_family_read(capsys, tcp):
    code, out, err = run(capsys, "read", "3000", "7002", "--device", "xt1,bsp", "--json", *tcp)
    assert code == 0, err
    rows = {(r["device"], r["number"]): r["value"] for r in json.loads(out)}
    assert rows == {("xt1", 3000): 49.5, ("bsp", 7002): 81.0}
    code, _, err = run(capsys, "read", "11004", "--device", "xt1,bsp", *tcp)
    assert code == 1 and "none of the devices xt1, bsp" in err


def test_values_print_at_their_units_precision(capsys, tcp, sim):
    sim.set_value(101, 3136, 3.572e-21)
    sim.set_value(101, 3000, 48.756512)
    code, out, err = run(capsys, "read", "3136", "3000", "--device", "xt1", *tcp)
    assert code == 0, err
    assert "0 kW" in out and "e-" not in out
    assert "48.76 V" in out


def test_closed_pipe_is_quiet():
    reader, writer = os.pipe()
    os.close(reader)  # nobody reads: the first write fails with EPIPE
    proc = subprocess.run(
        [*XCOMLOG, "catalog", "tree", "--family", "xt"],
        stdout=writer,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    os.close(writer)
    assert proc.returncode in (0, 141)
    assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr


def test_closed_pipe_after_some_output():
    proc = subprocess.Popen(
        [*XCOMLOG, "catalog", "tree"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 141)
    assert b"Traceback" not in err
