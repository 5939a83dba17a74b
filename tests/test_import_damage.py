"""Damaged SD-card copies never replace good data and never stop an import (issue 15 items 1-3).

Regression tests for each defect found by the adversarial run, then a property: random
damaged copies of the real sample datalogs, imported in random order after a good copy,
never leave fewer good values than the good copy, never a duplicate (time, address,
number) and never a traceback.
"""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xcomlog import dataset, importer, sdcard
from xcomlog.cli import main

ZONE = "Europe/Zurich"
DAY = "LG181231.CSV"  # a full day with its trailer (',' separator)


def read_values(out, site: str = "home") -> pa.Table:
    files = sorted((out / "values" / f"site={site}").rglob("*.parquet"))
    if not files:
        return dataset.VALUES_SCHEMA.empty_table()
    return pa.concat_tables(pq.read_table(f, schema=dataset.VALUES_SCHEMA) for f in files)


def ms(table: pa.Table) -> np.ndarray:
    """The times of a table in ms since the epoch (the stored unit may be finer)."""
    return table.column("time").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy()


def keyed(table: pa.Table) -> dict[tuple[int, int, int], float]:
    """(time ms, address, number) -> value; fails on a duplicate key."""
    times = ms(table)
    addresses = table.column("address").to_numpy()
    numbers = table.column("number").to_numpy()
    values = table.column("value").to_numpy()
    out = {}
    for t, a, n, v in zip(
        times.tolist(), addresses.tolist(), numbers.tolist(), values.tolist(), strict=True
    ):
        assert (t, a, n) not in out, f"duplicate key {(t, a, n)}"
        out[(t, a, n)] = v
    return out


def assert_keeps(out, good: dict) -> dict:
    """The dataset holds every good value unchanged and no key twice."""
    stored = keyed(read_values(out))
    lost = [k for k, v in good.items() if k not in stored or not _same(stored[k], v)]
    assert not lost, f"{len(lost)} good values lost or changed, first {lost[:3]}"
    return stored


def _same(a: float, b: float) -> bool:
    return a == b or (np.isnan(a) and np.isnan(b))


def lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def import_bytes(out, payload: bytes, name: str = DAY, **kwargs):
    return importer.import_bytes(name, payload, site="home", tz=ZONE, out=out, **kwargs)


@pytest.fixture
def good(sd_datalog_dir, tmp_path):
    """The good copy imported first: (out, its bytes, its values by key)."""
    data = (sd_datalog_dir / DAY).read_bytes()
    out = tmp_path / "data"
    summary = import_bytes(out, data)
    assert summary.ok and summary.files == 1
    return out, data, keyed(read_values(out))


# --- 1. a damaged copy never replaces a good import ---------------------------------------------


def test_a_repeated_minute_is_kept_once(sd_datalog_dir, tmp_path):
    data = (sd_datalog_dir / DAY).read_bytes()
    rows = lines(data)
    damaged = b"\n".join(rows[:600] + [rows[599]] + rows[600:])  # 09:56 twice
    summary = import_bytes(tmp_path / "alone", damaged)
    assert summary.ok
    [issue] = [i for _, i in summary.issues if "repeated" in i.reason]
    assert issue.text == "1 rows"
    reference = tmp_path / "reference"
    import_bytes(reference, data)
    assert keyed(read_values(tmp_path / "alone")) == keyed(read_values(reference))


def test_a_copy_with_a_repeated_minute_does_not_replace_the_good_import(good):
    out, data, values = good
    rows = lines(data)
    damaged = b"\n".join(rows[:600] + [rows[599]] + rows[600:])
    summary = import_bytes(out, damaged)
    # Once its repeat is dropped the copy is the stored day again: nothing is rewritten.
    assert summary.ok and [r.status for r in summary.reports] == ["imported"]
    assert summary.reports[0].written == []
    assert keyed(read_values(out)) == values


def test_a_file_appended_to_itself_adds_nothing(good):
    out, data, values = good
    summary = import_bytes(out, data + data)
    assert summary.ok
    assert keyed(read_values(out)) == values
    [issue] = [i for _, i in summary.issues if "repeated" in i.reason]
    assert issue.text == "1440 rows"


@pytest.mark.parametrize("year", [b"0001", b"9999", b"1969"])
def test_a_corrupted_date_is_rejected_and_reported(good, year):
    """Same row count, one row dated in another year: that minute's good values stay put."""
    out, data, values = good
    rows = lines(data)
    rows[3 + 700] = rows[3 + 700][:6] + year + rows[3 + 700][10:]
    summary = import_bytes(out, b"\n".join(rows))
    assert summary.ok
    [issue] = [i for _, i in summary.issues if "impossible times" in i.reason]
    assert issue.text.startswith("1 rows, first")
    stored = keyed(read_values(out))
    assert stored == values  # nothing moved to 1969, nothing lost
    times = ms(read_values(out))
    assert times.min() >= np.datetime64("2018-12-30T23:00", "ms").astype(np.int64)


def test_a_later_copy_adds_the_rows_the_earlier_lacked(sd_datalog_dir, tmp_path):
    """A copy with a damaged row first, then the good copy: the missing minute is added."""
    data = (sd_datalog_dir / DAY).read_bytes()
    rows = lines(data)
    rows[3 + 700] = b"31.12.2018 1X:40" + rows[3 + 700][16:]  # an unreadable time
    out = tmp_path / "data"
    first = import_bytes(out, b"\n".join(rows))
    assert first.ok and first.reports[0].status == "imported"
    before = keyed(read_values(out))
    second = import_bytes(out, data)
    assert second.reports[0].status == "imported"
    assert "values added" in second.reports[0].reason
    reference = tmp_path / "reference"
    import_bytes(reference, data)
    after = keyed(read_values(out))
    assert after == keyed(read_values(reference))
    assert len(after) > len(before)


def test_force_replaces_the_stored_day(good, tmp_path):
    out, data, values = good
    half = data[: len(data) // 2]
    kept = import_bytes(out, half)
    assert kept.reports[0].status == "kept"
    assert keyed(read_values(out)) == values
    forced = import_bytes(out, half, force=True)
    assert forced.reports[0].status == "imported"
    assert len(keyed(read_values(out))) == forced.values < len(values)


def test_reimport_in_another_zone_moves_the_day_instead_of_merging(good):
    out, data, values = good
    summary = importer.import_bytes(DAY, data, site="home", tz="UTC", out=out)
    assert summary.reports[0].status == "imported"
    stored = keyed(read_values(out))
    assert len(stored) == len(values)  # moved by an hour, not doubled
    assert min(t for t, _, _ in stored) == min(t for t, _, _ in values) + 3_600_000


# --- 2. one damaged file never stops an import ---------------------------------------------------


def damaged_files(data: bytes) -> dict[str, bytes]:
    """The three files that aborted a whole import with a traceback."""
    rows = lines(data)
    bad_date = list(rows)
    bad_date[3 + 10] = b"31.12.9999 23:59" + rows[3 + 10][16:]
    huge = list(rows)
    huge[3 + 20] = rows[3 + 20] + b"9" * 1_200_000
    trailer = [r for r in rows if r.startswith(b"I3081")]
    digits = list(rows)
    digits[rows.index(trailer[0])] = b"I" + b"7" * 5000 + b",1.0,"
    digits.insert(-1, b"I3083," + b"9" * 5000 + b",")
    return {
        "LG181228.CSV": b"\n".join(bad_date).replace(b"31.12.2018", b"28.12.2018"),
        "LG181229.CSV": b"\n".join(huge).replace(b"31.12.2018", b"29.12.2018"),
        "LG181230.CSV": b"\n".join(digits).replace(b"31.12.2018", b"30.12.2018"),
    }


def test_damaged_files_are_reported_and_the_others_imported(sd_datalog_dir, tmp_path):
    folder = tmp_path / "LOG"
    shutil.copytree(sd_datalog_dir, folder, ignore=shutil.ignore_patterns("*.txt"))
    for name, payload in damaged_files((sd_datalog_dir / DAY).read_bytes()).items():
        (folder / name).write_bytes(payload)
    (folder / "LG181227.CSV").write_bytes(b"v6.6,XT-Ubat [V],\n" + b"\xff" * 5000)
    out = tmp_path / "data"
    summary = importer.import_paths([folder], site="home", tz=ZONE, out=out, progress=False)
    by_name = {r.source.rsplit("/", 1)[-1]: r for r in summary.reports}
    assert {n: by_name[n].status for n in ("LG181228.CSV", "LG181229.CSV", "LG181230.CSV")} == {
        "LG181228.CSV": "imported",  # the bad row is left out and reported
        "LG181229.CSV": "imported",  # the huge line is a bad row
        "LG181230.CSV": "imported",  # the unreadable trailer lines are reported
    }
    assert by_name["LG181227.CSV"].status == "failed"
    assert summary.files == 5 + 3
    reasons = " | ".join(f"{i.reason} {i.text}" for _, i in summary.issues)
    assert "impossible times" in reasons
    assert "fields instead of" in reasons
    assert "unrecognised line" in reasons or "unreadable value" in reasons
    text = summary.format()
    assert "Failed 1 file(s)" in text and "LG181227.CSV" in text
    keyed(read_values(out))  # and no key twice


def test_cli_reports_a_damaged_folder_without_traceback(sd_datalog_dir, tmp_path, capsys):
    folder = tmp_path / "LOG"
    folder.mkdir()
    for name, payload in damaged_files((sd_datalog_dir / DAY).read_bytes()).items():
        (folder / name).write_bytes(payload)
    (folder / "LG181227.CSV").write_bytes(b"\x00garbage\n" * 3)
    code = main(["import", str(folder), "--site", "home", "--tz", ZONE,
                 "--out", str(tmp_path / "data"), "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.out + captured.err
    assert "Imported 3 of 4 file(s)" in captured.out


def test_an_unexpected_error_fails_only_its_file(sd_datalog_dir, tmp_path, monkeypatch):
    """The last line of defence: whatever a parser raises is that file's failure."""
    real = sdcard.parse_datalog

    def fragile(data, name="datalog.csv", **kwargs):
        if name == "LG180301.CSV":
            raise OverflowError("date value out of range")
        return real(data, name, **kwargs)

    monkeypatch.setattr(importer, "parse_datalog", fragile)
    summary = importer.import_paths(
        [sd_datalog_dir], site="home", tz=ZONE, out=tmp_path / "data", progress=False
    )
    assert summary.files == 4
    [failed] = summary.failed
    assert failed.source.endswith("LG180301.CSV")
    assert failed.reason == "damaged beyond reading (OverflowError: date value out of range)"


# --- 3. line endings --------------------------------------------------------------------------


@pytest.mark.parametrize("ending", [b"\r", b"\r\n", b"\n"], ids=["CR", "CRLF", "LF"])
def test_every_line_ending_imports_the_same(sd_datalog_dir, tmp_path, ending):
    data = (sd_datalog_dir / DAY).read_bytes()
    reference = tmp_path / "reference"
    import_bytes(reference, data)
    out = tmp_path / "data"
    summary = import_bytes(out, data.replace(b"\n", ending))
    assert summary.ok and summary.files == 1, summary.format()
    assert not summary.issues
    assert keyed(read_values(out)) == keyed(read_values(reference))
    assert summary.parameters == 10


def test_mixed_line_endings(sd_datalog_dir, tmp_path):
    data = (sd_datalog_dir / DAY).read_bytes()
    rows = lines(data)
    endings = [b"\r", b"\r\n", b"\n"]
    mixed = b"".join(r + endings[i % 3] for i, r in enumerate(rows[:-1])) + rows[-1]
    reference = tmp_path / "reference"
    import_bytes(reference, data)
    summary = import_bytes(tmp_path / "data", mixed)
    assert summary.ok and not summary.issues
    assert keyed(read_values(tmp_path / "data")) == keyed(read_values(reference))


# --- the property ------------------------------------------------------------------------------

SAMPLES = ("LG180301.CSV", "LG181231.CSV", "LG190101.CSV", "LG200616.CSV", "LG180713.CSV")


@st.composite
def damage(draw, data: bytes) -> bytes:
    """A damaged copy of ``data``: one to three kinds of the damage seen on real cards."""
    rows = lines(data)
    header, body = rows[:3], rows[3:]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ["truncate", "repeat", "shuffle", "bad_date", "junk", "huge", "endings", "append"]
            )
        )
        if not body:
            break
        at = draw(st.integers(0, len(body) - 1))
        if kind == "truncate":
            blob = b"\n".join(body)
            body = blob[: draw(st.integers(0, len(blob)))].split(b"\n")
        elif kind == "repeat":
            count = draw(st.integers(1, 50))
            body = body[: at + 1] + body[max(0, at - count) : at + 1] + body[at + 1 :]
        elif kind == "shuffle":
            span = draw(st.integers(2, 200))
            chunk = body[at : at + span]
            order = draw(st.permutations(range(len(chunk))))
            body = body[:at] + [chunk[i] for i in order] + body[at + span :]
        elif kind == "bad_date":
            year = draw(st.sampled_from([b"0001", b"9999", b"1969", b"2017", b"2038"]))
            row = body[at]
            body[at] = row[:6] + year + row[10:] if len(row) >= 10 else row
        elif kind == "junk":
            blob = bytearray(b"\n".join(body))
            for _ in range(draw(st.integers(1, 20))):
                where = draw(st.integers(0, max(0, len(blob) - 1)))
                blob[where : where + 1] = draw(st.binary(min_size=1, max_size=8))
            body = bytes(blob).split(b"\n")
        elif kind == "huge":
            body[at] = body[at] + draw(st.sampled_from([b"9", b";", b",", b"x"])) * 1_100_000
        elif kind == "endings":
            ending = draw(st.sampled_from([b"\r", b"\r\n"]))
            every = draw(st.integers(1, 5))
            return b"".join(
                line + (ending if i % every == 0 else b"\n") for i, line in enumerate(header + body)
            )
        elif kind == "append":
            body = body + body
    return b"\n".join(header + body)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_damaged_copies_after_a_good_one_never_lose_good_values(
    sd_datalog_dir, tmp_path_factory, data
):
    name = data.draw(st.sampled_from(SAMPLES), label="sample")
    good_bytes = (sd_datalog_dir / name).read_bytes()
    out = tmp_path_factory.mktemp("data")
    first = importer.import_bytes(name, good_bytes, site="home", tz=ZONE, out=out)
    assert first.ok
    good_values = keyed(read_values(out))
    copies = data.draw(st.lists(damage(good_bytes), min_size=1, max_size=3), label="copies")
    sources = [(f"copy{i}/{name}", payload) for i, payload in enumerate(copies)]
    summary = importer.import_sources(sources, site="home", tz=ZONE, out=out, progress=False)
    assert len(summary.reports) == len(copies)
    for report in summary.reports:
        assert report.status in ("imported", "kept", "failed")
        assert "Traceback" not in report.reason
        assert "damaged beyond reading" not in report.reason, report.reason
    assert_keeps(out, good_values)
    summary.format()
