#!/usr/bin/env python3
"""Generate xcomlog's datapoint catalog from Studer's "Xtender serial protocol appendix" PDF.

The appendix lists every parameter, user info and RCC message in ruled tables, one
section per device family and kind. This tool reads those tables with pdfplumber (a
tool-only dependency: the package itself never imports it), checks them, and writes
``xcomlog/data/datapoints.csv``, ``messages.csv`` and ``catalog_meta.json``. Re-run it
when Studer publishes a new appendix::

    python tools/build_catalog.py ../shared/reference/xtender-serial-protocol-appendix-V1.6.42.pdf

It prints the number of datapoints per family and kind, and exits non-zero with a
message naming the row when the appendix holds something it does not understand
(an unknown section, format or level), so a new layout is noticed instead of guessed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_APPENDIX = (
    REPO.parent / "shared" / "reference" / "xtender-serial-protocol-appendix-V1.6.42.pdf"
)
DEFAULT_OUT = REPO / "xcomlog" / "data"
#: Field errata and quantity exceptions, applied to what the appendix says (kept by hand).
DEFAULT_CORRECTIONS = DEFAULT_OUT / "corrections.toml"

# Family short names as in xcomlog.protocol.Family (kept as strings so the tool runs
# without the package installed).
#: Section title (as in the appendix's table of contents) -> (family, kind).
SECTION_RULES: list[tuple[str, str | None, str]] = [
    (r"^XTENDER 120 ?VAC SPECIFIC PARAMETERS$", "xt", "parameter_120v"),
    (r"^XTENDER PARAMETERS$", "xt", "parameter"),
    (r"^XTENDER INFOS$", "xt", "info"),
    (r"^RCC PARAMETERS$", "rcc", "parameter"),
    (r"^BSP PARAMETERS$", "bsp", "parameter"),
    (r"^BSP INFOS$", "bsp", "info"),
    (r"^XCOM-CAN BMS PARAMETERS$", "bms", "parameter"),
    (r"^XCOM-CAN BMS INFOS$", "bms", "info"),
    (r"^VARIOTRACK PARAMETERS$", "vt", "parameter"),
    (r"^VARIOTRACK INFOS$", "vt", "info"),
    (r"^VARIOSTRING PARAMETERS$", "vs", "parameter"),
    (r"^VARIOSTRING INFOS$", "vs", "info"),
    (r"^RCC MESSAGES$", None, "message"),
]
FAMILY_ORDER = ["xt", "vt", "vs", "bsp", "bms", "rcc"]

LEVELS = {
    "V.O.": "View only",
    "Basic": "Basic",
    "Expert": "Expert",
    "Inst.": "Installer",
    "QSP": "QSP",
}
#: Appendix "Scom format" / "Format" text -> xcomlog.protocol.Format name ("" = none).
FORMATS = {
    "BOOL": "BOOL",
    "FORMAT": "FORMAT",
    "SHORT ENUM": "SHORT_ENUM",
    "LONG ENUM": "LONG_ENUM",
    "ERROR": "ERROR",
    "INT32": "INT32",
    "FLOAT": "FLOAT",
    "STRING": "STRING",
    "DYNAMIC": "DYNAMIC",
    "BYTE STREAM": "BYTE_STREAM",
    "ONLY LEVEL": "",
    "NOT SUPPORTED": "",
}
#: Horizontal distance (PDF points) between two menu depths in the description column.
INDENT_STEP = 9.6
INDENT_BASE = 3.0

DATAPOINT_COLUMNS = [
    "family",
    "kind",
    "number",
    "parent",
    "level",
    "name",
    "short_name",
    "unit",
    "rcc_unit",
    "format",
    "format_text",
    "default",
    "minimum",
    "maximum",
    "increment",
    "default_text",
    "min_text",
    "max_text",
    "options",
    "is_signal",
    "only_level",
    "bit_field",
    "default_120v",
    "min_120v",
    "max_120v",
    "other_parents",
    "description",
    "quantity",
    "statistic",
    "part_of",
]
MESSAGE_COLUMNS = ["number", "severity", "text"]

_OPTION = re.compile(r"^\s*([+-]?\d+)\s*:\s*(.*?)\s*$")
_LEADING_NUMBER = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(?:[:=]|$)")
_MESSAGE = re.compile(r"^\s*(?:(\w+)\s+)?\((\d+)\)\s*:\s*(.*?)\s*$", re.S)
#: "Battery voltage (minute avg)": the minute statistic of the quantity "Battery voltage".
_MINUTE_STAT = re.compile(r"^(.*?)\s*\(minute (avg|min|max)\)$", re.I)
#: "PV1 power": one input's part of "PV power" (VarioString inputs PV1 and PV2).
_PV_INPUT = re.compile(r"\bPV[12]\b")
#: Datapoint fields a correction may change, and how their value is stored.
CORRECTABLE = {
    "number": int,
    "name": str,
    "short_name": str,
    "unit": str,
    "default": float,
    "minimum": float,
    "maximum": float,
    "increment": float,
}


class AppendixError(Exception):
    """The appendix holds something this generator does not understand."""


@dataclass
class Row:
    """One table row of the appendix with its location and description indentation."""

    page: int
    cells: dict[str, str]
    depth: int


@dataclass
class Section:
    """A titled section of the appendix and the rows of its tables."""

    title: str
    family: str | None
    kind: str
    rows: list[Row] = field(default_factory=list)


# --- Reading the PDF -------------------------------------------------------------------


def _clean(text: str | None) -> str:
    """Cell text with runs of blanks collapsed; line breaks are kept (they separate options)."""
    if not text:
        return ""
    lines = [" ".join(line.split()) for line in text.replace("\r", "").split("\n")]
    return "\n".join(line for line in lines if line)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _header_key(text: str) -> str | None:
    """Canonical column key of a table header cell, None if the cell is no header."""
    t = _one_line(text).lower()
    if t == "level":
        return "level"
    if t == "nr":
        return "number"
    if t.endswith("parameter description") or t.endswith("information description"):
        return "name"
    if t == "messages":
        return "message"
    if t == "unit on the rcc":
        return "rcc_unit"
    if t == "unit":
        return "unit"
    if t == "default":
        return "default"
    if t == "min":
        return "min"
    if t == "max":
        return "max"
    if t in ("scom format", "format"):
        return "format"
    if t == "increment":
        return "increment"
    if t == "short desc.":
        return "short_name"
    if t.startswith("related parameter"):
        return "description"
    return None


def _toc_titles(pages_text: Iterable[str]) -> list[str]:
    """Section titles from the table of contents ("TITLE ....... page")."""
    titles = []
    for text in pages_text:
        if "Contents" not in text:
            continue
        for line in text.splitlines():
            m = re.match(r"^\s*(.+?)\s*\.{5,}\s*\d+\s*$", line)
            if m and not re.match(r"^\d+\.", m.group(1)):
                titles.append(_one_line(m.group(1)).upper())
        if titles:
            break
    if not titles:
        raise AppendixError("no table of contents found on the first pages")
    return titles


def _classify(title: str) -> tuple[str | None, str]:
    for pattern, family, kind in SECTION_RULES:
        if re.match(pattern, title):
            return family, kind
    raise AppendixError(
        f"unknown appendix section {title!r}: add it to SECTION_RULES in tools/build_catalog.py"
    )


def _cell_depth(page, bbox) -> int:
    """Menu depth of a description cell, from the x position of its first visible character."""
    x0, top, x1, bottom = bbox
    xs = [
        c["x0"]
        for c in page.chars
        if c["text"].strip() and x0 <= c["x0"] < x1 and top <= c["top"] < bottom
    ]
    if not xs:
        return 0
    return max(0, round((min(xs) - x0 - INDENT_BASE) / INDENT_STEP))


def read_sections(pdf_path: Path) -> tuple[list[Section], dict[str, str]]:
    """Every section of the appendix with its table rows, in document order, plus metadata."""
    try:
        import pdfplumber
    except ImportError:  # a tool-only dependency
        raise SystemExit(
            "tools/build_catalog.py needs pdfplumber: pip install pdfplumber"
        ) from None

    with pdfplumber.open(str(pdf_path)) as pdf:
        first_texts = [(p.extract_text() or "") for p in pdf.pages[:3]]
        titles = _toc_titles(first_texts)
        title_set = set(titles)
        meta = {"source": Path(pdf_path).name}
        m = re.search(r"Version\s*:\s*(V[\d.]+)(?:\s*\((R\d+)\))?", first_texts[0])
        if m:
            meta["version"] = m.group(1)
            if m.group(2):
                meta["release"] = m.group(2)
        m = re.search(r"Date\s*:\s*([\d.]+)", first_texts[0])
        if m:
            meta["date"] = m.group(1)

        sections: list[Section] = []
        current: Section | None = None
        header: list[str | None] | None = None
        for page_number, page in enumerate(pdf.pages, start=1):
            tables = page.find_tables()
            boxes = [t.bbox for t in tables]

            def outside(obj, boxes=boxes):
                cx = (obj["x0"] + obj["x1"]) / 2
                cy = (obj["top"] + obj["bottom"]) / 2
                return not any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes)

            events: list[tuple[float, str, object]] = []
            for line in page.filter(outside).extract_text_lines():
                title = _one_line(line["text"]).upper()
                if title in title_set:
                    events.append((line["top"], "title", title))
            for table in tables:
                events.append((table.bbox[1], "table", table))
            events.sort(key=lambda e: e[0])

            for _, what, obj in events:
                if what == "title":
                    family, kind = _classify(obj)
                    current = Section(obj, family, kind)
                    sections.append(current)
                    header = None
                    continue
                if current is None:
                    raise AppendixError(f"page {page_number}: a table before any section title")
                table = obj
                texts = table.extract()
                for row_obj, raw in zip(table.rows, texts, strict=True):
                    cells = [_clean(c) for c in raw]
                    if not any(cells):
                        continue
                    keys = [_header_key(c) for c in cells]
                    if all(k is not None for k in keys):
                        header = keys
                        continue
                    # A header fused with the first row (no rule between them): split it.
                    first_lines = [c.split("\n", 1) for c in cells]
                    if all(len(p) == 2 for p in first_lines) and all(
                        _header_key(p[0]) is not None for p in first_lines
                    ):
                        header = [_header_key(p[0]) for p in first_lines]
                        cells = [p[1] for p in first_lines]
                    if header is None or len(header) != len(cells):
                        raise AppendixError(
                            f"page {page_number}: table row {cells!r} has no matching header"
                        )
                    row = dict(zip(header, cells, strict=True))
                    depth = 0
                    if "name" in header:
                        bbox = row_obj.cells[header.index("name")]
                        if bbox is not None:
                            depth = _cell_depth(page, bbox)
                    current.rows.append(Row(page_number, row, depth))
    return sections, meta


# --- Interpreting cells ----------------------------------------------------------------


def _number(text: str) -> float | None:
    """The leading number of a value cell: '60', '1:Yes', '420=07:00', '-0.1: Inductive'."""
    m = _LEADING_NUMBER.match(_one_line(text))
    if not m:
        return None
    return float(m.group(1))


def _num_text(value: float | None) -> str:
    if value is None:
        return ""
    if value == int(value):
        return str(int(value))
    return repr(value)


def _options(lines: Iterable[str]) -> dict[int, str]:
    """'N:label' lines -> {N: label}; a line that is no option continues the previous label."""
    options: dict[int, str] = {}
    last = None
    for line in lines:
        m = _OPTION.match(line)
        if m:
            last = int(m.group(1))
            options[last] = m.group(2)
        elif last is not None:
            options[last] = f"{options[last]} {line.strip()}"
    return options


def _is_option_list(text: str) -> bool:
    lines = [line for line in text.split("\n") if line.strip()]
    return bool(lines) and all(_OPTION.match(line) for line in lines)


def _format_name(text: str, where: str) -> str:
    key = _one_line(text).upper()
    if key not in FORMATS:
        raise AppendixError(f"{where}: unknown format {text!r}")
    return FORMATS[key]


def _level(text: str, where: str) -> str:
    key = _one_line(text)
    if key not in LEVELS:
        raise AppendixError(f"{where}: unknown access level {text!r}")
    return LEVELS[key]


def _row_number(row: Row, where: str) -> int:
    text = _one_line(row.cells.get("number", ""))
    if not text.isdigit():
        # A row cut by a page break, or a new column layout: stop rather than guess.
        raise AppendixError(f"{where}: row without a number: {row.cells!r}")
    return int(text)


def _parameter(section: Section, row: Row) -> dict[str, object]:
    c = row.cells
    where = f"page {row.page}, {section.title.lower()} {c.get('number')!r}"
    number = _row_number(row, where)
    format_text = _one_line(c.get("format", ""))
    fmt = _format_name(format_text, where)
    increment_text = c.get("increment", "")
    inc_lines = [line for line in increment_text.split("\n") if line.strip()]
    is_menu = format_text.upper() == "ONLY LEVEL" or increment_text == "Menu"
    is_signal = increment_text == "Signal"
    bit_field = increment_text.lower() == "bit field"
    options: dict[int, str] = {}
    increment = None
    if inc_lines and inc_lines[0].lower() == "only 1 bit":
        options = _options(inc_lines[1:])
    elif not (is_menu or is_signal or bit_field) and increment_text:
        increment = _number(increment_text)
        if increment is None:
            raise AppendixError(f"{where}: unknown increment {increment_text!r}")
    texts = {k: _one_line(c.get(k, "")) for k in ("default", "min", "max")}
    values = {k: (None if is_signal else _number(v)) for k, v in texts.items()}
    for k, v in texts.items():
        if v and v not in ("S", "None") and values[k] is None:
            raise AppendixError(f"{where}: unreadable {k} value {v!r}")
    if fmt == "BOOL":
        # BOOL rows spell their two states in the value columns ("0:No", "1:Yes").
        for k in ("default", "min", "max"):
            options.update(_options([texts[k]]))
    return {
        "family": section.family,
        "kind": "menu" if is_menu else "parameter",
        "number": number,
        "level": _level(c.get("level", ""), where),
        "name": _one_line(c.get("name", "")),
        "short_name": "",
        "unit": _one_line(c.get("unit", "")),
        "rcc_unit": "",
        "format": fmt,
        "format_text": format_text,
        "default": values["default"],
        "minimum": values["min"],
        "maximum": values["max"],
        "increment": increment,
        "default_text": texts["default"],
        "min_text": texts["min"],
        "max_text": texts["max"],
        "options": options,
        "is_signal": is_signal,
        "only_level": format_text.upper() == "ONLY LEVEL",
        "bit_field": bit_field,
        "description": "",
        "_depth": row.depth,
    }


def _info(section: Section, row: Row) -> dict[str, object]:
    c = row.cells
    where = f"page {row.page}, {section.title.lower()} {c.get('number')!r}"
    number = _row_number(row, where)
    format_text = _one_line(c.get("format", ""))
    fmt = _format_name(format_text, where)
    unit_text = c.get("unit", "")
    rcc_unit = _one_line(c.get("rcc_unit", ""))
    description = _one_line(c.get("description", ""))
    options: dict[int, str] = {}
    unit = _one_line(unit_text)
    if _is_option_list(unit_text):
        options = _options(unit_text.split("\n"))
        unit = ""
    elif "\n" in unit_text or " " in unit:
        # A note in the unit column (3001: "°C no sensor : return ~32767 °C").
        unit = rcc_unit
        description = f"{description} ({_one_line(unit_text)})".strip()
    if not unit:
        unit = rcc_unit
    return {
        "family": section.family,
        "kind": "info",
        "number": number,
        "level": "",
        "name": _one_line(c.get("name", "")),
        "short_name": _one_line(c.get("short_name", "")),
        "unit": unit,
        "rcc_unit": rcc_unit,
        "format": fmt,
        "format_text": format_text,
        "default": None,
        "minimum": None,
        "maximum": None,
        "increment": None,
        "default_text": "",
        "min_text": "",
        "max_text": "",
        "options": options,
        "is_signal": False,
        "only_level": False,
        "bit_field": False,
        "description": description,
        "_depth": 0,
    }


_COMPARED = (
    "kind",
    "level",
    "name",
    "unit",
    "format_text",
    "default",
    "minimum",
    "maximum",
    "increment",
    "options",
    "is_signal",
    "bit_field",
)


def build(sections: list[Section]) -> tuple[list[dict], list[dict]]:
    """Datapoint rows (one per family and number) and message rows from the parsed sections."""
    datapoints: dict[tuple[str, int], dict] = {}
    variants_120v: dict[int, dict] = {}
    messages: dict[int, dict] = {}
    for section in sections:
        stack: list[tuple[int, int]] = []  # (depth, menu number)
        for row in section.rows:
            if section.kind == "message":
                number = _row_number(row, f"page {row.page}, message")
                m = _MESSAGE.match(row.cells.get("message", ""))
                if not m or int(m.group(2)) != number:
                    raise AppendixError(f"page {row.page}: unreadable message {row.cells!r}")
                if number in messages:
                    raise AppendixError(f"page {row.page}: message {number} listed twice")
                messages[number] = {
                    "number": number,
                    "severity": m.group(1) or "",
                    "text": _one_line(m.group(3)),
                }
                continue
            if section.kind == "info":
                dp = _info(section, row)
            else:
                dp = _parameter(section, row)
            if section.kind == "parameter_120v":
                variants_120v[dp["number"]] = dp
                continue
            depth = dp.pop("_depth")
            while stack and stack[-1][0] >= depth:
                stack.pop()
            parent = stack[-1][1] if stack and section.kind == "parameter" else None
            if dp["kind"] == "menu":
                stack.append((depth, dp["number"]))
            key = (dp["family"], dp["number"])
            if key in datapoints:
                # Parameters are listed again in shortcut menus (BASIC SETTINGS) and in
                # related menus: the copies must agree; the parent menus are all kept.
                old = datapoints[key]
                diff = [k for k in _COMPARED if old[k] != dp[k]]
                if diff:
                    raise AppendixError(
                        f"page {row.page}: {key} listed twice with different {', '.join(diff)}"
                    )
                old["_parents"].append(parent)
                continue
            dp["_parents"] = [parent]
            datapoints[key] = dp
    for dp in datapoints.values():
        # The main parent is the first listing outside a BASIC SETTINGS shortcut menu.
        parents = list(dict.fromkeys(dp.pop("_parents")))
        shortcut = [
            p is not None
            and datapoints[(dp["family"], p)]["name"].upper().startswith("BASIC SETTINGS")
            for p in parents
        ]
        main = next((p for p, s in zip(parents, shortcut, strict=True) if not s), parents[0])
        dp["parent"] = main
        dp["other_parents"] = [p for p in parents if p != main and p is not None]
    for number, variant in variants_120v.items():
        dp = datapoints.get(("xt", number))
        if dp is None or dp["kind"] != "parameter":
            raise AppendixError(f"120 Vac variant of unknown Xtender parameter {number}")
        dp["default_120v"] = variant["default"]
        dp["min_120v"] = variant["minimum"]
        dp["max_120v"] = variant["maximum"]
    for (family, number), dp in datapoints.items():
        for parent in [dp["parent"], *dp["other_parents"]]:
            if parent is not None and datapoints.get((family, parent), {}).get("kind") != "menu":
                raise AppendixError(f"{family} {number}: parent {parent} is not a menu")
    return list(datapoints.values()), sorted(messages.values(), key=lambda m: m["number"])


# --- Field errata and quantities ----------------------------------------------------------


def load_corrections(path: Path) -> tuple[list[dict], list[dict]]:
    """The ``[[correction]]`` and ``[[quantity]]`` entries of the corrections file, checked."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AppendixError(f"cannot read the corrections file {path}: {exc}") from None
    unknown = set(data) - {"correction", "quantity"}
    if unknown:
        raise AppendixError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
    corrections = list(data.get("correction", []))
    quantities = list(data.get("quantity", []))
    for entry in corrections:
        missing = {"family", "number", "field", "appendix", "value", "source", "evidence"} - set(
            entry
        )
        if missing:
            raise AppendixError(f"{path}: correction {entry!r} lacks {', '.join(sorted(missing))}")
        if entry["field"] not in CORRECTABLE:
            raise AppendixError(
                f"{path}: correction of {entry['family']} {entry['number']}: field "
                f"{entry['field']!r} is not one of {', '.join(CORRECTABLE)}"
            )
    for entry in quantities:
        missing = {"family", "numbers", "quantity"} - set(entry)
        if missing:
            raise AppendixError(f"{path}: quantity {entry!r} lacks {', '.join(sorted(missing))}")
    return corrections, quantities


def apply_corrections(datapoints: list[dict], corrections: list[dict]) -> list[dict]:
    """The datapoints with every correction applied; an erratum the appendix no longer has
    (the field does not show ``appendix``) stops the generator instead of being guessed."""
    by_key = {(dp["family"], dp["number"]): dp for dp in datapoints}
    for c in corrections:
        key = (c["family"], int(c["number"]))
        dp = by_key.get(key)
        if dp is None:
            raise AppendixError(f"correction of {key}: the appendix has no such datapoint")
        field, kind = c["field"], CORRECTABLE[c["field"]]
        if dp[field] is None or kind(dp[field]) != kind(c["appendix"]):
            raise AppendixError(
                f"correction of {key}: the appendix now shows {field} = {dp[field]!r}, "
                f"not {c['appendix']!r}; check the erratum and update corrections.toml"
            )
        new = kind(c["value"])
        if field == "number":
            if (dp["family"], new) in by_key:
                raise AppendixError(f"correction of {key}: {new} is already a datapoint")
            del by_key[key]
            by_key[(dp["family"], new)] = dp
        dp[field] = new
    return datapoints


def assign_quantities(datapoints: list[dict], exceptions: list[dict]) -> None:
    """Give every user info its quantity, statistic and (for input parts) whole.

    The rule: "X (minute avg|min|max)" measures the quantity "X" as a minute statistic,
    any other info is the instantaneous ("instant") value of the quantity named like it.
    "PV1 power" is a part of "PV power". The corrections file's ``[[quantity]]`` entries
    name the quantity of infos the rule does not pair (11004 "Power of the PV generator").
    """
    fixed = {}
    for entry in exceptions:
        for number in entry["numbers"]:
            fixed[(entry["family"], int(number))] = entry["quantity"]
    known = {(dp["family"], dp["number"]) for dp in datapoints if dp["kind"] == "info"}
    for key in fixed:
        if key not in known:
            raise AppendixError(f"quantity exception for {key}: no such user info")
    for dp in datapoints:
        if dp["kind"] != "info":
            dp["quantity"] = dp["statistic"] = dp["part_of"] = ""
            continue
        m = _MINUTE_STAT.match(dp["name"])
        base, statistic = (m.group(1), f"minute {m.group(2).lower()}") if m else (dp["name"], "")
        quantity = fixed.get((dp["family"], dp["number"]), base)
        dp["quantity"] = quantity
        dp["statistic"] = statistic or "instant"
        whole = _PV_INPUT.sub("PV", quantity)
        dp["part_of"] = whole if whole != quantity else ""


# --- Writing ---------------------------------------------------------------------------


def _csv_value(column: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, float):
        return _num_text(value)
    if column == "options":
        # "1=Slow|2=Tolerant|4=Fast": read without a JSON parser, keys before the first "=".
        for label in value.values():
            if "|" in label or "\n" in label:
                raise AppendixError(f"option label {label!r} cannot be stored")
        return "|".join(f"{k}={value[k]}" for k in sorted(value))
    if column == "other_parents":
        return " ".join(str(p) for p in value)
    return str(value)


def render(datapoints: list[dict], messages: list[dict], meta: dict[str, str]) -> dict[str, str]:
    """The data files' contents by file name (deterministic, so a diff shows real changes)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DATAPOINT_COLUMNS)
    for dp in datapoints:
        writer.writerow([_csv_value(col, dp.get(col)) for col in DATAPOINT_COLUMNS])
    msg = io.StringIO()
    writer = csv.writer(msg, lineterminator="\n")
    writer.writerow(MESSAGE_COLUMNS)
    for m in messages:
        writer.writerow([m[col] for col in MESSAGE_COLUMNS])
    counts = count(datapoints, messages)
    meta = {**meta, "counts": counts}
    return {
        "datapoints.csv": out.getvalue(),
        "messages.csv": msg.getvalue(),
        "catalog_meta.json": json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
    }


def count(datapoints: list[dict], messages: list[dict]) -> dict[str, dict[str, int]]:
    """Number of datapoints per family and kind, plus messages."""
    counter = Counter((dp["family"], dp["kind"]) for dp in datapoints)
    result: dict[str, dict[str, int]] = {}
    for family in FAMILY_ORDER:
        kinds = {k: counter[(family, k)] for k in ("parameter", "info", "menu")}
        if any(kinds.values()):
            result[family] = kinds
    result["messages"] = {"message": len(messages)}
    return result


def generate(pdf_path: Path, corrections: Path | None = DEFAULT_CORRECTIONS) -> dict[str, str]:
    """Parse the appendix, apply the corrections file and return the data files' contents
    (nothing is written). ``corrections=None`` gives the appendix as printed."""
    sections, meta = read_sections(Path(pdf_path))
    datapoints, messages = build(sections)
    return finish(datapoints, messages, meta, corrections)


def finish(
    datapoints: list[dict],
    messages: list[dict],
    meta: dict[str, str],
    corrections: Path | None = DEFAULT_CORRECTIONS,
) -> dict[str, str]:
    """Corrections and quantities applied to parsed datapoints, rendered as data files."""
    errata, exceptions = load_corrections(corrections) if corrections else ([], [])
    datapoints = apply_corrections(datapoints, errata)
    assign_quantities(datapoints, exceptions)
    if errata:
        meta = {**meta, "corrections": len(errata)}
    return render(datapoints, messages, meta)


def _print_counts(meta: dict) -> None:
    counts = meta["counts"]
    print(f"appendix {meta.get('version', '?')} {meta.get('release', '')} ({meta['source']})")
    print(f"{'family':<8} {'parameter':>9} {'info':>6} {'menu':>6}")
    total = Counter()
    for family, kinds in counts.items():
        if family == "messages":
            continue
        print(f"{family:<8} {kinds['parameter']:>9} {kinds['info']:>6} {kinds['menu']:>6}")
        total.update(kinds)
    print(f"{'total':<8} {total['parameter']:>9} {total['info']:>6} {total['menu']:>6}")
    print(f"messages {counts['messages']['message']}")
    if meta.get("corrections"):
        print(f"field errata applied: {meta['corrections']} (xcomlog/data/corrections.toml)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "appendix",
        nargs="?",
        type=Path,
        default=DEFAULT_APPENDIX,
        help="the appendix PDF (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--corrections",
        type=Path,
        default=DEFAULT_CORRECTIONS,
        help="field errata and quantity exceptions to apply (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only compare with the files in --out; exit 1 if they differ",
    )
    args = parser.parse_args(argv)
    if not args.appendix.is_file():
        print(f"build_catalog: no appendix at {args.appendix}", file=sys.stderr)
        return 2
    try:
        files = generate(args.appendix, args.corrections)
    except AppendixError as exc:
        print(f"build_catalog: {exc}", file=sys.stderr)
        return 1
    _print_counts(json.loads(files["catalog_meta.json"]))
    if args.check:
        stale = [
            n
            for n, text in files.items()
            if not (args.out / n).is_file() or (args.out / n).read_text("utf-8") != text
        ]
        for name in stale:
            print(f"differs: {args.out / name}", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"wrote {', '.join(sorted(files))} to {args.out}")
    return 0


def iter_rows(files: dict[str, str], name: str) -> Iterator[dict[str, str]]:
    """Rows of a generated CSV file (for tests comparing data)."""
    yield from csv.DictReader(io.StringIO(files[name]))


if __name__ == "__main__":
    sys.exit(main())
