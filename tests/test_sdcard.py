"""SD-card datalog parser: every real sample, both separators, degree signs, truncation, DST."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xcomlog import sdcard
from xcomlog.exceptions import ConfigError, DatalogError
from xcomlog.protocol import Family

SAMPLES = ["LG180301.CSV", "LG180713.CSV", "LG181231.CSV", "LG190101.CSV", "LG200616.CSV"]
ROW = re.compile(r"^\d\d\.\d\d\.\d{4} \d\d:\d\d")


def raw_lines(path) -> list[str]:
    return path.read_bytes().decode("latin-1").split("\n")


def separator(lines: list[str]) -> str:
    return ";" if lines[0].count(";") > lines[0].count(",") else ","


def complete_rows(path) -> list[list[str]]:
    """Independent oracle: data lines ended by a newline with the usual field count."""
    lines = raw_lines(path)
    sep = separator(lines)
    terminated = lines[3:-1]  # the last element follows the final newline (or is cut)
    rows = [line.rstrip("\r").split(sep) for line in terminated if ROW.match(line)]
    width = max({len(r) for r in rows}, key=[len(r) for r in rows].count)
    return [r for r in rows if len(r) == width]


@pytest.fixture(params=SAMPLES)
def sample(request, sd_datalog_dir):
    return sd_datalog_dir / request.param


def test_column_count_matches_header_numbers(sample):
    lines = raw_lines(sample)
    numbers = [t for t in lines[1].split(separator(lines)) if re.fullmatch(r"I\d+", t.strip())]
    log = sdcard.read_datalog(sample)
    assert len(log.columns) == len(numbers)
    assert log.data.shape == (log.rows, len(numbers))
    assert [c.number for c in log.columns] == [int(t[1:]) for t in numbers]


def test_every_complete_row_and_value_is_read(sample):
    """Each cell equals the text of the file (float32), empty and nan cells are NaN."""
    rows = complete_rows(sample)
    log = sdcard.read_datalog(sample)
    assert log.rows == len(rows)
    expected_times = np.array(
        [dt.datetime.strptime(r[0], "%d.%m.%Y %H:%M") for r in rows], dtype="datetime64[m]"
    )
    assert np.array_equal(log.local_times, expected_times)
    rng = np.random.default_rng(1)
    for i in sorted({0, len(rows) - 1, *rng.integers(0, len(rows), 25).tolist()}):
        for j, column in enumerate(log.columns):
            cell = rows[i][column.field].strip()
            if cell in ("", "nan"):
                assert np.isnan(log.data[i, j])
            else:
                assert log.data[i, j] == np.float32(float(cell)), (i, column)


def test_separators(sd_datalog_dir):
    assert sdcard.read_datalog(sd_datalog_dir / "LG180301.CSV").separator == ";"
    assert sdcard.read_datalog(sd_datalog_dir / "LG190101.CSV").separator == ";"
    assert sdcard.read_datalog(sd_datalog_dir / "LG181231.CSV").separator == ","
    assert sdcard.read_datalog(sd_datalog_dir / "LG180713.CSV").separator == ","


def test_same_file_with_either_separator_parses_the_same(sd_datalog_dir):
    data = (sd_datalog_dir / "LG181231.CSV").read_bytes()
    comma = sdcard.parse_datalog(data, "LG181231.CSV")
    semi = sdcard.parse_datalog(data.replace(b",", b";"), "LG181231.CSV")
    assert semi.separator == ";"
    assert np.array_equal(comma.data, semi.data, equal_nan=True)
    assert [c.key for c in comma.columns] == [c.key for c in semi.columns]
    assert comma.parameters == semi.parameters and comma.devices == semi.devices


@pytest.mark.parametrize("name", ["LG181231.CSV", "LG200616.CSV", "LG180301.CSV"])
def test_degree_sign_variants_in_units(sd_datalog_dir, name):
    raw = (sd_datalog_dir / name).read_bytes()
    assert b"\xb0C]" in raw or b"[?C]" in raw  # Latin-1 degree sign or a question mark
    log = sdcard.read_datalog(sd_datalog_dir / name)
    tbat = next(c for c in log.columns if c.number == 7033)
    assert tbat.unit == "°C"
    assert not any("?" in c.unit or "\ufffd" in c.unit for c in log.columns)


@pytest.mark.parametrize("text", ["°C", "?C", "\ufffdC", "Â°C", "ºC"])
def test_normalize_unit(text):
    assert sdcard.normalize_unit(text) == "°C"
    assert sdcard.split_label(f"BSP-Tbat [{text}]") == ("BSP-Tbat", "°C")


def test_utf8_degree_sign_header(sd_datalog_dir):
    data = (sd_datalog_dir / "LG181231.CSV").read_bytes().replace(b"\xb0C]", "°C]".encode())
    log = sdcard.parse_datalog(data, "LG181231.CSV")
    assert {c.unit for c in log.columns if c.number == 7033} == {"°C"}


# --- mapping to (address, number) -------------------------------------------------------------


def keys(log: sdcard.Datalog) -> dict[tuple[int, str], int]:
    return {(c.number, c.device): c.address for c in log.columns}


def test_three_phase_mapping(sd_datalog_dir):
    got = keys(sdcard.read_datalog(sd_datalog_dir / "LG180301.CSV"))
    assert got[(3090, "L1")] == 191 and got[(3090, "L2")] == 192 and got[(3090, "L3")] == 193
    assert got[(3092, "L1-1")] == 101 and got[(3092, "L2-2")] == 102
    assert got[(3103, "L3-3")] == 103
    assert got[(7030, "1")] == 601  # BSP
    assert got[(17999, "ALL")] == 501  # Solar power (ALL): no device family -> gateway
    assert got[(17997, "1")] == 501 and got[(17998, "1")] == 501  # DEV SYS
    assert got[(3140, "1")] == 101  # DEV XT-DBG1


def test_variotrack_variostring_mapping(sd_datalog_dir):
    log = sdcard.read_datalog(sd_datalog_dir / "LG180713.CSV")
    got = keys(log)
    assert got[(15061, "1")] == 701 and got[(15061, "2")] == 702
    assert got[(15061, "ALL")] == 700  # the VarioStrings' aggregate at the multicast address
    assert got[(11043, "1")] == 301 and got[(11043, "ALL")] == 300
    assert got[(11076, "1")] == 301
    families = {c.address: c.family for c in log.columns}
    assert families[701] is Family.VARIOSTRING and families[301] is Family.VARIOTRACK
    assert families[601] is Family.BSP and families[501] is None


def test_single_xtender_phase_columns(sd_datalog_dir):
    path = sd_datalog_dir / "LG181231.CSV"
    auto = keys(sdcard.read_datalog(path))
    assert auto[(3090, "L1")] == 101 and auto[(3092, "L1-1")] == 101
    phase = keys(sdcard.read_datalog(path, phase_columns="phase"))
    assert phase[(3090, "L1")] == 191 and phase[(3092, "L1-1")] == 101
    with pytest.raises(ValueError, match="phase_columns"):
        sdcard.read_datalog(path, phase_columns="nonsense")


def test_truncated_file_without_inventory_maps_like_its_full_days(sd_datalog_dir):
    """LG200616 (no trailer) and LG181231 (full) are both single-Xtender files."""
    cut = keys(sdcard.read_datalog(sd_datalog_dir / "LG200616.CSV"))
    assert cut[(3090, "L1")] == 101 and cut[(15061, "ALL")] == 700


def test_every_series_is_unique(sample):
    log = sdcard.read_datalog(sample)
    assert len({c.key for c in log.columns}) == len(log.columns)


@pytest.mark.parametrize(
    ("family", "token", "address"),
    [
        (Family.XTENDER, "L2", 192),
        (Family.XTENDER, "L3-9", 109),
        (Family.XTENDER, "ALL", 100),
        (Family.XTENDER, "2", 102),
        (Family.VARIOTRACK, "15", 315),
        (Family.VARIOSTRING, "ALL", 700),
        (Family.BSP, "1", 601),
        (Family.BSP, "ALL", 600),
        (Family.RCC, "1", 501),
        (None, "ALL", 501),
    ],
)
def test_column_address(family, token, address):
    assert sdcard.column_address(family, token) == address


@pytest.mark.parametrize(
    ("family", "token"),
    [
        (Family.VARIOTRACK, "L1"),
        (Family.VARIOSTRING, "L1-1"),
        (Family.BSP, "2"),
        (Family.XTENDER, "X"),
    ],
)
def test_column_address_refuses_impossible_devices(family, token):
    with pytest.raises(ValueError):
        sdcard.column_address(family, token)


def test_label_family():
    assert sdcard.label_family("XT-Uin") is Family.XTENDER
    assert sdcard.label_family("DEV VS-locEr") is Family.VARIOSTRING
    assert sdcard.label_family("BSP-Tbat") is Family.BSP
    assert sdcard.label_family("Solar power (ALL)") is None
    assert sdcard.label_family("DEV SYS MSG") is None


def test_catalog_decides_family_label_breaks_ties():
    assert sdcard.datapoint_family(3090, "info", None) is Family.XTENDER
    assert sdcard.datapoint_family(7002, "info", None) is Family.BSP  # BSP or BMS: same address
    assert sdcard.datapoint_family(7002, "info", Family.XCOM_CAN_BMS) is Family.XCOM_CAN_BMS
    assert sdcard.datapoint_family(17999, "info", None) is None  # not in the appendix
    assert sdcard.datapoint_family(1107, "parameter", None) is Family.XTENDER


# --- trailers -------------------------------------------------------------------------------


def test_parameters_per_device(sd_datalog_dir):
    three = sdcard.read_datalog(sd_datalog_dir / "LG180301.CSV")
    p1107 = {(p.address, p.value) for p in three.parameters if p.number == 1107}
    assert p1107 == {(101, 12.0), (102, 12.0), (103, 12.0)}
    assert {(p.address, p.value) for p in three.parameters if p.number == 6001} == {(601, 1900.0)}
    single = sdcard.read_datalog(sd_datalog_dir / "LG181231.CSV")
    # Only the Xtender present: the 0.00 written for absent devices 2 and 3 is dropped.
    assert {(p.address, p.value) for p in single.parameters if p.number == 1107} == {(101, 31.0)}
    assert all(p.kind == "parameter" for p in single.parameters)
    assert len(single.parameters) == 10


def test_day_counters_per_device(sd_datalog_dir):
    log = sdcard.read_datalog(sd_datalog_dir / "LG180713.CSV")
    got = {(c.number, c.address): c.value for c in log.counters}
    assert got[(15016, 701)] == 402.75 and got[(15016, 702)] == 597.5
    assert got[(3081, 101)] == pytest.approx(-21.67) and got[(3081, 103)] == pytest.approx(-32.56)
    assert got[(11006, 301)] == 263.0 and got[(7007, 601)] == pytest.approx(1.38)
    assert not any(c.number in (9012, 9013) for c in log.counters)  # empty lines


def test_inventory(sd_datalog_dir):
    log = sdcard.read_datalog(sd_datalog_dir / "LG180713.CSV")
    by_device = {d.device: d for d in log.devices}
    assert by_device["xt2"].model == "XTH 8000-48 (230-31)"
    assert by_device["xt2"].serial == "423C6441" and by_device["xt2"].firmware == "1.6.30"
    assert "phase=L2" in by_device["xt2"].detail
    assert by_device["vs2"].model == "VarioString VS120" and by_device["vs2"].address == 702
    assert by_device["vt1"].address == 301 and by_device["bsp"].address == 601
    remotes = [d for d in log.devices if d.family is Family.RCC]
    assert [d.model for d in remotes] == ["RCC-02", "Xcom-LAN", "Xcom-232i 115200bps"]
    assert all(d.address == 501 for d in remotes)


# --- damaged files --------------------------------------------------------------------------


def test_truncated_sample_keeps_exactly_its_complete_rows(sd_datalog_dir):
    path = sd_datalog_dir / "LG200616.CSV"
    log = sdcard.read_datalog(path)
    assert log.truncated
    assert log.rows == len(complete_rows(path))
    last_full = complete_rows(path)[-1][0]
    assert log.local_times[-1] == np.datetime64(dt.datetime.strptime(last_full, "%d.%m.%Y %H:%M"))
    [issue] = log.issues
    assert issue.reason == "incomplete row at end of file (file truncated)"
    assert issue.line == len(raw_lines(path))  # the cut line, 1-based
    assert not log.parameters and not log.devices


def test_short_row_in_the_middle_is_reported_not_fatal(sd_datalog_dir):
    path = sd_datalog_dir / "LG190101.CSV"
    log = sdcard.read_datalog(path)
    bad = [i for i in log.issues if "fields" in i.reason]
    line = next(
        n for n, text in enumerate(raw_lines(path), 1) if text.startswith("01.01.2019 06:52")
    )
    assert [i.line for i in bad] == [line]
    assert np.datetime64("2019-01-01T06:52") not in log.local_times
    assert np.datetime64("2019-01-01T06:53") in log.local_times


def test_nan_cells_are_missing(sd_datalog_dir):
    log = sdcard.read_datalog(sd_datalog_dir / "LG180713.CSV")
    row = int(np.nonzero(log.local_times == np.datetime64("2018-07-13T10:24"))[0][0])
    assert np.isnan(log.data[row]).sum() >= 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x00" * 512, "empty"),
        (b"v7.0,XT-Ubat [Vdc],\n,I3090,\n", "header"),
        (b"hello,world\nfoo,bar\nbaz,qux\n", "not a Studer datalog"),
    ],
)
def test_not_a_datalog(data, message):
    with pytest.raises(DatalogError, match=message):
        sdcard.parse_datalog(data, "LG990101.CSV")


def test_crlf_and_nul_padding(sd_datalog_dir):
    data = (sd_datalog_dir / "LG181231.CSV").read_bytes()
    plain = sdcard.parse_datalog(data, "LG181231.CSV")
    dos = sdcard.parse_datalog(data.replace(b"\n", b"\r\n") + b"\x00" * 4096, "LG181231.CSV")
    assert np.array_equal(plain.data, dos.data, equal_nan=True)
    assert plain.parameters == dos.parameters and plain.devices == dos.devices
    assert [i.reason for i in dos.issues] == ["4096 NUL bytes at the end of the file"]


def test_unreadable_cell_is_left_empty_and_reported(sd_datalog_dir):
    lines = (sd_datalog_dir / "LG181231.CSV").read_bytes().split(b"\n")
    cells = lines[10].split(b",")
    cells[2] = b"#ERR"
    lines[10] = b",".join(cells)
    log = sdcard.parse_datalog(b"\n".join(lines), "LG181231.CSV")
    assert log.rows == 1440
    j = next(k for k, c in enumerate(log.columns) if c.field == 2)
    assert np.isnan(log.data[7, j]) and not np.isnan(log.data[8, j])
    assert any("unreadable" in i.reason and "#ERR" in i.text for i in log.issues)


def test_damaged_line_inside_the_data_does_not_end_it(sd_datalog_dir):
    lines = (sd_datalog_dir / "LG181231.CSV").read_bytes().split(b"\n")
    lines[100] = b"\xff\xfe garbage"
    log = sdcard.parse_datalog(b"\n".join(lines), "LG181231.CSV")
    assert log.rows == 1439 and len(log.parameters) == 10
    assert [i.line for i in log.issues] == [101]


def test_file_cut_inside_the_trailer(sd_datalog_dir):
    data = (sd_datalog_dir / "LG180713.CSV").read_bytes()
    cut = data.index(b"P1140") + 9  # "P1140,54.41,54" ... cut mid-value
    log = sdcard.parse_datalog(data[:cut], "LG180713.CSV")
    assert log.rows == 1440 and log.truncated
    assert {p.number for p in log.parameters} == {1107, 1567, 1138, 1108}
    assert log.issues[-1].reason == "incomplete line at end of file (file truncated)"


def test_day_and_key(sd_datalog_dir):
    log = sdcard.read_datalog(sd_datalog_dir / "LG181231.CSV")
    assert log.day == dt.date(2018, 12, 31) and log.key == "LG181231"
    renamed = sdcard.parse_datalog((sd_datalog_dir / "LG181231.CSV").read_bytes(), "copy.csv")
    assert renamed.key == "LG181231"  # from the first row when the name has no date


# --- rendering, truncation at any byte --------------------------------------------------------


def test_render_round_trip(sample):
    log = sdcard.read_datalog(sample)
    again = sdcard.parse_datalog(log.to_bytes(), log.name)
    assert np.array_equal(log.data, again.data, equal_nan=True)
    assert np.array_equal(log.local_times, again.local_times)
    assert [c.key for c in log.columns] == [c.key for c in again.columns]
    assert log.parameters == again.parameters and log.devices == again.devices


@pytest.fixture
def small_file(sd_datalog_dir):
    """A 30-row rendering of a real sample (kept small so any cut is cheap to parse)."""
    log = sdcard.read_datalog(sd_datalog_dir / "LG181231.CSV")
    small = sdcard.with_rows(log, log.local_times[:30], log.data[:30], log.name)
    return small.to_bytes(), small


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_cut_anywhere_keeps_exactly_the_complete_rows(small_file, data):
    payload, full = small_file
    header_end = payload.index(b"\n", payload.index(b"\n", payload.index(b"\n") + 1) + 1) + 1
    cut = data.draw(st.integers(header_end, len(payload)))
    log = sdcard.parse_datalog(payload[:cut], full.name)
    text = payload[:cut].decode("latin-1")
    lines = text.split("\n")[3:]
    width = full.field_count
    expected = sum(1 for line in lines[:-1] if ROW.match(line))
    tail = lines[-1]
    if ROW.match(tail) and tail.count(",") + 1 == width and tail.endswith(","):
        expected += 1  # every field of the cut line is terminated: it is whole
    assert log.rows == expected
    assert np.array_equal(log.data, full.data[:expected], equal_nan=True)
    assert set(log.parameters) <= set(full.parameters)
    assert set(log.counters) <= set(full.counters)
    assert set(log.devices) <= set(full.devices)


# --- time zones and DST -----------------------------------------------------------------------


def test_dst_autumn_day_file(sd_datalog_dir):
    """A generated 25-hour day: the repeated hour is mapped by row order."""
    template = sdcard.read_datalog(sd_datalog_dir / "LG181231.CSV")
    day = dt.date(2019, 10, 27)
    local = sdcard.local_minutes(day, "Europe/Zurich")
    assert len(local) == 1500
    values = np.tile(template.data[:1], (len(local), 1))
    values[:, 0] = np.arange(len(local))  # row number in the first column
    log = sdcard.parse_datalog(
        sdcard.with_rows(template, local, values, "LG191027.CSV").to_bytes(), "LG191027.CSV"
    )
    assert log.rows == 1500
    utc = log.utc_ms("Europe/Zurich")
    assert np.all(np.diff(utc) == 60_000)  # strictly one minute apart, no overlap
    assert utc[0] == np.datetime64("2019-10-26T22:00", "ms").astype(np.int64)
    assert utc[-1] == np.datetime64("2019-10-27T22:59", "ms").astype(np.int64)
    twos = np.nonzero(log.local_times == np.datetime64("2019-10-27T02:00"))[0]
    assert len(twos) == 2
    assert utc[twos[0]] == np.datetime64("2019-10-27T00:00", "ms").astype(np.int64)
    assert utc[twos[1]] == np.datetime64("2019-10-27T01:00", "ms").astype(np.int64)


def test_dst_spring_day_file(sd_datalog_dir):
    template = sdcard.read_datalog(sd_datalog_dir / "LG190101.CSV")
    local = sdcard.local_minutes(dt.date(2019, 3, 31), "Europe/Zurich")
    assert len(local) == 1380 and np.datetime64("2019-03-31T02:30") not in local
    data = np.tile(template.data[:1], (len(local), 1))
    log = sdcard.parse_datalog(
        sdcard.with_rows(template, local, data, "LG190331.CSV").to_bytes(), "LG190331.CSV"
    )
    utc = log.utc_ms("Europe/Zurich")
    assert log.rows == 1380 and np.all(np.diff(utc) == 60_000)
    assert utc[0] == np.datetime64("2019-03-30T23:00", "ms").astype(np.int64)


def test_fixed_offset_zone_for_clocks_without_dst():
    local = np.array(["2019-07-01T12:00"], dtype="datetime64[m]")
    assert sdcard.local_to_utc_ms(local, "Etc/GMT-1")[0] == np.datetime64(
        "2019-07-01T11:00", "ms"
    ).astype(np.int64)
    assert sdcard.local_to_utc_ms(local, "Europe/Zurich")[0] == np.datetime64(
        "2019-07-01T10:00", "ms"
    ).astype(np.int64)


def test_unknown_zone():
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        sdcard.zone("Mars/Olympus")


ZONES = ["Europe/Zurich", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "UTC"]


@settings(max_examples=40, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    start=st.integers(
        int(np.datetime64("2015-01-01T00:00", "m").astype(np.int64)),
        int(np.datetime64("2030-01-01T00:00", "m").astype(np.int64)),
    ),
    length=st.integers(1, 3 * 1440),
)
def test_wall_clock_sequences_map_back_to_utc(zone, start, length):
    """Any run of UTC minutes, written on a wall clock, converts back exactly (DST included)."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    utc = start + np.arange(length)
    first = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=int(start))
    # A day file starts at local midnight, never in the second pass of a repeated hour.
    assume(first.astimezone(tz).fold == 0)
    wall = []
    for k in range(length):  # the clock of the datalogger, minute after minute
        aware = (first + dt.timedelta(minutes=k)).astimezone(tz)
        wall.append(np.datetime64(aware.replace(tzinfo=None), "m"))
    local = np.array(wall, dtype="datetime64[m]")
    assert np.array_equal(sdcard.local_to_utc_ms(local, zone), utc * 60_000)
