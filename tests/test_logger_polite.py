"""Polite mode on the installation's clock (issue 10) and owned by the engine (issue 11).

The Studer portal uploads right after midnight on the installation's own clock (the RCC
time {5002}), which follows daylight saving time or drifts. ``clock = "installation"``
puts the quiet windows on that clock: the engine reads {5002} at start and hourly and
keeps its offset from UTC. The simulator's clock is set to other offsets than this
machine's, so a window in installation time and one in UTC differ.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from processes import run_xcomlog, sim_process
from test_engine import READ_3000, Clock, answer, drive, logger_session
from test_logger import config
from test_logger_support import Recorder, read_table, run_logger

from xcomlog import codec
from xcomlog.engine import OK, PolitePolicy, Receive, Sleep
from xcomlog.engine.session import clock_request
from xcomlog.exceptions import ConfigError
from xcomlog.logger.config import simple_config
from xcomlog.protocol import PARAM_DATE, ObjectType, Property, Service
from xcomlog.sim import Installation, Simulator

pytestmark = pytest.mark.timeout(60)

DEVICES = ["xt1", "bsp"]


def window_around(now: dt.datetime) -> str:
    """A window from the current minute to two minutes later, in ``now``'s clock."""
    start = now.replace(second=0, microsecond=0)
    return f"{start:%H:%M}-{start + dt.timedelta(minutes=2):%H:%M}"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def clock_answer(device_seconds: int) -> bytes:
    return codec.encode_response(
        Service.READ,
        ObjectType.PARAMETER,
        PARAM_DATE,
        Property.VALUE_QSP,
        int(device_seconds).to_bytes(4, "little", signed=True),
        src=501,
        dst=1,
    )


# --- the policy -------------------------------------------------------------------------------


def test_installation_windows_follow_the_read_offset():
    policy = PolitePolicy.parse("00:00-01:00", clock="installation")
    assert policy.clock_due(1000.0)
    t = float(int(time.time()))
    policy.clock_read_at = t
    # UTC+02:00 (summer time): the clock shows whole seconds, read 0.1 or 0.9 s into one
    assert policy.set_installation_clock(t + 7200, t + 0.9) == 7200.0
    assert policy.set_installation_clock(t + 7200, t + 0.1) == 7200.0
    assert not policy.clock_due(t + 3599) and policy.clock_due(t + 3600)
    got = policy.now()
    assert abs((got - utc_now()).total_seconds() - 7200) < 5
    # in installation time 00:30 is inside the window whatever the UTC time is
    assert policy.quiet_remaining(dt.datetime(2024, 6, 2, 0, 30)) == 30 * 60
    policy.installation_offset = None
    policy.clock_read_at = t
    assert policy.clock_due(t + 60) and not policy.clock_due(t + 59)  # a failed read: retry soon


def test_installation_clock_is_validated():
    with pytest.raises(ValueError, match="quiet clock"):
        PolitePolicy.parse("00:00-01:00", clock="rcc")
    with pytest.raises(ValueError, match="not both"):
        PolitePolicy.parse("00:00-01:00", clock="installation", tz="Europe/Zurich")
    cfg = simple_config(
        "tcp://h:1", "out", polite={"quiet": "00:00-01:00", "clock": "installation"}
    )
    assert cfg.sites[0].polite.clock == "installation"
    with pytest.raises(ConfigError, match="polite"):
        simple_config("tcp://h:1", "out", polite={"quiet": "00:00-01:00", "clock": "gmt"})
    local = PolitePolicy.parse("00:00-01:00")
    assert not local.clock_due(0.0)  # a local window never reads the installation clock


# --- the engine -------------------------------------------------------------------------------


def test_the_engine_reads_the_clock_before_its_first_request():
    clock = Clock()
    session = logger_session(clock)
    session.polite = PolitePolicy.parse("00:00-00:01", clock="installation")
    heard = []
    session.on_installation_clock = lambda offset, previous: heard.append((offset, previous))
    device = int(time.time()) - 3 * 3600  # an installation at UTC-03:00
    outcome, sent, sleeps = drive(session, session.run(READ_3000), [clock_answer(device), answer()])
    assert outcome.kind == OK
    assert sent == [clock_request(1).frame, READ_3000.frame]
    assert heard == [(-10800.0, None)] and session.polite.installation_offset == -10800.0
    # the next exchange does not read it again (hourly)
    outcome, sent, _ = drive(session, session.run(READ_3000), [answer()])
    assert outcome.kind == OK and sent == [READ_3000.frame]


def test_the_engine_waits_out_an_installation_window():
    clock = Clock()
    session = logger_session(clock)
    inst = utc_now() + dt.timedelta(hours=5)
    session.polite = PolitePolicy.parse(window_around(inst), clock="installation")
    device = int(time.time()) + 5 * 3600
    op = session.run(READ_3000)
    assert op.send(None).data == clock_request(1).frame  # Send the clock read
    assert isinstance(op.send(None), Receive)
    command = op.send(clock_answer(device))
    assert isinstance(command, Sleep) and 60 <= command.seconds <= 180
    op.close()


# --- the logger, against a simulator on another clock ----------------------------------------


def _recorded_numbers(rec: Recorder) -> list[int]:
    return [s.request.object_id for s in rec.snapshot()]


@pytest.mark.parametrize("zone, hours", [("Etc/GMT-5", 5), ("America/Sao_Paulo", -3)])
def test_logger_is_quiet_in_the_installation_window_only(tmp_path, zone, hours):
    sim = Simulator(Installation(timezone=zone), seed=61)
    rec = Recorder(sim)
    inst_now = utc_now() + dt.timedelta(hours=hours)
    cfg = config(
        tmp_path,
        [{"name": "e", "interval": 0.1, "points": ["essential"]}],
        polite={"quiet": window_around(inst_now), "clock": "installation"},
        devices=DEVICES,
        messages=False,
    )
    logger = run_logger(cfg, sim, duration=0.6)
    assert _recorded_numbers(rec) == [PARAM_DATE]  # the clock was read, then nothing
    events = read_table(tmp_path, "events")
    clock = events[events["kind"] == "clock"]
    sign = "+" if hours >= 0 else "-"
    assert list(clock["detail"]) == [
        f"installation clock is UTC{sign}{abs(hours):02d}:00: quiet windows follow it"
    ]
    quiet = events[events["kind"] == "quiet"]
    assert len(quiet) == 1 and "installation clock" in quiet["detail"].iloc[0]
    assert logger.sites[0].stats.state == "stopped"


def test_a_window_in_utc_is_not_quiet_on_an_installation_clock(tmp_path):
    sim = Simulator(Installation(timezone="Etc/GMT-5"), seed=62)
    rec = Recorder(sim)
    cfg = config(
        tmp_path,
        [{"name": "e", "interval": 0.1, "points": ["essential"]}],
        polite={"quiet": window_around(utc_now()), "clock": "installation"},
        devices=DEVICES,
        messages=False,
    )
    run_logger(cfg, sim, duration=20, until=lambda lg: lg.sites[0].stats.frames > 4)
    numbers = _recorded_numbers(rec)
    assert numbers[0] == PARAM_DATE and len(numbers) > 3  # polled: UTC is not its clock
    events = read_table(tmp_path, "events")
    assert (events["kind"] == "quiet").sum() == 0
    assert len(read_table(tmp_path, "values")) > 0


def test_the_offset_follows_a_clock_change(tmp_path, monkeypatch):
    """Hourly readings (here every 0.3 s) follow a DST change of the installation clock."""
    monkeypatch.setattr("xcomlog.engine.polite.CLOCK_READ_INTERVAL_S", 0.3)
    sim = Simulator(Installation(timezone="Etc/GMT-1"), seed=63)
    far = (utc_now() + dt.timedelta(hours=12)).replace(second=0, microsecond=0)
    cfg = config(
        tmp_path,
        [{"name": "e", "interval": 0.1, "points": ["essential"]}],
        polite={
            "quiet": f"{far:%H:%M}-{far + dt.timedelta(minutes=1):%H:%M}",
            "clock": "installation",
        },
        devices=DEVICES,
        messages=False,
    )
    # the installation's clock springs forward an hour while the logger runs
    timer = threading.Timer(0.5, lambda: sim.set_time(sim.now() + 3600))
    timer.start()
    try:
        run_logger(cfg, sim, duration=1.2)
    finally:
        timer.cancel()
    events = read_table(tmp_path, "events")
    details = list(events[events["kind"] == "clock"]["detail"])
    assert details == [
        "installation clock is UTC+01:00: quiet windows follow it",
        "installation clock is UTC+02:00 (was UTC+01:00): quiet windows follow it",
    ]


def test_log_command_quiet_clock_installation(tmp_path):
    """``xcomlog sim`` on UTC+05:00 and ``xcomlog log --quiet-clock installation``: two
    processes on loopback; the window is now in installation time, not in UTC."""
    site = tmp_path / "site.toml"
    site.write_text('timezone = "Etc/GMT-5"\n')
    with sim_process("--config", str(site)) as sim:
        window = window_around(utc_now() + dt.timedelta(hours=5))
        out = tmp_path / "data"
        log = run_xcomlog(
            "log", "--tcp", sim.address, "--out", str(out), "--devices", "xt1,bsp",
            "--interval", "0.2", "--duration", "2", "--no-status",
            "--quiet-window", window, "--quiet-clock", "installation",
        )  # fmt: skip
    assert log.returncode == 0, log.stderr
    events = read_table(out, "events")
    kinds = list(events["kind"])
    assert kinds.count("clock") == 1 and kinds.count("quiet") == 1, kinds
    assert "UTC+05:00" in events[events["kind"] == "clock"]["detail"].iloc[0]
    assert not (out / "values").exists() or len(read_table(out, "values")) == 0
