"""``xcomlog catalog`` on the command line: search, show, list, tree, messages, stats."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xcomlog.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["catalog", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_search_battery_voltage(capsys):
    code, out, _ = run(capsys, "search", "battery", "voltage", "--limit", "5")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["family", "number", "kind", "name"]
    numbers = [line.split()[1] for line in lines[2:]]
    assert numbers[0] == "3000"
    assert set(numbers) == {"3000", "7000", "11000", "15000"}  # 7000 for BSP and BMS
    assert len(lines) == 2 + 5


def test_search_filters_and_json(capsys):
    code, out, _ = run(capsys, "search", "pv power", "--family", "vs", "--kind", "info", "--json")
    assert code == 0
    found = json.loads(out)
    assert (
        found and {d["family"] for d in found} == {"vs"} and {d["kind"] for d in found} == {"info"}
    )
    assert found[0]["number"] == 15010 and found[0]["unit"] == "kW"


def test_search_nothing(capsys):
    code, out, err = run(capsys, "search", "zzzzqqqq")
    assert code == 1 and out == "" and "no datapoint matches" in err


def test_show_parameter(capsys):
    code, out, _ = run(capsys, "show", "1138")
    assert code == 0
    assert out.startswith("1138  Battery charge current")
    assert "Adc" in out and "default       60" in out and "max           200" in out
    assert "BATTERY MANAGEMENT AND CYCLE (1137)" in out
    assert "also in       BASIC SETTINGS (1100)" in out
    assert "101-109, multicast 100" in out


def test_show_enum_and_120v(capsys):
    code, out, _ = run(capsys, "show", "1552", "1286")
    assert code == 0
    assert "Tolerant" in out and "LONG_ENUM" in out
    assert "120 Vac       default 120, min 55, max 140" in out


def test_show_ambiguous_number_shows_every_family(capsys):
    code, out, _ = run(capsys, "show", "7002")
    assert code == 0
    assert "BSP (bsp)" in out and "Xcom-CAN BMS (bms)" in out
    code, out, _ = run(capsys, "show", "7002", "--family", "bms", "--json")
    assert [d["family"] for d in json.loads(out)] == ["bms"]


def test_show_by_name_and_errors(capsys):
    code, out, _ = run(capsys, "show", "Low Voltage Disconect")
    assert code == 0 and out.startswith("3008  Low Voltage Disconect")
    code, out, err = run(capsys, "show", "99999")
    assert code == 1 and "unknown datapoint 99999" in err
    code, out, err = run(capsys, "show", "batery charge curent")
    assert code == 1 and "did you mean" in err and "1138" in err


def test_show_bad_family_is_an_error(capsys):
    code, _, err = run(capsys, "show", "3000", "--family", "toaster")
    assert code == 1 and "unknown family" in err


def test_list_and_tree(capsys):
    code, out, _ = run(capsys, "list", "--family", "bsp", "--kind", "menu")
    assert code == 0
    assert [line.split()[1] for line in out.splitlines()[2:]] == ["6000", "6016"]
    code, out, _ = run(capsys, "tree", "--family", "xt", "--menus-only")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "[xt]"
    assert "+ 1137 BATTERY MANAGEMENT AND CYCLE" in lines
    assert "    + 1531 Battery undervoltage dynamic compensation" in lines
    assert all("+" in line for line in lines[1:])


def test_messages(capsys):
    code, out, _ = run(capsys, "messages", "16", "3")
    assert code == 0
    assert "Warning   Fan error detected" in out
    assert "AC-In synchronization in progress" in out
    code, out, _ = run(capsys, "messages", "--json")
    assert len(json.loads(out)) == 189
    code, _, err = run(capsys, "messages", "66")
    assert code == 1 and "unknown message 66" in err


def test_stats(capsys):
    code, out, _ = run(capsys, "stats", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["version"].startswith("V1.6")
    assert data["families"]["xt"]["info"] == 113
    assert data["messages"] == 189
    code, out, _ = run(capsys, "stats")
    assert "total" in out


def test_catalog_without_action_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "search" in out and "show" in out


@pytest.mark.timeout(60)
def test_console_entry_point():
    """The installed ``python -m xcomlog`` runs the command in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "xcomlog", "catalog", "show", "3000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3000  Battery voltage")
