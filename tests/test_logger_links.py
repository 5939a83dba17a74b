"""The logger over real links to the simulator: loopback TCP (both directions), UDP, a
pseudo-terminal; and the logger process killed with SIGKILL mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_logger import assert_dataset_matches, config, ms
from test_logger_support import Recorder, read_table, served_values

from xcomlog.catalog import load_catalog
from xcomlog.dataset import DatasetWriter
from xcomlog.logger.loop import Logger
from xcomlog.sim import FaultConfig, Simulator

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parent.parent


def run_over(cfg, duration: float) -> Logger:
    writer = DatasetWriter(cfg.out, flush_interval=cfg.flush_interval)
    logger = Logger(cfg, writer=writer)
    try:
        asyncio.run(logger.run(duration=duration))
    finally:
        writer.close()
    return logger


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tcp_with_faults_and_disconnects(tmp_path):
    faults = FaultConfig(
        junk=0.2,
        leading_ff=0.1,
        foreign_frames=0.2,
        drop=0.05,
        disconnect_every_s=0.4,
        disconnect_s=0.1,
    )
    sim = Simulator(seed=21, faults=faults)
    rec = Recorder(sim)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        cfg = config(
            tmp_path,
            [{"name": "e", "interval": 0, "points": ["essential"]}],
            link=f"tcp://{host}:{port}",
            timeout=0.2,
            messages=False,
        )
        logger = run_over(cfg, 1.1)
    assert_dataset_matches(tmp_path, rec.snapshot())
    stats = logger.sites[0].stats
    assert stats.link_drops >= 1 and stats.foreign_frames > 0
    events = read_table(tmp_path, "events")
    assert (events["kind"] == "link_down").sum() >= 1
    assert (events["kind"] == "link_up").sum() >= 2


def test_udp(tmp_path):
    sim = Simulator(seed=22)
    rec = Recorder(sim)
    reply = free_udp_port()
    with sim.serve_udp("127.0.0.1", 0, reply_port=reply) as link:
        host, port = link.address
        cfg = config(
            tmp_path,
            [{"name": "e", "interval": 0, "points": ["all-infos"]}],
            link=f"udp://{host}:{port}?reply_port={reply}",
            timeout=0.3,
        )
        logger = run_over(cfg, 0.5)
    assert logger.sites[0].stats.values > 0
    assert_dataset_matches(tmp_path, rec.snapshot())


def test_listen_for_a_moxa_in_tcp_client_mode(tmp_path):
    sim = Simulator(seed=23)
    rec = Recorder(sim)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config(
        tmp_path,
        [{"name": "e", "interval": 0, "points": ["essential"]}],
        link=f"listen://127.0.0.1:{port}",
        timeout=0.3,
    )
    with sim.connect_tcp("127.0.0.1", port, retry_s=0.05):
        logger = run_over(cfg, 0.8)
    assert logger.sites[0].stats.values > 0
    assert_dataset_matches(tmp_path, rec.snapshot())


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_pty(tmp_path):
    sim = Simulator(seed=24)
    rec = Recorder(sim)
    with sim.serve_pty() as link:
        cfg = config(
            tmp_path,
            [{"name": "e", "interval": 0, "points": ["essential"]}],
            link=f"serial://{link.path}?baud=115200",
            timeout=0.3,
        )
        logger = run_over(cfg, 0.8)
    assert logger.sites[0].stats.values > 0
    assert_dataset_matches(tmp_path, rec.snapshot())


def test_sigkill_loses_at_most_the_flush_interval(tmp_path):
    """kill -9 mid-run: the journal is recovered and only the last flush interval is lost."""
    flush = 0.5
    sim = Simulator(seed=25)
    rec = Recorder(sim)
    out = tmp_path / "data"
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        cmd = [
            sys.executable, "-m", "xcomlog", "log",
            "--tcp", f"{host}:{port}", "--out", str(out), "--site", "k",
            "--interval", "0.02", "--points", "essential",
            "--devices", "xt1,xt2,vt1,vs1,vs2,bsp",
            "--flush-interval", str(flush), "--no-status",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            # wait until it logs, then let it run past a few flushes
            while time.monotonic() < deadline and len(rec.snapshot()) < 50:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.05)
            time.sleep(4 * flush)
            t_kill = time.time_ns() // 1_000_000
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
    served = [s for s in rec.snapshot() if s.t_out <= t_kill]
    assert (out / "_journal").is_dir()
    DatasetWriter(out).close()  # a restart recovers the journal into Parquet
    df = read_table(out, "values")
    want = served_values(served, load_catalog())
    got_t = ms(df["time"])
    margin = flush * 1000 + 1000  # one flush interval plus scheduling slack
    for (address, number), part in df.groupby(["address", "number"]):
        mine = want[(want[:, 2] == address) & (want[:, 3] == number)]
        mine = mine[np.argsort(mine[:, 0], kind="stable")]
        t = got_t[part.index.to_numpy()]
        order = np.argsort(t, kind="stable")
        t, v = t[order], part["value"].to_numpy(np.float32)[order]
        # what survived is the first answers in order: same values, nothing twice, no extra
        assert len(t) <= len(mine)
        np.testing.assert_array_equal(v, mine[: len(t), 4].astype(np.float32))
        assert np.all(t >= mine[: len(t), 0]) and np.all(t <= mine[: len(t), 1])
        # and every answer older than the kill minus the flush interval is there
        assert len(t) >= np.count_nonzero(mine[:, 0] <= t_kill - margin) > 0
    assert len(df.groupby(["address", "number"])) == len({(r[2], r[3]) for r in want})
    # and the dataset opens everywhere
    import duckdb
    import pyarrow.dataset as ds

    assert ds.dataset(out / "values", format="parquet", partitioning="hive").count_rows() == len(df)
    sql = f"SELECT count(*) FROM read_parquet('{out}/values/**/*.parquet', hive_partitioning=true)"
    assert duckdb.sql(sql).fetchall()[0][0] == len(df)
    events = read_table(out, "events")
    assert (events["kind"] == "recovered").any()
