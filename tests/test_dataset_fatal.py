"""A dying writer thread is never silent (issue 15 item 7): impossible intervals are refused
with one sentence, a thread killed by any exception records a StorageError, and the logger
stops with it and a non-zero exit."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest
from test_logger_support import SimTransport

from xcomlog.cli import main
from xcomlog.dataset import DatasetWriter
from xcomlog.exceptions import ConfigError, StorageError
from xcomlog.logger.config import config_from_dict
from xcomlog.logger.loop import Logger
from xcomlog.sim import Simulator

pytestmark = pytest.mark.timeout(60)

T0 = 1_718_000_000_000


@pytest.mark.parametrize("bad", [math.inf, 1e308, 10**20, math.nan, -1, 0, "soon", None])
@pytest.mark.parametrize("name", ["flush_interval", "rotate_interval"])
def test_impossible_intervals_are_one_clear_error(tmp_path, name, bad):
    with pytest.raises(ConfigError, match=rf"{name} must be a number of seconds in \(0, 86400\]"):
        DatasetWriter(tmp_path, **{name: bad})
    DatasetWriter(tmp_path).close()  # nothing was left locked


def _kill_thread_with(writer: DatasetWriter, exc: BaseException) -> None:
    def boom() -> None:
        raise exc

    writer._flush_locked = boom  # the thread's next flush dies (as wait(inf) used to)


def test_a_thread_killed_by_any_exception_fails_the_writer(tmp_path):
    w = DatasetWriter(tmp_path, flush_interval=0.05)
    w.append_values("s", T0, 101, 3000, 1.0)
    w.flush()
    _kill_thread_with(w, OverflowError("timeout value is too large"))
    w.append_values("s", T0 + 1, 101, 3000, 2.0)
    deadline = time.monotonic() + 10
    while not w.failed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert w.failed
    assert isinstance(w.error, StorageError)
    assert "OverflowError" in str(w.error) and "Logging stopped" in str(w.error)
    with pytest.raises(StorageError, match="OverflowError"):
        w.raise_if_failed()
    with pytest.raises(StorageError, match="OverflowError"):
        w.append_values("s", T0 + 2, 101, 3000, 3.0)
    with pytest.raises(StorageError):
        w.close()
    # the journalled row is recovered by the next writer
    with DatasetWriter(tmp_path) as again:
        assert again.recovered[("values", "s")] == 1


def test_the_logger_stops_when_the_writer_dies_even_without_appends(tmp_path):
    """An hourly group appends once, then nothing for an hour: the logger must still stop
    within about a second of the writer's death, with its error."""
    cfg = config_from_dict(
        {
            "out": str(tmp_path),
            "site": [
                {
                    "name": "t",
                    "link": "tcp://127.0.0.1:1",
                    "devices": ["xt1", "bsp"],
                    "timeout": 0.2,
                    "group": [{"name": "slow", "interval": "1h", "points": ["essential"]}],
                }
            ],
        }
    )
    writer = DatasetWriter(tmp_path, flush_interval=0.2)
    logger = Logger(cfg, writer=writer, transport_factory=lambda url: SimTransport(Simulator()))

    async def scenario() -> float:
        task = asyncio.create_task(logger.run(duration=40))
        while writer.stats["rows_journalled"] == 0:  # the first cycle is stored
            await asyncio.sleep(0.05)
        _kill_thread_with(writer, OverflowError("cannot convert float infinity to integer"))
        writer.append_events("t", [{"time_ms": T0, "kind": "gap"}])  # wakes one more flush
        died = time.monotonic()
        with pytest.raises(StorageError, match="OverflowError"):
            await task
        return time.monotonic() - died

    assert asyncio.run(scenario()) < 5
    with pytest.raises(StorageError):
        writer.close()


@pytest.mark.parametrize("interval", ["inf", "1e308", "100000000000000000000"])
def test_cli_refuses_a_flush_interval_the_writer_cannot_keep(tmp_path, capsys, interval):
    sim = Simulator(seed=5)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        args = ["log", "--tcp", f"{host}:{port}", "--out", str(tmp_path), "--no-status"]
        args += ["--devices", "xt1", "--duration", "2", "--flush-interval", interval]
        code = main(args)
    err = capsys.readouterr().err
    assert code != 0
    assert "flush" in err.lower() and "Traceback" not in err
    assert np.isfinite(code)
