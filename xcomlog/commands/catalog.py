"""``xcomlog catalog``: search and show the datapoints and messages of the appendix.

Examples::

    xcomlog catalog search "battery voltage"          # the first 20, and how many more
    xcomlog catalog search "battery voltage" --all
    xcomlog catalog show 1138
    xcomlog catalog show 1140 --system-voltage 24   # limits of a 24 V installation
    xcomlog catalog show 7072                       # a field erratum, with its evidence
    xcomlog catalog show 7002            # both the BSP and the Xcom-CAN BMS entry
    xcomlog catalog list --family vs --kind info
    xcomlog catalog tree --family xt
    xcomlog catalog messages
    xcomlog catalog stats
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # heavy-ish imports stay inside the functions for a fast start-up
    from xcomlog.catalog import Catalog, Datapoint

KIND_CHOICES = ("parameter", "info", "menu")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``xcomlog catalog`` and its sub-commands."""
    parser = subparsers.add_parser(
        "catalog",
        help="search and show parameters, user infos and messages",
        description="Search and show the datapoints and messages of the Xcom appendix.",
    )
    parser.set_defaults(func=_help(parser))
    sub = parser.add_subparsers(dest="catalog_command", metavar="ACTION")

    def common(p: argparse.ArgumentParser, kind: bool = True) -> None:
        p.add_argument("--family", "-f", help="xt, vt, vs, bsp, bms or rcc")
        if kind:
            p.add_argument("--kind", "-k", choices=KIND_CHOICES)
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("search", help="find datapoints by name (exact, then fuzzy)")
    p.add_argument("query", nargs="+", help="words of the name, e.g. battery voltage")
    p.add_argument("--limit", "-n", type=int, default=20, help="show this many (default 20)")
    p.add_argument("--all", "-a", action="store_true", help="show every match")
    common(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("show", help="every detail of datapoints given by number or name")
    p.add_argument("datapoint", nargs="+", help="number (1138, xt:3000) or exact name")
    p.add_argument(
        "--system-voltage",
        type=int,
        choices=(12, 24, 48),
        help="battery-voltage limits for a 12, 24 or 48 V system (the appendix gives 48 V)",
    )
    common(p, kind=False)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("list", help="list the datapoints of a family and/or kind")
    common(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("tree", help="the menu tree of a family's parameters")
    p.add_argument("--family", "-f", help="xt, vt, vs, bsp, bms or rcc (default: all)")
    p.add_argument("--menus-only", action="store_true", help="hide the parameters")
    p.set_defaults(func=cmd_tree)

    p = sub.add_parser("messages", help="the RCC messages (all, or the numbers given)")
    p.add_argument("number", nargs="*", type=int)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_messages)

    p = sub.add_parser("stats", help="datapoints per family and kind, appendix version")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_stats)


def _help(parser: argparse.ArgumentParser):
    def show_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show_help


def _catalog() -> Catalog:
    from xcomlog.catalog import load_catalog

    return load_catalog()


def _family_arg(args: argparse.Namespace):
    if not getattr(args, "family", None):
        return None
    from xcomlog.catalog import parse_family

    return parse_family(args.family)


def _as_dict(dp: Datapoint) -> dict[str, object]:
    """A datapoint as plain JSON-able data."""
    data: dict[str, object] = {
        "family": dp.family.value,
        "kind": dp.kind,
        "number": dp.number,
        "name": dp.name,
        "short_name": dp.short_name,
        "unit": dp.unit,
        "level": dp.level,
        "format": dp.format.name if dp.format is not None else None,
        "format_text": dp.format_text,
        "object_type": dp.object_type.name,
        "parent": dp.parent,
        "other_parents": list(dp.other_parents),
        "default": dp.default,
        "minimum": dp.minimum,
        "maximum": dp.maximum,
        "increment": dp.increment,
        "options": {str(k): v for k, v in dp.options.items()},
        "is_signal": dp.is_signal,
        "only_level": dp.only_level,
        "bit_field": dp.bit_field,
        "description": dp.description,
        "quantity": dp.quantity,
        "statistic": dp.statistic,
    }
    if dp.has_120v_variant:
        data["default_120v"] = dp.default_120v
        data["min_120v"] = dp.min_120v
        data["max_120v"] = dp.max_120v
    return data


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _print_datapoints(dps: list[Datapoint], as_json: bool) -> None:
    if as_json:
        print(json.dumps([_as_dict(dp) for dp in dps], ensure_ascii=False, indent=2))
        return
    rows = [
        [dp.family.value, str(dp.number), dp.kind, dp.name, dp.unit, _format_word(dp)] for dp in dps
    ]
    print(_table(rows, ["family", "number", "kind", "name", "unit", "format"]))


def _format_word(dp: Datapoint) -> str:
    if dp.kind == "menu":
        return "menu"
    if dp.is_signal:
        return "signal"
    return dp.format.name if dp.format is not None else dp.format_text


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}"


def cmd_search(args: argparse.Namespace) -> int:
    """``xcomlog catalog search QUERY``."""
    cat = _catalog()
    query = " ".join(args.query)
    if args.limit < 1 and not args.all:
        print("xcomlog catalog: error: --limit must be at least 1", file=sys.stderr)
        return 2
    every = cat.search(query, limit=None, family=_family_arg(args), kind=args.kind)
    if not every:
        print(f"no datapoint matches {query!r}", file=sys.stderr)
        return 1
    found = every if args.all else every[: args.limit]
    _print_datapoints(found, args.json)
    rest = len(every) - len(found)
    if rest:
        # On stderr: the table on stdout stays what a script or a pipe expects.
        print(
            f"{len(found)} of {len(every)} matches shown; {rest} more: "
            f"--limit {len(every)} or --all to see them, --family/--kind to narrow",
            file=sys.stderr,
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``xcomlog catalog list``."""
    _print_datapoints(_catalog().datapoints(family=_family_arg(args), kind=args.kind), args.json)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``xcomlog catalog show 1138 [3000 ...]``: ambiguous numbers show every family's entry."""
    from xcomlog.exceptions import CatalogError

    cat = _catalog()
    if args.system_voltage:
        cat = cat.for_system_voltage(args.system_voltage)
    family = _family_arg(args)
    shown: list[Datapoint] = []
    status = 0
    for query in args.datapoint:
        text = query.strip()
        if text.isdigit():
            found = cat.find(int(text), family)
            if not found:
                print(f"xcomlog catalog: error: unknown datapoint {text}", file=sys.stderr)
                status = 1
            shown.extend(found)
            continue
        exact = [
            dp
            for dp in cat.datapoints(family=family)
            if text.casefold() in (dp.name.casefold(), dp.short_name.casefold())
        ]
        if exact:
            shown.extend(exact)
            continue
        try:
            shown.append(cat.resolve(text, family))
        except CatalogError as exc:
            print(f"xcomlog catalog: error: {exc}", file=sys.stderr)
            status = 1
    if args.json:
        print(json.dumps([_as_dict(dp) for dp in shown], ensure_ascii=False, indent=2))
        return status
    for i, dp in enumerate(shown):
        if i:
            print()
        print(_describe(cat, dp))
    return status


def _describe(cat: Catalog, dp: Datapoint) -> str:
    from xcomlog.catalog import FAMILY_NAMES

    lines = [f"{dp.number}  {dp.name}"]

    def add(label: str, value: object) -> None:
        if value not in (None, "", [], ()):
            lines.append(f"  {label:<13} {value}")

    add("family", f"{FAMILY_NAMES[dp.family]} ({dp.family.value})")
    kind = dp.kind + (" (signal)" if dp.is_signal else "")
    add("kind", f"{kind}, object type {dp.object_type.name} ({int(dp.object_type)})")
    add("short name", dp.short_name)
    add("level", dp.level)
    fmt = dp.format.name if dp.format is not None else "-"
    add("format", f"{fmt} (appendix: {dp.format_text})" if dp.format_text else fmt)
    add(
        "unit",
        dp.unit + (f" (RCC shows {dp.rcc_unit})" if dp.rcc_unit not in ("", dp.unit) else ""),
    )
    if dp.kind == "parameter" and not dp.is_signal:
        if dp.scales_with_system_voltage:
            add(
                "system",
                f"{cat.system_voltage} V values (battery voltage: x1/2 on 24 V, x1/4 on 12 V "
                "systems; --system-voltage)",
            )
        add("default", dp.default_text or _num(dp.default))
        add("min", dp.min_text or _num(dp.minimum))
        add("max", dp.max_text or _num(dp.maximum))
        add("increment", _num(dp.increment) if dp.increment is not None else "")
    if dp.has_120v_variant:
        add(
            "120 Vac",
            f"default {_num(dp.default_120v)}, min {_num(dp.min_120v)}, max {_num(dp.max_120v)}",
        )
    if dp.bit_field:
        add("bit field", "yes: each bit selects an item")
    if dp.options:
        lines.append("  options")
        for key, label in dp.options.items():
            lines.append(f"    {key:>6}  {label}")
    path = cat.path(dp)
    if path:
        add("menu", " > ".join(f"{m.name} ({m.number})" for m in path))
    for other in dp.other_parents:
        menu = cat.find(other, dp.family)
        if menu:
            add("also in", f"{menu[0].name} ({other})")
    if dp.kind == "menu":
        children = cat.children(dp)
        add("entries", len(children))
    add("description", dp.description)
    if dp.quantity:
        others = [o for o in cat.same_quantity(dp) if o.number != dp.number]
        same = ", ".join(f"{o.number} ({o.statistic})" for o in others)
        text = f"{dp.quantity} ({dp.statistic})"
        add("quantity", text + (f"; also measured by {same}" if same else ""))
        if dp.part_of:
            add("part of", dp.part_of)
    for c in cat.corrections(dp):
        appendix = f"the appendix {cat.version}" if cat.version else "the appendix"
        lines.append(f"  {'erratum':<13} {c.field} {c.value} ({appendix} says {c.appendix})")
        lines.append(f"  {'source':<13} {c.source}")
        lines.append(f"  {'evidence':<13} {c.evidence}")
    multicast, first, last = cat.family_addresses(dp.family)
    where = f"{first}" if first == last else f"{first}-{last}"
    if multicast is not None:
        where += f", multicast {multicast}"
    add("addresses", where)
    return "\n".join(lines)


def cmd_tree(args: argparse.Namespace) -> int:
    """``xcomlog catalog tree``: the parameter menus, indented."""
    cat = _catalog()
    family = _family_arg(args)
    from xcomlog.protocol import Family

    families = [family] if family is not None else list(Family)
    for fam in families:
        dps = [dp for dp in cat.datapoints(family=fam) if dp.kind != "info"]
        if not dps:
            continue
        print(f"[{fam.value}]")
        for dp in dps:
            if args.menus_only and dp.kind != "menu":
                continue
            depth = len(cat.path(dp))
            marker = "+" if dp.kind == "menu" else "-"
            print(f"{'  ' * depth}{marker} {dp.number} {dp.name}")
    return 0


def cmd_messages(args: argparse.Namespace) -> int:
    """``xcomlog catalog messages [N ...]``."""
    cat = _catalog()
    status = 0
    if args.number:
        messages = []
        for n in args.number:
            if n in cat.messages:
                messages.append(cat.messages[n])
            else:
                print(f"xcomlog catalog: error: unknown message {n}", file=sys.stderr)
                status = 1
    else:
        messages = [cat.messages[n] for n in sorted(cat.messages)]
    if args.json:
        print(json.dumps([m._asdict() for m in messages], ensure_ascii=False, indent=2))
    elif messages:
        rows = [[str(m.number), m.severity or "-", m.text] for m in messages]
        print(_table(rows, ["number", "severity", "text"]))
    return status


def cmd_stats(args: argparse.Namespace) -> int:
    """``xcomlog catalog stats``: counts per family and kind."""
    from collections import Counter

    cat = _catalog()
    from xcomlog.protocol import Family

    counts = Counter((dp.family.value, dp.kind) for dp in cat)
    present = {dp.family for dp in cat}
    families = [f.value for f in Family if f in present]
    if args.json:
        data = {f: {k: counts[(f, k)] for k in KIND_CHOICES} for f in families}
        print(
            json.dumps(
                {"version": cat.version, "families": data, "messages": len(cat.messages)}, indent=2
            )
        )
        return 0
    rows = [[f, *(str(counts[(f, k)]) for k in KIND_CHOICES)] for f in families]
    rows.append(["total", *(str(sum(counts[(f, k)] for f in families)) for k in KIND_CHOICES)])
    print(f"appendix {cat.version or '?'} {cat.meta.get('release', '')}".rstrip())
    print(_table(rows, ["family", *KIND_CHOICES]))
    print(f"messages: {len(cat.messages)}")
    return 0
