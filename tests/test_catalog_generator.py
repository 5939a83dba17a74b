"""The catalog generator and the committed data agree with the official appendix.

Three layers: the generator's cell interpretation on hand-made rows (no PDF needed);
the committed data against an independent count of the appendix's text layout (every
number of every section, by regex on the lines starting with a level word and a number);
and a full regeneration from the PDF compared byte for byte with the committed files.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
from catalog_support import load_generator

from xcomlog.catalog import DATA_DIR, load_catalog
from xcomlog.protocol import Family

APPENDIX_PDF = "xtender-serial-protocol-appendix-V1.6.42.pdf"
APPENDIX_TXT = "xtender-serial-protocol-appendix-V1.6.42.txt"


@pytest.fixture(scope="module")
def gen():
    """tools/build_catalog.py imported as a module (tools/ is not a package)."""
    return load_generator()


# --- cell interpretation ---------------------------------------------------------------


def param_row(
    gen,
    number,
    name,
    depth=0,
    unit="",
    default="",
    minimum="",
    maximum="",
    fmt="FLOAT",
    inc="1",
    level="Expert",
):
    cells = {
        "level": level,
        "number": str(number),
        "name": name,
        "unit": unit,
        "default": default,
        "min": minimum,
        "max": maximum,
        "format": fmt,
        "increment": inc,
    }
    return gen.Row(page=1, cells=cells, depth=depth)


def menu_row(gen, number, name, depth=0, level="Expert"):
    return param_row(gen, number, name, depth, fmt="ONLY LEVEL", inc="Menu", level=level)


def test_number_and_options(gen):
    assert gen._number("60") == 60
    assert gen._number("1:Yes") == 1
    assert gen._number("420=07:00") == 420
    assert gen._number("-0.1: Inductive 0.90") == -0.1
    assert gen._number("+0.1:\nCapacitive") == 0.1
    assert gen._number("S") is None and gen._number("None") is None
    assert gen._options(["1:Automatic", "2:Reversed automatic", "8:Manual", "OFF"]) == {
        1: "Automatic",
        2: "Reversed automatic",
        8: "Manual OFF",
    }
    assert gen._is_option_list("0:Off\n1:On")
    assert not gen._is_option_list("°C no sensor : return\n~32767 °C")


def test_header_keys(gen):
    assert gen._header_key("Xtender parameter description") == "name"
    assert gen._header_key("VarioString information description") == "name"
    assert gen._header_key("Unit on\nthe RCC") == "rcc_unit"
    assert gen._header_key("Scom format") == "format"
    assert gen._header_key("Battery voltage") is None


def test_build_menu_tree_duplicates_and_120v(gen):
    S = gen.Section
    params = S(
        "XTENDER PARAMETERS",
        "xt",
        "parameter",
        [
            menu_row(gen, 1100, "BASIC SETTINGS", 0, level="Basic"),
            param_row(
                gen, 1138, "Battery charge current", 1, "Adc", "60", "0", "200", level="Basic"
            ),
            menu_row(gen, 1137, "BATTERY MANAGEMENT AND CYCLE", 0),
            param_row(
                gen, 1138, "Battery charge current", 1, "Adc", "60", "0", "200", level="Basic"
            ),
            menu_row(gen, 1568, "Undervoltage", 1),
            param_row(
                gen,
                1108,
                "Battery undervoltage level without load",
                2,
                "Vdc",
                "46.3",
                "36",
                "72",
                inc="0.1",
            ),
            param_row(gen, 1286, "AC Output voltage", 1, "Vac", "230", "110", "280"),
            param_row(
                gen,
                1552,
                "Type of detection of the grid loss (AC-In)",
                0,
                "",
                "2:Tolerant",
                "1:Slow",
                "4:Fast",
                "LONG ENUM",
                "Only 1 bit\n1:Slow\n2:Tolerant\n4:Fast",
            ),
            param_row(gen, 1126, "Smart-Boost allowed", 0, "", "1:Yes", "0:No", "1:Yes", "BOOL"),
            param_row(
                gen, 1395, "Restore default settings", 0, "", "S", "S", "S", "INT32", "Signal"
            ),
        ],
    )
    v120 = S(
        "XTENDER 120VAC SPECIFIC PARAMETERS",
        "xt",
        "parameter_120v",
        [
            param_row(gen, 1286, "AC Output voltage", 1, "Vac", "120", "55", "140"),
        ],
    )
    infos = S(
        "XTENDER INFOS",
        "xt",
        "info",
        [
            gen.Row(
                1,
                {
                    "number": "3010",
                    "name": "Battery cycle phase",
                    "short_name": "Phase",
                    "rcc_unit": "",
                    "unit": "0:Invalid value\n1:Bulk",
                    "format": "SHORT\nENUM",
                    "description": "See parameter {1137}",
                },
                0,
            )
        ],
    )
    messages = S(
        "RCC MESSAGES",
        None,
        "message",
        [
            gen.Row(
                1,
                {"level": "V.O.", "number": "16", "message": "Warning (016): Fan error detected"},
                0,
            ),
            gen.Row(
                1, {"level": "V.O.", "number": "3", "message": "(003): AC-In synchronization"}, 0
            ),
        ],
    )
    datapoints, msgs = gen.build([v120, params, infos, messages])
    by = {dp["number"]: dp for dp in datapoints}
    assert by[1138]["parent"] == 1137 and by[1138]["other_parents"] == [1100]
    assert by[1108]["parent"] == 1568 and by[1568]["parent"] == 1137
    assert by[1286]["parent"] == 1137 and by[1552]["parent"] is None
    assert (by[1286]["default_120v"], by[1286]["min_120v"], by[1286]["max_120v"]) == (120, 55, 140)
    assert by[1552]["options"] == {1: "Slow", 2: "Tolerant", 4: "Fast"}
    assert by[1552]["format"] == "LONG_ENUM" and by[1552]["increment"] is None
    assert by[1126]["options"] == {0: "No", 1: "Yes"}
    assert by[1395]["is_signal"] and by[1395]["default"] is None
    assert by[3010]["options"] == {0: "Invalid value", 1: "Bulk"} and by[3010]["unit"] == ""
    assert by[3010]["format"] == "SHORT_ENUM" and by[3010]["kind"] == "info"
    assert [(m["number"], m["severity"]) for m in msgs] == [(3, ""), (16, "Warning")]
    files = gen.render(datapoints, msgs, {"source": "x.pdf", "version": "V0"})
    meta = json.loads(files["catalog_meta.json"])
    assert meta["counts"]["xt"] == {"parameter": 6, "info": 1, "menu": 3}


def test_build_refuses_what_it_does_not_understand(gen):
    S = gen.Section
    clash = S(
        "XTENDER PARAMETERS",
        "xt",
        "parameter",
        [
            param_row(gen, 1138, "Battery charge current", 0, "Adc", "60", "0", "200"),
            param_row(gen, 1138, "Battery charge current", 0, "Adc", "60", "0", "250"),
        ],
    )
    with pytest.raises(gen.AppendixError, match="maximum"):
        gen.build([clash])
    odd_format = S(
        "XTENDER PARAMETERS", "xt", "parameter", [param_row(gen, 1, "x", 0, fmt="DOUBLE")]
    )
    with pytest.raises(gen.AppendixError, match="unknown format 'DOUBLE'"):
        gen.build([odd_format])
    odd_level = S("XTENDER PARAMETERS", "xt", "parameter", [param_row(gen, 1, "x", level="Boss")])
    with pytest.raises(gen.AppendixError, match="access level"):
        gen.build([odd_level])
    with pytest.raises(gen.AppendixError, match="unknown appendix section"):
        gen._classify("TOASTER PARAMETERS")
    cut = S("XTENDER PARAMETERS", "xt", "parameter", [param_row(gen, "", "continued")])
    with pytest.raises(gen.AppendixError, match="row without a number"):
        gen.build([cut])
    lone_120v = S(
        "XTENDER 120VAC SPECIFIC PARAMETERS",
        "xt",
        "parameter_120v",
        [param_row(gen, 1286, "AC Output voltage", 1, "Vac", "120", "55", "140")],
    )
    with pytest.raises(gen.AppendixError, match="120 Vac"):
        gen.build([lone_120v])


# --- committed data against the appendix's text ----------------------------------------

SECTION_TITLES = {
    "Xtender 120Vac specific parameters": ("xt", "120v"),
    "Xtender parameters": ("xt", "parameter"),
    "Xtender infos": ("xt", "info"),
    "RCC parameters": ("rcc", "parameter"),
    "BSP parameters": ("bsp", "parameter"),
    "BSP infos": ("bsp", "info"),
    "Xcom-CAN BMS parameters": ("bms", "parameter"),
    "Xcom-CAN BMS infos": ("bms", "info"),
    "VarioTrack parameters": ("vt", "parameter"),
    "VarioTrack infos": ("vt", "info"),
    "VarioString parameters": ("vs", "parameter"),
    "VarioString infos": ("vs", "info"),
    "RCC messages": ("rcc", "message"),
}
LEVEL_LINE = re.compile(r"^\s+(?:Basic|Expert|Inst\.|QSP|V\.O\.)\s+(\d+)\s")
INFO_LINE = re.compile(r"^\s{2,14}(\d{4,5})\s{2,}\S")


def appendix_numbers(text: str) -> dict[tuple[str, str], set[int]]:
    """Numbers per (family, kind) read from the appendix's text layout, independently."""
    found: dict[tuple[str, str], set[int]] = defaultdict(set)
    section = None
    for line in text.splitlines():
        if line.strip() in SECTION_TITLES:
            section = SECTION_TITLES[line.strip()]
            continue
        if section is None:
            continue
        family, kind = section
        if kind == "info":
            m = INFO_LINE.match(line)
            if m:
                found[(family, kind)].add(int(m.group(1)))
            continue
        m = LEVEL_LINE.match(line)
        if m:
            is_menu = re.search(r"ONLY LEVEL\s+Menu\s*$", line) is not None
            found[(family, "menu" if is_menu else kind)].add(int(m.group(1)))
    return found


@pytest.fixture(scope="module")
def appendix_text():
    path = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / APPENDIX_TXT
    if not path.is_file():
        pytest.skip(f"{APPENDIX_TXT} is not present in ../shared/reference")
    return path.read_text(encoding="utf-8")


def test_every_appendix_number_and_none_invented(appendix_text):
    expected = appendix_numbers(appendix_text)
    cat = load_catalog()
    # The appendix's numbers, with the field errata of corrections.toml applied (and only those).
    renumbered = [c for c in cat.corrections() if c.field == "number"]
    assert renumbered, "the Xcom-CAN BMS 7022 -> 7072 erratum is in corrections.toml"
    for c in renumbered:
        kind = cat.get(int(c.value), family=c.family).kind
        numbers = expected[(c.family.value, kind)]
        assert c.appendix in numbers and c.value not in numbers
        numbers.discard(c.appendix)
        numbers.add(int(c.value))
    for family in Family:
        for kind in ("parameter", "info", "menu"):
            have = {dp.number for dp in cat.datapoints(family=family, kind=kind)}
            want = expected.get((family.value, kind), set())
            assert have == want, (family, kind, sorted(want - have), sorted(have - want))
    assert set(cat.messages) == expected[("rcc", "message")]
    v120 = {dp.number for dp in cat.datapoints(family=Family.XTENDER) if dp.has_120v_variant}
    assert v120 == expected[("xt", "120v")]


def test_counts_match_the_appendix(appendix_text):
    expected = appendix_numbers(appendix_text)
    meta = json.loads((DATA_DIR / "catalog_meta.json").read_text(encoding="utf-8"))
    for family, kinds in meta["counts"].items():
        if family == "messages":
            assert kinds["message"] == len(expected[("rcc", "message")])
            continue
        for kind, n in kinds.items():
            assert n == len(expected.get((family, kind), set())), (family, kind)
    # The totals this version of the appendix has (also printed by the generator).
    assert sum(k.get("parameter", 0) for k in meta["counts"].values()) == 939
    assert sum(k.get("info", 0) for k in meta["counts"].values()) == 323


def test_message_texts_match_the_appendix(appendix_text):
    cat = load_catalog()
    for m in re.finditer(
        r"V\.O\.\s+(\d+)\s+(?:(\w+) )?\((\d{3})\):\s*(.+?)\s*$", appendix_text, re.M
    ):
        number = int(m.group(1))
        info = cat.message(number)
        assert info.severity == (m.group(2) or "")
        assert info.text == m.group(4)


def test_data_files_are_consistent():
    rows = list(csv.DictReader((DATA_DIR / "datapoints.csv").open(encoding="utf-8")))
    keys = [(r["family"], r["number"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert len(rows) == len(load_catalog())


# --- full regeneration from the PDF ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_regenerated_catalog_equals_committed_data(gen, reference_dir):
    """The committed data is exactly what the generator makes from the appendix PDF.

    Parsing the PDF takes ~20 s; the result does not depend on the codec, so the
    pure-Python CI run (XCOMLOG_NO_EXTENSIONS=1) skips this repeat.
    """
    import os

    if os.environ.get("XCOMLOG_NO_EXTENSIONS", "") not in ("", "0"):
        pytest.skip("checked once, in the compiled-codec run")
    pytest.importorskip("pdfplumber", reason="the generator needs pdfplumber")
    pdf = reference_dir / APPENDIX_PDF
    if not pdf.is_file():
        pytest.skip(f"{APPENDIX_PDF} is not present")
    files = gen.generate(pdf)
    assert sorted(files) == ["catalog_meta.json", "datapoints.csv", "messages.csv"]
    for name, text in files.items():
        committed = (DATA_DIR / name).read_text(encoding="utf-8")
        if text != committed:
            new = text.splitlines()
            old = committed.splitlines()
            first = next(
                (i for i, (a, b) in enumerate(zip(new, old, strict=False)) if a != b),
                min(len(new), len(old)),
            )
            pytest.fail(
                f"{name} differs from the generator's output at line {first + 1}; "
                "run `make catalog` and commit the data"
            )
