"""Quantity reads (issue 12): live and SD-imported data of one installation line up.

One simulated installation, two ways: the logger reads it live over TCP (instantaneous
infos 7002, 11004, 15010), and the same installation's SD card, downloaded over the
protocol, is imported (minute averages 7032, 11043, 15061). ``xcomlog.read(...,
quantities=...)`` gives the same State of Charge and PV power per device from both.
"""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import numpy as np
import pytest

import xcomlog
from xcomlog import importer
from xcomlog.catalog import load_catalog
from xcomlog.client import XcomClient
from xcomlog.dataset import DatasetWriter
from xcomlog.exceptions import CatalogError
from xcomlog.logger import run_logger, simple_config
from xcomlog.quantities import read_quantities, unit_factor
from xcomlog.sim import Installation, Simulator

pd = pytest.importorskip("pandas")

QUANTITIES = ["State of Charge", "PV power"]
DEVICES = ["vt1", "vs1", "vs2", "bsp"]
POINTS = ["bsp:7002", "vt:11004", "vs:15010"]


def noon_zone() -> str:
    """A fixed zone where it is about noon now: the simulated PV produces while we log."""
    hour = dt.datetime.now(dt.timezone.utc).hour
    offset = 12 - hour  # UTC+offset; Etc/GMT-N is UTC+N
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}" if offset < 0 else "")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """(live dataset, SD-imported dataset, mixed dataset, local date) of one installation."""
    root = tmp_path_factory.mktemp("quantities")
    zone = noon_zone()
    inst = Installation(
        xtenders=1, variotracks=1, variostrings=2, timezone=zone, sd_days=1, site="twin"
    )
    live, sd, mixed = root / "live", root / "sd", root / "mixed"
    # Live: the logger reads the wall-clock simulator for a few seconds.
    sim = Simulator(inst, seed=4, message_every_s=0)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address[:2]
        url = f"tcp://{host}:{port}"
        for out in (live, mixed):
            cfg = simple_config(
                url, out, site="home", interval="1s", points=POINTS, devices=DEVICES,
                flush_interval=0.5, messages=False,
            )  # fmt: skip
            run_logger(cfg, duration=6.0)
    today = dt.datetime.now(ZoneInfo(zone)).date()
    # SD card: the same installation a day later lists today's file; download it.
    tomorrow = time.time() + 86400
    later = Simulator(inst, seed=4, message_every_s=0, start_time=tomorrow)
    with later.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address[:2]
        with XcomClient(f"tcp://{host}:{port}", timeout=5.0) as xcom:
            names = xcom.list_datalog_files()
            name = f"LG{today:%y%m%d}.CSV"
            assert name in names
            content = xcom.download_datalog_file(name)
    (root / name).write_bytes(content)
    for out in (sd, mixed):
        importer.import_paths([root / name], site="home", tz=zone, out=out, progress=False)
    return live, sd, mixed, today, zone


def ms(times) -> np.ndarray:
    return times.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)


def by_minute(frame, quantity: str, device: str) -> pd.Series:
    rows = frame[(frame["quantity"] == quantity) & (frame["device"] == device)]
    return rows.set_index(rows["time"].dt.floor("1min"))["value"]


@pytest.mark.timeout(120)
def test_live_and_imported_give_the_same_quantities(datasets):
    live_dir, sd_dir, _, today, zone = datasets
    live = xcomlog.read(live_dir, quantities=QUANTITIES, wide=False)
    sd = xcomlog.read(sd_dir, quantities=QUANTITIES, wide=False)
    assert set(live["source"].astype(str)) == {"7002 instant", "11004 instant", "15010 instant"}
    assert set(sd["source"].astype(str)) >= {
        "7032 minute avg",
        "11043 minute avg",
        "15061 minute avg",
    }
    assert set(live["statistic"].astype(str)) == {"instant"}
    assert set(sd["unit"].astype(str)) == {"%", "kW"}
    pairs = 0
    for quantity, device in [("State of Charge", "bsp"), ("PV power", "vt1"), ("PV power", "vs1"), ("PV power", "vs2")]:  # fmt: skip
        got = by_minute(live, quantity, device)
        want = by_minute(sd, quantity, device)
        assert len(got) >= 3, (quantity, device)
        for minute, value in got.items():
            if minute.tz_convert(zone).date() != today:
                continue
            # The answer may arrive just after the minute the device computed it in.
            candidates = [want.get(minute), want.get(minute - pd.Timedelta("1min"))]
            assert any(
                c is not None and abs(c - value) <= 0.006 + 1e-4 * abs(value) for c in candidates
            ), (quantity, device, minute, value, candidates)
            pairs += 1
    assert pairs >= 12
    # It is about noon on the simulated installation: the PV series are not all zero.
    assert by_minute(live, "PV power", "vs1").max() > 0.01


@pytest.mark.timeout(120)
def test_a_mixed_dataset_prefers_live_rows_and_fills_with_imported_ones(datasets):
    _, _, mixed_dir, today, zone = datasets
    mixed = xcomlog.read(mixed_dir, quantities=["state of charge"], wide=False)
    soc = mixed[mixed["device"] == "bsp"]
    live_rows = soc[soc["statistic"] == "instant"]
    sd_rows = soc[soc["statistic"] == "minute avg"]
    assert len(live_rows) >= 3 and len(sd_rows) > 1300
    # No imported minute within two minutes of a live row: one series, no doubles.
    live_ms, sd_ms = ms(live_rows["time"]), ms(sd_rows["time"])
    nearest = np.min(np.abs(sd_ms[:, None] - live_ms[None, :]), axis=1)
    assert nearest.min() > 120_000
    assert soc["time"].is_monotonic_increasing
    # The plain read still has both numbers.
    raw = xcomlog.read(mixed_dir, numbers=[7002, 7032], addresses="bsp", wide=False)
    assert set(raw["number"]) == {7002, 7032}

    wide = xcomlog.read(mixed_dir, quantities=["State of Charge", "PV power"], freq="1min")
    assert "bsp State of Charge [%]" in wide.columns and "vs2 PV power [kW]" in wide.columns
    assert set(wide["bsp State of Charge source"].dropna()) == {"7002 instant", "7032 minute avg"}
    assert wide.index.tz is not None and len(wide) >= 1400


def test_units_are_made_the_same(tmp_path):
    """3136 (kW) and the less accurate 3087 (W) are one quantity, in kW."""
    base = pd.Timestamp("2024-06-10T10:00", tz="UTC").value // 10**6
    with DatasetWriter(tmp_path, flush_interval=0.2) as writer:
        writer.append_values("s", np.array([base], np.int64), 101, 3087, np.float32(1500.0))
        later = np.array([base + 600_000], np.int64)
        writer.append_values("s", later, 101, 3136, np.float32(1.25))
        writer.append_values("s", later + 5000, 101, 3087, np.float32(1250.0))
    df = read_quantities(tmp_path, "Output active power")
    assert df["unit"].astype(str).tolist() == ["kW", "kW"]
    assert df["value"].tolist() == pytest.approx([1.5, 1.25])
    assert df["source"].astype(str).tolist() == ["3087 instant", "3136 instant"]
    assert unit_factor("Wh", "kWh") == 1e-3 and unit_factor("V", "Vdc") == 1.0
    assert unit_factor("kW", "%") is None


def test_unknown_quantity_and_empty_read(tmp_path):
    with DatasetWriter(tmp_path, flush_interval=0.2) as writer:
        writer.append_values("s", np.array([0], np.int64), 101, 3000, np.float32(50.0))
    with pytest.raises(CatalogError, match="did you mean 'State of Charge'"):
        xcomlog.read(tmp_path, quantities=["State of Chrge"])
    empty = xcomlog.read(tmp_path, quantities=["PV power"], wide=False)
    assert len(empty) == 0 and list(empty.columns)[:6] == [
        "time",
        "site",
        "device",
        "address",
        "quantity",
        "value",
    ]
    assert load_catalog().measuring("PV power")[0].number == 11004
