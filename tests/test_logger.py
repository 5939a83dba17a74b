"""The read loop against the simulator in-process: values, times, gaps and their events."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from test_logger_support import (
    CallbackSimTransport,
    Recorder,
    SimTransport,
    read_table,
    run_logger,
    served_values,
)

from xcomlog import codec
from xcomlog.catalog import load_catalog
from xcomlog.engine import Framer
from xcomlog.exceptions import ConfigError, StorageError
from xcomlog.logger.config import config_from_dict
from xcomlog.logger.loop import Logger
from xcomlog.logger.scheduling import aligned_tick as _aligned_tick
from xcomlog.protocol import ErrorCode, ObjectType, Service, ServiceFlag
from xcomlog.sim import FaultConfig, Simulator

pytestmark = pytest.mark.timeout(60)

DEVICES = ["xt1", "xt2", "vt1", "vs1", "vs2", "bsp"]


def config(out, groups, **site):
    table = {
        "out": str(out),
        "flush_interval": 0.5,
        "site": [
            {
                "name": "t",
                "link": "tcp://127.0.0.1:1",
                "devices": DEVICES,
                "timeout": 0.1,
                "retries": 0,
                "backoff": ["0.02s", "0.1s"],
                "group": groups,
                **site,
            }
        ],
    }
    return config_from_dict(table)


def ms(series) -> np.ndarray:
    """Milliseconds since 1970 of a pandas datetime column, whatever its resolution."""
    return series.dt.tz_convert("UTC").astype("datetime64[ms, UTC]").astype("int64").to_numpy()


def assert_dataset_matches(out, served, *, via_xcomlog: bool = False):
    """Every intact answer is in the dataset, once, with its value, address, number and a
    time between the answer leaving the simulator and the next request arriving."""
    df = read_table(out, "values", via_xcomlog=via_xcomlog)
    want = served_values(served, load_catalog())
    assert len(df) == len(want) > 0
    got_t = ms(df["time"])
    got = np.column_stack([df["address"].to_numpy(), df["number"].to_numpy()]).astype(np.int64)
    order_got = np.lexsort((got_t, got[:, 1], got[:, 0]))
    order_want = np.lexsort((want[:, 0], want[:, 3], want[:, 2]))
    got, got_t = got[order_got], got_t[order_got]
    values = df["value"].to_numpy(dtype=np.float32)[order_got]
    want = want[order_want]
    np.testing.assert_array_equal(got[:, 0], want[:, 2].astype(np.int64))
    np.testing.assert_array_equal(got[:, 1], want[:, 3].astype(np.int64))
    np.testing.assert_array_equal(values, want[:, 4].astype(np.float32))
    assert np.all(got_t >= want[:, 0]) and np.all(got_t <= want[:, 1])
    return df


#: The two ways answers reach the read loop: the coroutine exchange (one multi-info frame
#: per cycle) and bursts sent from the link's data callback (seven frames per cycle),
#: also with every answer split in two chunks, which bursts hand to the coroutine path.
LINKS = {
    "coroutine": (lambda sim, **kw: SimTransport(sim, **kw), "essential"),
    "burst": (lambda sim, **kw: CallbackSimTransport(sim, **kw), "all-infos"),
    "burst-split": (lambda sim, **kw: CallbackSimTransport(sim, split=True, **kw), "all-infos"),
}


def check_burst_use(link: str, transport) -> None:
    """The burst variants really ran bursts (or, with split answers, really fell back)."""
    if link == "burst":
        assert transport.callback_sends > transport.sends / 2
    elif link == "burst-split":
        assert transport.sends > 0 and transport.callback_sends == 0


@pytest.mark.parametrize("link", list(LINKS))
def test_values_equal_what_the_simulator_served(tmp_path, link):
    sim = Simulator(seed=1)
    rec = Recorder(sim)
    make, points = LINKS[link]
    transport = make(sim)
    cfg = config(tmp_path, [{"name": "all", "interval": 0, "points": [points]}])
    logger = run_logger(cfg, sim, duration=0.4, transport=transport)
    df = assert_dataset_matches(tmp_path, rec.snapshot(), via_xcomlog=True)
    check_burst_use(link, transport)
    stats = logger.sites[0].stats
    assert stats.values == len(df) and stats.timeouts == 0
    assert stats.requests == len(rec.snapshot()) == stats.frames
    # every request of the group is a multi-info frame; the logger never writes
    assert all(s.request.service_id == Service.READ for s in rec.snapshot())
    assert sim.flash_writes == {}
    # labels travel with the dataset
    import xcomlog

    names = xcomlog.read(tmp_path, table="datapoints")
    row = names[(names["address"] == 601) & (names["number"] == 7002)].iloc[0]
    assert (row["name"], row["unit"]) == ("State of Charge", "%")


def failure_streaks(served):
    """Runs of consecutive failed answers (lost, corrupted or an error) of each multi-info
    request (the same frame asked every cycle), as the logger counts them: [(arrival of
    the first failed request, arrival of the request sent after it, answer time of the
    success that ends the run or None, arrival of the request sent after that success)]."""
    group = [s for s in served if s.request.object_type == ObjectType.MULTI_INFO]
    after = {id(s): group[k + 1].t_in if k + 1 < len(group) else 2**62 for k, s in enumerate(group)}
    failing: dict[tuple[int, bytes], object] = {}
    streaks = []
    for s in group:
        key = (s.request.dst, bytes(s.request.data))
        ok = s.answer is not None and not s.answer.service_flags & ServiceFlag.ERROR
        if not ok and key not in failing:
            failing[key] = s
        elif ok and key in failing:
            first = failing.pop(key)
            streaks.append((first.t_in, after[id(first)], s.t_out, after[id(s)]))
    streaks += [(first.t_in, after[id(first)], None, None) for first in failing.values()]
    return sorted(streaks)


@pytest.mark.parametrize("link", list(LINKS))
def test_faults_every_gap_has_an_event(tmp_path, link):
    faults = FaultConfig(
        drop=0.15, corrupt=0.1, junk=0.2, leading_ff=0.1, foreign_frames=0.2, busy=0.05
    )
    sim = Simulator(seed=3, faults=faults)
    rec = Recorder(sim)
    make, points = LINKS[link]
    transport = make(sim)
    cfg = config(tmp_path, [{"name": "e", "interval": 0, "points": [points]}], messages=False)
    logger = run_logger(cfg, sim, duration=1.2, transport=transport)
    served = rec.snapshot()
    if link == "burst":
        assert transport.callback_sends > 0
    assert_dataset_matches(tmp_path, served)
    events = read_table(tmp_path, "events")
    ev_t = ms(events["time"])
    kinds = events["kind"].to_numpy()
    starts = ev_t[np.isin(kinds, ["timeout", "device_error", "bad_frame"])]
    resumed = ev_t[kinds == "resumed"]
    streaks = failure_streaks(served)
    assert len(streaks) >= 5, "the faults should have caused gaps"
    assert len(starts) == len(streaks)
    assert len(resumed) == sum(1 for s in streaks if s[2] is not None)
    # each gap opens with an event before the next request and closes with one after the
    # answer that ends it
    for (first, after, _, _), t_start in zip(streaks, np.sort(starts), strict=True):
        assert first <= t_start <= after
    # (a request's run can end after a later request's run started: resumes in their order)
    ended = sorted((s[2], s[3]) for s in streaks if s[2] is not None)
    for (ok_out, ok_next), t_res in zip(ended, np.sort(resumed), strict=True):
        assert ok_out <= t_res <= ok_next
    stats = logger.sites[0].stats
    assert stats.foreign_frames > 0  # another client's frames were seen and ignored
    assert stats.timeouts + stats.device_errors + stats.damaged_frames >= len(streaks)
    assert stats.damaged_frames > 0  # corrupted answers were retried at once


class SlowTransport(SimTransport):
    async def send(self, data: bytes) -> None:
        await asyncio.sleep(0.03)
        await super().send(data)


def test_missed_intervals_are_events(tmp_path):
    sim = Simulator(seed=4)
    cfg = config(tmp_path, [{"name": "all", "interval": 0.1, "points": ["all-infos"]}])
    logger = run_logger(
        cfg,
        sim,
        duration=20,
        transport=SlowTransport(sim),
        until=lambda lg: lg.sites[0].stats.missed >= 2,
    )
    events = read_table(tmp_path, "events")
    missed = events[events["kind"] == "missed"]
    stats = logger.sites[0].stats
    assert len(missed) > 0 and stats.missed >= len(missed)
    counts = missed["detail"].str.extract(r"(\d+) interval")[0].astype(int)
    assert counts.sum() == stats.missed
    # a missed event is stamped with the wall-clock tick that was missed
    assert np.all(ms(missed["time"]) % 100 == 0)


def test_parameters_snapshot_and_no_writes(tmp_path):
    sim = Simulator(seed=5)
    rec = Recorder(sim)
    points = ["xt1:1107", "xt2:1138", "bsp:6001", "xt1:1552", "vs1:14001"]
    cfg = config(tmp_path, [{"name": "p", "interval": "1h", "points": points}])
    run_logger(cfg, sim, duration=0.6)
    params = read_table(tmp_path, "parameters")
    assert len(params) == len(points)
    cat = load_catalog()
    for row in params.itertuples():
        flash, _ram = sim.parameter(int(row.address), int(row.number))
        assert row.value == pytest.approx(float(flash), rel=1e-6)
        dp = cat.at(int(row.number), int(row.address))
        if dp.options:
            assert row.text == cat.label(dp, int(flash))
    assert sim.flash_writes == {}
    assert not any(s.request.service_id == Service.WRITE for s in rec.snapshot())


def test_messages_are_read_with_their_text(tmp_path):
    sim = Simulator(seed=6, message_every_s=0)
    cat = load_catalog()
    number = sorted(cat.messages)[3]
    for k in range(3):  # three new ones: all read, newest first, none twice
        sim.add_message(number + k, 102, timestamp=1_700_000_000 + k)
    cfg = config(tmp_path, [{"name": "e", "interval": 0.2, "points": ["essential"]}])
    logger = run_logger(cfg, sim, duration=20, until=lambda lg: lg.sites[0].stats.messages >= 3)
    messages = read_table(tmp_path, "messages")
    for k in range(3):
        hit = messages[(messages["number"] == number + k) & (messages["address"] == 102)]
        assert len(hit) == 1
        assert hit.iloc[0]["text"] == cat.messages[number + k].text
        assert ms(hit["time"])[0] == (1_700_000_000 + k) * 1000
    assert logger.sites[0].stats.messages == len(messages)
    assert len(messages) == len(
        set(zip(messages["address"], messages["number"], ms(messages["time"]), strict=True))
    )


class NoMultiInfo(SimTransport):
    async def send(self, data: bytes) -> None:
        frame = codec.decode_frame(data)
        if frame.object_type == ObjectType.MULTI_INFO:
            await asyncio.sleep(0)
            self.buf += codec.encode_response(
                Service.READ,
                ObjectType.MULTI_INFO,
                1,
                1,
                src=501,
                dst=1,
                error_code=ErrorCode.SERVICE_NOT_SUPPORTED,
            )
            return
        await super().send(data)


def test_single_reads_when_multi_info_is_refused(tmp_path):
    sim = Simulator(seed=7)
    rec = Recorder(sim)
    cfg = config(tmp_path, [{"name": "e", "interval": 0, "points": ["essential"]}], messages=False)
    run_logger(cfg, sim, duration=0.8, transport=NoMultiInfo(sim))
    served = rec.snapshot()
    assert served and all(s.request.object_type == ObjectType.USER_INFO for s in served)
    assert_dataset_matches(tmp_path, served)
    events = read_table(tmp_path, "events")
    assert events["detail"].str.contains("one by one").any()


@pytest.mark.parametrize("link", list(LINKS))
def test_link_drops_reconnect_and_are_events(tmp_path, link):
    sim = Simulator(seed=8)
    rec = Recorder(sim)
    make, points = LINKS[link]
    transport = make(sim, fail_every=40)
    cfg = config(tmp_path, [{"name": "e", "interval": 0, "points": [points]}], messages=False)
    logger = run_logger(
        cfg,
        sim,
        duration=20,
        transport=transport,
        until=lambda lg: lg.sites[0].stats.link_drops >= 2 and transport.opens >= 3,
    )
    check_burst_use(link, transport)
    assert transport.opens >= 3
    events = read_table(tmp_path, "events")
    assert (events["kind"] == "link_down").sum() == logger.sites[0].stats.link_drops >= 2
    assert (events["kind"] == "link_up").sum() == transport.opens
    assert_dataset_matches(tmp_path, rec.snapshot())


def test_restart_flag_is_an_event(tmp_path):
    sim = Simulator(seed=9, restarted=False, faults=FaultConfig(restart_every_s=0.2))
    cfg = config(
        tmp_path, [{"name": "e", "interval": 0.05, "points": ["essential"]}], messages=False
    )
    run_logger(cfg, sim, duration=20, until=lambda lg: lg.sites[0]._restart_flag is True)
    events = read_table(tmp_path, "events")
    assert events["detail"].str.contains("gateway restarted").any()


def test_devices_are_discovered(tmp_path):
    sim = Simulator(seed=10)
    cfg = config(
        tmp_path, [{"name": "e", "interval": 0.2, "points": ["essential"]}], devices="auto"
    )
    logger = run_logger(cfg, sim, duration=20, until=lambda lg: lg.sites[0].stats.values > 0)
    plan = logger.sites[0].plan
    assert [d.name for d in plan.devices] == ["xt1", "xt2", "vt1", "vs1", "vs2", "bsp"]
    devices = read_table(tmp_path, "devices")
    assert sorted(devices["device"]) == sorted(["xt1", "xt2", "vt1", "vs1", "vs2", "bsp"])


def test_a_site_with_nothing_to_log_stops_alone(tmp_path):
    from xcomlog.dataset import DatasetWriter
    from xcomlog.sim import Installation

    sims = {
        "tcp://127.0.0.1:1": Simulator(Installation(variotracks=0, variostrings=0), seed=15),
        "tcp://127.0.0.1:2": Simulator(seed=16),
    }
    table = {
        "out": str(tmp_path),
        "site": [
            {"name": "novt", "link": "tcp://127.0.0.1:1", "devices": "auto", "timeout": 0.1,
             "group": [{"name": "pv", "interval": 0.1, "points": ["vt:essential"]}]},
            {"name": "ok", "link": "tcp://127.0.0.1:2", "devices": DEVICES, "timeout": 0.1,
             "group": [{"name": "e", "interval": 0.1, "points": ["essential"]}]},
        ],
    }  # fmt: skip
    cfg = config_from_dict(table)
    writer = DatasetWriter(tmp_path)
    logger = Logger(cfg, writer=writer, transport_factory=lambda url: SimTransport(sims[url]))
    asyncio.run(logger.run(duration=0.8))  # no exception: one site is still logging
    writer.close()
    assert list(logger.failed) == ["novt"]
    novt, ok = logger.sites
    assert novt.stats.values == 0 and ok.stats.values > 0
    events = read_table(tmp_path, "events")
    stopped = events[events["kind"] == "config_error"]
    assert list(stopped["site"]) == ["novt"]
    assert stopped["detail"].str.contains("nothing to log").all()


def test_polite_quiet_window_sends_nothing(tmp_path):
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    start = now.replace(second=0, microsecond=0)
    end = start + dt.timedelta(minutes=2)
    window = f"{start:%H:%M}-{end:%H:%M}"
    sim = Simulator(seed=11)
    rec = Recorder(sim)
    cfg = config(
        tmp_path,
        [{"name": "e", "interval": 0, "points": ["essential"]}],
        polite={"quiet": window, "tz": "UTC"},
        devices=DEVICES,
    )
    logger = run_logger(cfg, sim, duration=0.5)
    assert rec.snapshot() == []  # not one request inside the portal's window
    events = read_table(tmp_path, "events")
    assert (events["kind"] == "quiet").sum() == 1
    assert logger.sites[0].stats.state == "stopped"


def test_polite_duty_cycle_leaves_the_link_free(tmp_path):
    sim = Simulator(seed=14)
    rec = Recorder(sim)
    cfg = config(
        tmp_path,
        [{"name": "e", "interval": 0, "points": ["essential"]}],
        polite={"duty_cycle": 0.25},
        messages=False,
    )
    run_logger(cfg, sim, duration=0.8, transport=SlowTransport(sim))
    t_in = np.array([s.t_in for s in rec.snapshot()])
    assert len(t_in) >= 2
    # each exchange takes >= 30 ms (the slow link), so >= 90 ms of silence follows it
    assert np.all(np.diff(t_in) >= 30 + 90 - 2)


class FailingWriter:
    """A writer whose disk fills up after a few appends."""

    def __init__(self, real, after: int) -> None:
        self.real = real
        self.after = after

    def __getattr__(self, name):
        return getattr(self.real, name)

    def append_values(self, *args):
        self.after -= 1
        if self.after < 0:
            raise StorageError("disk full (simulated)")
        self.real.append_values(*args)


def test_storage_error_stops_the_logger(tmp_path):
    from xcomlog.dataset import DatasetWriter

    sim = Simulator(seed=12)
    cfg = config(tmp_path, [{"name": "e", "interval": 0, "points": ["essential"]}])
    real = DatasetWriter(tmp_path)
    logger = Logger(
        cfg, writer=FailingWriter(real, 5), transport_factory=lambda url: SimTransport(sim)
    )
    with pytest.raises(StorageError, match="disk full"):
        asyncio.run(logger.run(duration=10))
    real.close()
    assert len(read_table(tmp_path, "values")) > 0  # what was written before stays readable


def test_unknown_point_is_a_config_error(tmp_path):
    sim = Simulator(seed=13)
    cfg = config(tmp_path, [{"name": "e", "interval": 1, "points": [2999]}])
    with pytest.raises(ConfigError, match="2999"):
        run_logger(cfg, sim, duration=5)


def test_framer_resyncs_on_damage():
    frames = [
        codec.encode_response(
            Service.READ, ObjectType.USER_INFO, 3000 + i, 1, b"\x00\x00\x80\x3f", src=101
        )
        for i in range(5)
    ]
    bad = bytearray(frames[1])
    bad[20] ^= 0x10  # data checksum breaks
    stream = b"\xff\x00" + frames[0] + bytes(bad) + b"\xaa\x01" + frames[2] + frames[3] + frames[4]
    framer = Framer()
    out = []
    for i in range(0, len(stream), 7):  # arbitrary chunking
        out += framer.feed(stream[i : i + 7])
    assert out == [frames[0], frames[2], frames[3], frames[4]]
    assert framer.bad_frames >= 1 and framer.junk_bytes >= 2


def test_aligned_ticks():
    assert _aligned_tick(125.3, 60, 0) == 120
    assert _aligned_tick(125.3, 60, 10) == 70
    assert _aligned_tick(3600 * 5 + 29, 3600, 30) == 3600 * 4 + 30
