# ruff: noqa: F811 - pytest fixtures imported from fleet_fixtures
"""Several writers, one dataset on a real S3 API server: two logger processes, each owning
its own site, one killed with SIGKILL and restarted; afterwards every value each simulator
served is in the dataset exactly once, with its value and time, matched one to one against
the simulator's own record. The only exception is the killed writer's unjournalled tail:
values served just before SIGKILL that it held in memory (at most its last flush interval
and the answers in flight). Those are a contiguous tail before the kill, never a hole in
the middle nor a double, and the restarted writer loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fleet_fixtures import s3_bucket, s3_server  # noqa: F401 - fixtures
from test_logger import ms
from test_logger_support import Recorder, served_values

import xcomlog
from xcomlog.catalog import load_catalog
from xcomlog.protocol import ObjectType
from xcomlog.sim import Simulator

pytest.importorskip("pandas")

REPO = Path(__file__).resolve().parent.parent
FLUSH_S = 0.2


def write_config(path: Path, uri: str, journal: Path, site: str, port: int) -> Path:
    path.write_text(
        f'out = "{uri}"\n'
        f'journal = "{journal}"\n'
        'layout = "fleet"\n'
        f"flush_interval = {FLUSH_S}\n"
        "rotate_interval = 1\n"  # rotations and publishes during the test
        '[[group]]\nname = "main"\ninterval = 0.05\npoints = [3000]\n'
        f'[[site]]\nname = "{site}"\nlink = "tcp://127.0.0.1:{port}"\ndevices = ["xt1"]\n'
        "messages = false\n"
    )
    return path


def start(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xcomlog", "log", "--config", str(config), "--no-status"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )


def answered(rec: Recorder) -> list:
    """Answers to the logger's polls (one value each: one point on one device)."""
    polls = (ObjectType.USER_INFO, ObjectType.MULTI_INFO)
    return [s for s in rec.snapshot() if s.answer is not None and s.request.object_type in polls]


def wait_served(rec: Recorder, proc: subprocess.Popen, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(answered(rec)) < count:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the logger polled too slowly"
        time.sleep(0.05)


def test_two_writers_one_killed_every_value_once(s3_server, s3_bucket, tmp_path):
    uri = s3_server.uri(s3_bucket, "fleet")
    sims = {site: Simulator(seed=k + 40) for k, site in enumerate(("north", "south"))}
    recs = {site: Recorder(sim) for site, sim in sims.items()}
    with (
        sims["north"].serve_tcp("127.0.0.1", 0) as north,
        sims["south"].serve_tcp("127.0.0.1", 0) as south,
    ):
        configs = {
            site: write_config(tmp_path / f"{site}.toml", uri, tmp_path / f"j-{site}", site, port)
            for site, port in (("north", north.address[1]), ("south", south.address[1]))
        }
        procs = {site: start(cfg) for site, cfg in configs.items()}
        try:
            wait_served(recs["north"], procs["north"], 40)
            wait_served(recs["south"], procs["south"], 40)
            time.sleep(1.5)  # a rotation and a publish or two
            procs["north"].send_signal(signal.SIGKILL)
            procs["north"].wait(10)
            killed_ms = time.time_ns() // 1_000_000
            before_kill = len(answered(recs["north"]))
            procs["north"] = start(configs["north"])  # recovers its journal, publishes it
            wait_served(recs["north"], procs["north"], before_kill + 40)
            time.sleep(1.0)
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for site, proc in procs.items():
                _, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, (site, err)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()

    df = xcomlog.read(uri, wide=False)
    assert set(df["site"]) == {"north", "south"}
    assert not df.duplicated(["site", "time", "address", "number"]).any()
    # what a plain reader sees (every file of the store) has no double either, once the
    # writers stopped: merges' pieces are gone
    import pyarrow.dataset as pads

    plain = pads.dataset(
        f"{s3_bucket}/fleet/values", filesystem=s3_server.filesystem(), format="parquet"
    ).to_table()
    assert plain.num_rows == len(df)

    catalog = load_catalog()
    for site in ("north", "south"):
        assert len(answered(recs[site])) == len(polled(recs[site], catalog))
    # never killed: every value the simulator served, once, with its value and time
    assert_same_values(df[df["site"] == "south"], polled(recs["south"], catalog))
    # killed and restarted: every value served after the restart, once...
    north = df[df["site"] == "north"]
    served = polled(recs["north"], catalog)
    after = served[:, 0] > killed_ms
    stored_ms = ms(north["time"])
    assert_same_values(north[stored_ms > killed_ms], served[after])
    # ...and before the kill, the values served up to the last journalled one, in order:
    # the loss is only the tail the killed writer had not journalled yet (its last flush
    # interval and the answers in flight), bounded by what was served in the last second
    before = north[stored_ms <= killed_ms]
    served_before = served[~after]
    assert_same_values(before, served_before[: len(before)])
    lost = served_before[len(before) :]
    assert np.all(lost[:, 0] >= killed_ms - 1000), f"{len(lost)} values lost"
    names = {f.rsplit("/", 1)[1] for f in plain_files(s3_server, s3_bucket)}
    # <kind>-<writer id>-<file id>.parquet
    writers = {
        n.split("-", 1)[1].rsplit("-", 1)[0] for n in names if n.startswith(("live-", "day-"))
    }
    assert len(writers) == 2  # each writer's id in its file names


def polled(rec: Recorder, catalog) -> np.ndarray:
    """(t_out, next t_in, address, number, value) of every answer to the logger's polls."""
    rows = served_values(rec.snapshot(), catalog)
    return rows[rows[:, 3] == 3000]


def assert_same_values(df, served: np.ndarray) -> None:
    """The rows are the served values one to one: same address, value, and a time between
    the answer leaving the simulator and the next request arriving."""
    assert len(df) == len(served)
    df = df.sort_values("time")
    t = ms(df["time"])
    np.testing.assert_array_equal(df["address"].to_numpy(np.int64), served[:, 2].astype(np.int64))
    np.testing.assert_array_equal(df["value"].to_numpy(np.float32), served[:, 4].astype(np.float32))
    assert np.all(t >= served[:, 0]) and np.all(t <= served[:, 1])


def plain_files(server, bucket: str) -> list[str]:
    import pyarrow.fs as pafs

    infos = server.filesystem().get_file_info(
        pafs.FileSelector(f"{bucket}/fleet/values", recursive=True)
    )
    return [i.path for i in infos if i.type == pafs.FileType.File]
