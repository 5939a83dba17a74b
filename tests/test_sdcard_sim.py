"""Cross-check with independent code: SD-card files the simulator writes parse back to the
simulator model's values at the addresses our mapping rule gives."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from xcomlog import importer, sdcard
from xcomlog.protocol import Family

sim_sdcard = pytest.importorskip("xcomlog.sim.sd_files")
responder = pytest.importorskip("xcomlog.sim.responder")

DAY = dt.date(2024, 6, 1)


@pytest.fixture(scope="module")
def simulated():
    sim = responder.Simulator(seed=3)
    return sim, sim_sdcard.render_day(sim, DAY)


def expected_value(sim, address: int, number: int, t: float) -> float:
    devices = [d for d in sim.installation.devices if d.family is not Family.RCC]
    if address == 501:  # Solar power (ALL)
        return sim.model.state(t).at("pv_kw")
    if 191 <= address <= 193:  # the master of the phase: its first Xtender
        phase = address - 190
        master = next(d for d in devices if d.family is Family.XTENDER and (d.phase or 1) == phase)
        return sim.model.value(master.address, number, t)
    multicast = {100: Family.XTENDER, 300: Family.VARIOTRACK, 700: Family.VARIOSTRING}
    if address in multicast:
        return sum(
            sim.model.value(d.address, number, t) for d in devices if d.family is multicast[address]
        )
    return sim.model.value(address, number, t)


def test_simulated_file_values_at_mapped_addresses(simulated):
    sim, data = simulated
    log = sdcard.parse_datalog(data, sim_sdcard.file_name(DAY))
    assert log.rows == 1440 and not log.issues and not log.truncated
    present = {d.address for d in sim.installation.devices}
    assert {c.address for c in log.columns} - present <= {191, 192, 193, 100, 300, 600, 700, 501}
    tz = sim.model.plant.tz
    utc = log.utc_ms(tz)
    for row in (0, 613, 1439):
        t = utc[row] / 1000.0
        for j, column in enumerate(log.columns):
            want = expected_value(sim, column.address, column.number, t)
            got = float(log.data[row, j])
            if column.integer:
                assert got == round(want), column
            else:
                assert got == pytest.approx(round(want, 2), abs=0.0051), column


def test_simulated_trailer_and_inventory(simulated):
    sim, data = simulated
    log = sdcard.parse_datalog(data, sim_sdcard.file_name(DAY))
    assert {d.address for d in log.devices} == {d.address for d in sim.installation.devices}
    assert {d.serial for d in log.devices} == {f"{d.fid:08X}" for d in sim.installation.devices}
    xts = [d.address for d in sim.installation.devices if d.family is Family.XTENDER]
    assert sorted(p.address for p in log.parameters if p.number == 1107) == sorted(xts)


def test_simulated_day_imports(simulated, tmp_path):
    sim, data = simulated
    summary = importer.import_bytes(
        sim_sdcard.file_name(DAY), data, site="sim", tz=sim.model.plant.tz, out=tmp_path
    )
    log = sdcard.parse_datalog(data, sim_sdcard.file_name(DAY))
    assert summary.ok and summary.values == int((~np.isnan(log.data)).sum()) + len(log.counters)
