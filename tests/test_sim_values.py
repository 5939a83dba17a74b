"""Moving values: day curves, battery following charge and discharge, counters that only
grow and restart at midnight, state enums that change, determinism, SD-card replay."""

from __future__ import annotations

import datetime as dt

import pytest

from xcomlog.catalog import load_catalog
from xcomlog.protocol import Family, vs, vt, xt
from xcomlog.sim import Installation, Simulator

ZONE = "Europe/Zurich"


def at(sim: Simulator, day: dt.date, hour: float) -> None:
    from zoneinfo import ZoneInfo

    local = dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(ZONE)) + dt.timedelta(
        hours=hour
    )
    sim.set_time(local.timestamp(), speed=0.0)


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(Installation(timezone=ZONE, messages=0), message_every_s=0, seed=1)


SUMMER = dt.date(2024, 6, 21)


def test_pv_follows_the_sun(sim):
    at(sim, SUMMER, 1.0)
    night = [sim.value(vt(1), 11004), sim.value(vs(1), 15010), sim.value(vs(2), 15010)]
    at(sim, SUMMER, 13.0)
    noon = [sim.value(vt(1), 11004), sim.value(vs(1), 15010), sim.value(vs(2), 15010)]
    assert night == [0.0, 0.0, 0.0]
    assert all(p > 0.1 for p in noon)
    assert all(p <= sim.installation.pv_peak_kw * 1.2 for p in noon)


def test_battery_follows_charge_and_discharge(sim):
    at(sim, SUMMER, 2.0)
    night_i, night_soc = sim.value(601, 7001), sim.value(601, 7002)
    at(sim, SUMMER, 5.0)
    dawn_soc = sim.value(601, 7002)
    assert night_i < 0  # the inverters draw from the battery at night
    assert dawn_soc < night_soc
    at(sim, SUMMER, 11.0)
    assert sim.value(601, 7001) > 0  # charging under the sun
    # Battery power is voltage times current.
    assert sim.value(601, 7003) == pytest.approx(
        sim.value(601, 7000) * sim.value(601, 7001), rel=0.02
    )
    # The Xtenders' battery voltage is the BSP's (one battery).
    assert sim.value(xt(1), 3000) == pytest.approx(sim.value(601, 7000), abs=0.1)
    soc = []
    for hour in range(0, 24):
        at(sim, SUMMER, hour + 0.5)
        soc.append(sim.value(601, 7002))
    assert all(0.0 <= s <= 100.0 for s in soc)
    assert max(soc[10:18]) > min(soc[:8])  # charged during the day


def test_energy_counters_grow_and_restart_at_midnight(sim):
    counters = [(xt(1), 3083), (vt(1), 11007), (vs(2), 15017), (601, 7007)]
    previous_day = {
        (xt(1), 3083): 3082,
        (vt(1), 11007): 11011,
        (vs(2), 15017): 15027,
        (601, 7007): 7009,
    }
    series = {c: [] for c in counters}
    for minute in range(0, 24 * 60, 37):
        at(sim, SUMMER, minute / 60)
        for c in counters:
            series[c].append(sim.value(*c))
    for c, values in series.items():
        assert all(b >= a for a, b in zip(values, values[1:], strict=False)), c
        assert values[-1] > 0, c
    at(sim, SUMMER, 24 - 1 / 3600)
    before = {c: sim.value(*c) for c in counters}
    at(sim, SUMMER + dt.timedelta(days=1), 1 / 60)
    for c in counters:
        assert sim.value(*c) < before[c] * 0.2 + 0.05, c  # restarted
        yesterday = sim.value(c[0], previous_day[c])
        assert yesterday == pytest.approx(before[c], rel=0.01, abs=0.01), c
    # Totals only grow, day after day.
    totals = []
    for day in range(3):
        at(sim, SUMMER + dt.timedelta(days=day), 12)
        totals.append(sim.value(vs(1), 15023))
    assert totals[0] < totals[1] < totals[2]


def test_state_enums_change_with_the_day(sim):
    catalog = load_catalog()
    mode = catalog.get(11016, family=Family.VARIOTRACK)
    at(sim, SUMMER, 1)
    night = sim.value(vt(1), 11016)
    at(sim, SUMMER, 13)
    day = sim.value(vt(1), 11016)
    assert night != day and night in mode.options and day in mode.options
    phases = set()
    for hour in range(24):
        at(sim, SUMMER, hour)
        phases.add(sim.value(xt(1), 3010))
    assert len(phases) >= 2
    assert phases <= set(catalog.get(3010, family=Family.XTENDER).options)


def test_every_info_of_every_device_has_a_finite_value(sim):
    import math

    at(sim, SUMMER, 15)
    catalog = load_catalog()
    for device in sim.installation.devices:
        for dp in catalog.datapoints(family=device.family, kind="info"):
            value = sim.value(device.address, dp.number)
            assert math.isfinite(float(value)), (device.name, dp.number)
            if dp.options:
                assert value in dp.options, (device.name, dp.number, value)


def test_values_depend_on_the_seed_only():
    def sample(seed):
        s = Simulator(Installation(timezone=ZONE, messages=0), message_every_s=0, seed=seed)
        out = []
        for hour in (3, 9, 12, 17):
            at(s, SUMMER, hour)
            out.append((s.value(vs(1), 15010), s.value(601, 7002), s.value(xt(2), 3136)))
        return out

    assert sample(4) == sample(4)
    assert sample(4) != sample(5)


def test_identification_infos_follow_the_spec_encoding(sim):
    msb, lsb = sim.value(xt(1), 3130), sim.value(xt(1), 3131)
    version = (int(msb) << 16) | int(lsb)
    x, y, z = sim.installation.devices[0].software
    assert (version >> 24, (version >> 8) & 0xFF, version & 0xFF) == (x, y, z)
    fid = (int(sim.value(xt(1), 3156)) << 16) | int(sim.value(xt(1), 3157))
    assert fid == sim.installation.devices[0].fid


def test_replay_serves_the_logged_minute(sd_datalog_dir):
    from xcomlog.sim.replay import installation_for

    path = sd_datalog_dir / "LG180713.CSV"
    sim = Simulator(installation_for(path, messages=0), message_every_s=0)
    assert (sim.installation.xtenders, sim.installation.phases) == (3, (1, 2, 3))
    assert (sim.installation.variotracks, sim.installation.variostrings) == (1, 2)
    # Read the file independently: the row of 12:34 and the columns of I3092 and I15061.
    lines = path.read_bytes().decode("latin-1").splitlines()
    numbers, devices = lines[1].split(","), lines[2].split(",")
    row = next(line for line in lines if line.startswith("13.07.2018 12:34,")).split(",")

    def logged(number: str, device: str) -> float:
        j = next(
            i
            for i, (n, d) in enumerate(zip(numbers, devices, strict=True))
            if n == number and d == device
        )
        return float(row[j])

    sim.set_time(
        dt.datetime(2018, 7, 13, 12, 34, 20, tzinfo=dt.timezone.utc).timestamp(), speed=0.0
    )
    assert sim.value(xt(2), 3092) == pytest.approx(logged("I3092", "L2-2"), abs=1e-4)
    assert sim.value(xt(2), 3000) == pytest.approx(logged("I3092", "L2-2"), abs=1e-4)  # same name
    assert sim.value(vs(2), 15061) == pytest.approx(logged("I15061", "2"), abs=1e-4)
    assert sim.value(601, 7032) == pytest.approx(logged("I7032", "1"), abs=1e-4)
    # Phase columns are the phase master's.
    assert sim.value(xt(3), 3113) == pytest.approx(logged("I3113", "L3"), abs=1e-4)
    # An info the file lacks keeps the model's value.
    assert sim.value(vs(1), 15023) > 0
