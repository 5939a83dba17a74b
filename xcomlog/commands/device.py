"""``xcomlog read|write|scan|messages``: talk to an installation from the command line.

    xcomlog read 3000 --device xt1 --tcp 192.168.1.50:4001
    xcomlog write 1138 12 --device xt1 --serial /dev/ttyUSB0     (RAM; --flash to save)
    xcomlog scan --udp 192.168.1.50
    xcomlog messages --count 50 --listen 4001

Output is for people; ``--json`` prints one JSON document for scripts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from ._link import add_device_command_options, client_from_args

_PROPERTIES = {
    "value": "VALUE_QSP",
    "min": "MIN_QSP",
    "max": "MAX_QSP",
    "level": "LEVEL_QSP",
    "unsaved": "UNSAVED_VALUE_QSP",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``read``, ``write``, ``scan`` and ``messages`` sub-commands."""
    read = subparsers.add_parser(
        "read",
        help="read user infos or parameters",
        description="Read user infos or parameters (by number or name) from devices.",
        epilog=(
            "examples:\n"
            "  xcomlog read 3000 --device xt1 --tcp 192.168.1.50:4001\n"
            "  xcomlog read 3000 3005 'Battery cycle phase' --device xt1,xt2 --serial /dev/ttyUSB0\n"
            "  xcomlog read 1138 --prop max --device xt1 --udp 192.168.1.50 --json\n"
            "  xcomlog read 3000 7002 --device xt1,bsp --tcp 192.168.1.50:4001\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    read.add_argument("datapoints", nargs="+", metavar="DATAPOINT", help="number or name")
    read.add_argument(
        "--device",
        metavar="DEV[,DEV]",
        help="xt1..xt9, vt1.., vs1.., bsp, l1-l3, gateway or an address (default: the "
        "datapoint family's first device); with several devices each number is read from "
        "the devices whose family has it",
    )
    read.add_argument(
        "--prop",
        choices=sorted(_PROPERTIES),
        default="value",
        help="parameter property: value (flash), unsaved (RAM), min, max or level "
        "(user infos have only a value)",
    )
    add_system_voltage_option(read)
    add_device_command_options(read)
    read.set_defaults(func=run_read)

    write = subparsers.add_parser(
        "write",
        help="write a parameter (to RAM unless --flash)",
        description=(
            "Write a parameter. The value goes to RAM (the 'unsaved value', lost at a "
            "restart) unless --flash is given: flash survives restarts but endures only "
            "about 1000 writes per parameter. The value is checked against the catalog "
            "(format, range, options, level) before anything is sent. Signals (which act "
            "at once, e.g. 'Restore factory settings') and parameters above the Basic (user) "
            "level ask for confirmation on a terminal; scripts add --yes."
        ),
        epilog=(
            "examples:\n"
            "  xcomlog write 1138 12 --device xt1 --tcp 192.168.1.50:4001\n"
            "  xcomlog write 1138 12 --device xt1,xt2 --tcp 192.168.1.50:4001\n"
            "  xcomlog write 1126 Yes --device xt --serial /dev/ttyUSB0   (all Xtenders)\n"
            "  xcomlog write 1107 16 --device xt1 --flash --udp 192.168.1.50\n"
            "  xcomlog write 1143 46 --device xt --yes --tcp 192.168.1.50:4001   (Expert level)\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    write.add_argument("datapoint", metavar="DATAPOINT", help="parameter number or name")
    write.add_argument("value", metavar="VALUE", help="number, or an option label such as Yes")
    write.add_argument(
        "--device",
        required=True,
        metavar="DEV[,DEV]",
        help="where the value goes (required): a device (xt1), a list (xt1,xt2) or every "
        "device of a family in one multicast write (xt, vt, vs)",
    )
    write.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="do not ask before a signal or a parameter above the Basic level (for scripts)",
    )
    write.add_argument("--flash", action="store_true", help="save in flash (limited write cycles)")
    write.add_argument(
        "--no-verify", action="store_true", help="do not read the value back after writing"
    )
    add_system_voltage_option(write)
    add_device_command_options(write)
    write.set_defaults(func=run_write)

    scan = subparsers.add_parser(
        "scan",
        help="find the devices of an installation",
        description=(
            "List the devices that answer: address, model (from their identification "
            "infos), firmware and factory id, and the installation's system voltage."
        ),
    )
    scan.add_argument(
        "--all-addresses",
        action="store_true",
        help="try every address instead of stopping at the first missing device",
    )
    add_system_voltage_option(scan)
    add_device_command_options(scan)
    scan.set_defaults(func=run_scan)

    messages = subparsers.add_parser(
        "messages",
        help="read the gateway's message log",
        description="Read the messages stored by the Xcom-232i, newest first.",
    )
    messages.add_argument("--count", type=int, default=20, help="how many messages (20); 0 for all")
    messages.add_argument(
        "--since",
        metavar="DATE",
        help="stop at messages older than this (YYYY-MM-DD[ HH:MM], installation clock)",
    )
    add_device_command_options(messages)
    messages.set_defaults(func=run_messages)


# --- helpers ----------------------------------------------------------------------------


def _system_voltage_arg(text: str) -> int:
    from ..client.system_voltage import check_system_voltage
    from ..exceptions import ValidationError, XcomError

    try:
        return check_system_voltage(text, "--system-voltage")
    except ValidationError as exc:  # argparse would swallow a ValueError (see _options)
        raise XcomError(str(exc)) from None


_system_voltage_arg.__name__ = "system voltage"


def add_system_voltage_option(parser: argparse.ArgumentParser) -> None:
    """``--system-voltage 12|24|48``: the battery-voltage limits values are checked against."""
    parser.add_argument(
        "--system-voltage",
        type=_system_voltage_arg,
        default=None,
        metavar="V",
        help="12, 24 or 48: the installation's battery voltage, for the limits of the "
        "battery-voltage parameters (default: asked from the installation when needed)",
    )


def _addresses(text: str | None) -> list[int | None]:
    from ..exceptions import ValidationError
    from ..protocol import parse_device

    if not text:
        return [None]
    out: list[int | None] = []
    for word in text.split(","):
        word = word.strip()
        if not word:
            continue
        try:
            out.append(parse_device(word))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
    return out or [None]


def resolve(catalog: Any, query: str, address: int | None) -> tuple[Any, int]:
    """The datapoint a command-line word names for a device, and the address to use."""
    from ..exceptions import CatalogError, ValidationError
    from ..protocol import FAMILY_ADDRESSES, Family, family_of_address

    family = family_of_address(address) if address is not None else None
    families = [family] if family is not None else [None]
    if family is Family.BSP:
        families.append(Family.XCOM_CAN_BMS)
    if address is not None and family is None:
        raise ValidationError(f"address {address} belongs to no device family")
    error: CatalogError | None = None
    for fam in families:
        try:
            dp = catalog.resolve(query.strip(), fam)
            break
        except CatalogError as exc:
            error = error or exc
    else:
        assert error is not None
        text = query.strip()
        if address is None and text.isdigit() and len(catalog.find(int(text))) > 1:
            names = ", ".join(dp.family.value for dp in catalog.find(int(text)))
            raise ValidationError(
                f"{text} exists for several device families ({names}): choose one with --device"
            ) from None
        raise error
    if dp.kind == "menu":
        raise ValidationError(f"{dp} is a menu of the remote control, not a value")
    if address is None:
        address = FAMILY_ADDRESSES[dp.family][1]
    return dp, address


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def _emit_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


# --- read ---------------------------------------------------------------------------------


def read_targets(catalog: Any, queries: list[str], addresses: list[int | None]) -> list:
    """(datapoint, address) pairs to read, device by device.

    With one device (or none) every query must exist for it. With several, each query is
    read from the devices whose family has it (``3000 7002 --device xt1,bsp``); a query
    that no listed device has is an error.
    """
    from ..exceptions import CatalogError, ValidationError

    if len(addresses) == 1:
        return [resolve(catalog, query, addresses[0]) for query in queries]
    targets: list[tuple[Any, int]] = []
    found = dict.fromkeys(queries, False)
    errors: dict[str, Exception] = {}
    for address in addresses:
        for query in queries:
            try:
                targets.append(resolve(catalog, query, address))
                found[query] = True
            except (CatalogError, ValidationError) as exc:
                errors.setdefault(query, exc)
    for query, ok in found.items():
        if not ok:
            raise ValidationError(
                f"none of the devices {', '.join(_device_names(addresses))} has {query!r}: "
                f"{errors[query]}"
            )
    return targets


def _device_names(addresses: list[int | None]) -> list[str]:
    from ..protocol import device_name

    return [device_name(a) if a is not None else "?" for a in addresses]


def format_value(catalog: Any, dp: Any, value: Any) -> str:
    """A value as a person reads it: its option label, or the number at its unit's precision."""
    from ..formatting import format_quantity

    label = catalog.label(dp, value)
    if label is not None:
        return f"{label} ({int(float(value))})"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_quantity(value, dp.unit)
    return catalog.format_value(dp, value)


def run_read(args: argparse.Namespace) -> int:
    from ..catalog import load_catalog
    from ..exceptions import DeviceError, ValidationError, XcomTimeout
    from ..protocol import AccessLevel, Property, device_name
    from ._progress import note_quiet_window

    catalog = load_catalog()
    prop = Property[_PROPERTIES[args.prop]]
    targets = read_targets(catalog, args.datapoints, _addresses(args.device))
    if args.prop != "value":
        infos = sorted({str(dp) for dp, _ in targets if dp.kind != "parameter"})
        if infos:
            raise ValidationError(
                f"--prop {args.prop} applies to parameters only; user infos have just a value "
                f"({', '.join(infos)})"
            )
    rows: list[dict[str, Any]] = []
    failed = False
    with client_from_args(args, catalog=catalog, system_voltage=args.system_voltage) as client:
        note_quiet_window(client)
        for dp, address in targets:
            row: dict[str, Any] = {
                "device": device_name(address),
                "address": address,
                "family": dp.family.value,
                "kind": dp.kind,
                "number": dp.number,
                "name": dp.name,
                "property": args.prop if dp.kind == "parameter" else "value",
                "unit": dp.unit,
            }
            try:
                if dp.kind == "info":
                    value = client.read_info(dp.number, address)
                else:
                    value = client.read_param(dp.number, address, prop)
            except (DeviceError, XcomTimeout) as exc:
                row["error"] = _error_text(exc)
                failed = True
            else:
                if isinstance(value, AccessLevel):
                    row["value"] = value.name
                    row["text"] = value.name.replace("_", " ").title()
                else:
                    row["value"] = _jsonable(value)
                    row["label"] = catalog.label(dp, value)
                    row["text"] = format_value(catalog, dp, value)
            rows.append(row)
    if args.json:
        _emit_json(rows)
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            prop_note = "" if r["property"] == "value" else f" [{r['property']}]"
            shown = r.get("text") if "error" not in r else "error: " + r["error"]
            print(f"{r['device']:<8} {r['number']:>5}  {r['name']:<{width}}{prop_note}  {shown}")
    return 1 if failed else 0


# --- write --------------------------------------------------------------------------------

#: Parameter levels a write asks about (the Basic level is the owner's, "View only" is refused).
CONFIRM_LEVELS = ("Expert", "Installer", "QSP")


def needs_confirmation(dp: Any) -> bool:
    """Signals act at once; Expert, Installer and QSP parameters are not the owner's to touch."""
    return bool(dp.is_signal) or dp.level in CONFIRM_LEVELS


def describe_write(dp: Any, value_text: str, targets: str, *, flash: bool) -> str:
    """What a write will do, in words, for the confirmation."""
    if dp.is_signal:
        return (
            f'send the {dp.level}-level signal {dp.number} "{dp.name}" to {targets}: '
            "it acts at once and a restart does not undo it"
        )
    where = "flash (kept across restarts)" if flash else "RAM (until the next restart)"
    return (
        f'set the {dp.level}-level parameter {dp.number} "{dp.name}" to {value_text} '
        f"on {targets}, in {where}"
    )


def confirm(action: str, *, yes: bool) -> bool:
    """True to go on: ``--yes``, or a person typed y on the terminal.

    Without a terminal and without ``--yes`` nothing is asked and the write is refused.
    """
    from ..exceptions import ValidationError

    if yes:
        return True
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise ValidationError(
            f"refusing without confirmation to {action} (confirm on a terminal, or add --yes)"
        )
    # The question goes to stderr: stdout stays the command's output.
    print(f"This will {action}.", file=sys.stderr)
    print("Go on? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _targets_text(addresses: list[int]) -> str:
    from ..catalog import FAMILY_NAMES
    from ..protocol import device_name, family_of_address, is_multicast

    words = []
    for address in addresses:
        family = family_of_address(address)
        if is_multicast(address) and family is not None:
            words.append(f"every {FAMILY_NAMES.get(family, family.value)} ({device_name(address)})")
        else:
            words.append(device_name(address))
    return ", ".join(words)


def _checked_writes(
    catalog: Any, targets: list, value: str, volts: int | None, *, asked: bool = False
) -> list:
    """(datapoint, address, value) of each target, the value checked against the catalog
    with the limits of ``volts`` (the appendix's 48 V when None)."""
    from ..exceptions import ValidationError

    writes = []
    for dp, address in targets:
        try:
            writes.append((dp, address, catalog.validate(dp, value, system_voltage=volts)))
        except ValidationError as exc:
            if dp.scales_with_system_voltage and volts is None and asked:
                raise ValidationError(
                    f"{exc} (no device told the system voltage: give --system-voltage 12, 24 or 48)"
                ) from None
            raise
    return writes


def _confirmed(catalog: Any, writes: list, addresses: list[int], args: argparse.Namespace) -> bool:
    """True to go on: no confirmation needed, ``--yes``, or a person said yes."""
    dp, _, value = writes[0]
    if not needs_confirmation(dp):
        return True
    action = describe_write(
        dp, format_value(catalog, dp, value), _targets_text(addresses), flash=args.flash
    )
    if confirm(action, yes=args.yes):
        return True
    print("nothing was written", file=sys.stderr)
    return False


def run_write(args: argparse.Namespace) -> int:
    from ..catalog import load_catalog
    from ..exceptions import ValidationError
    from ..protocol import Property, device_name, is_multicast, is_phase

    catalog = load_catalog()
    addresses = [a for a in _addresses(args.device) if a is not None]
    if not addresses:
        raise ValidationError(
            "--device names no device: give one (xt1), a list (xt1,xt2) or a family (xt)"
        )
    if len(set(addresses)) != len(addresses):
        raise ValidationError(f"--device lists a device twice: {args.device}")
    targets = []
    for address in addresses:
        dp, address = resolve(catalog, args.datapoint, address)
        if dp.kind != "parameter":
            raise ValidationError(f"{dp} is a user info: it is read-only")
        targets.append((dp, address))
    dp = targets[0][0]
    if dp.is_signal and args.flash:
        raise ValidationError(f"{dp} is a signal: it acts at once, --flash does not apply")
    volts = args.system_voltage
    # Battery-voltage limits depend on the installation: without --system-voltage it is
    # asked first; every value is still checked before anything is written.
    needs_volts = volts is None and any(d.scales_with_system_voltage for d, _ in targets)
    writes = [] if needs_volts else _checked_writes(catalog, targets, args.value, volts)
    if writes and not _confirmed(catalog, writes, addresses, args):
        return 1  # asked before connecting when nothing needs the installation
    prop = Property.VALUE_QSP if args.flash else Property.UNSAVED_VALUE_QSP
    stored_in = "signal" if dp.is_signal else ("flash" if args.flash else "RAM")
    results = []
    from ._progress import note_quiet_window

    with client_from_args(args, catalog=catalog, system_voltage=volts) as client:
        note_quiet_window(client)
        if needs_volts:
            volts = client.detect_system_voltage()
            writes = _checked_writes(catalog, targets, args.value, volts, asked=True)
            if not _confirmed(catalog, writes, addresses, args):
                return 1
        for wdp, address, wvalue in writes:
            client.write_param(wdp.number, wvalue, address, flash=args.flash)
            readback: Any = None
            if (
                not args.no_verify
                and not wdp.is_signal
                and not (is_multicast(address) or is_phase(address))
            ):
                readback = client.read_param(wdp.number, address, prop)
            results.append(
                {
                    "device": device_name(address),
                    "address": address,
                    "family": wdp.family.value,
                    "number": wdp.number,
                    "name": wdp.name,
                    "value": _jsonable(wvalue),
                    "unit": wdp.unit,
                    "stored_in": stored_in,
                    "system_voltage": volts if wdp.scales_with_system_voltage else None,
                    "read_back": _jsonable(readback),
                }
            )
    if args.json:
        _emit_json(results[0] if len(results) == 1 else results)
        return 0
    for (wdp, address, wvalue), result in zip(writes, results, strict=True):
        name = f"{device_name(address)} {wdp.number} {wdp.name}"
        if wdp.is_signal:
            print(f"{name}: signal sent")
        else:
            print(f"{name} = {format_value(catalog, wdp, wvalue)}")
        if result["read_back"] is not None:
            print(f"  read back: {format_value(catalog, wdp, result['read_back'])}")
        if is_multicast(address):
            print(f"  sent to {_targets_text([address])} at once (a multicast is not read back)")
    if dp.is_signal:
        print("  it acted at once (RAM and flash do not apply to signals)")
    elif args.flash:
        print("  saved in flash (it survives a restart; flash endures about 1000 writes)")
    else:
        print("  written to RAM only: a restart restores the saved value (use --flash to keep it)")
    return 0


# --- scan ----------------------------------------------------------------------------------


def _device_document(d: Any) -> dict[str, Any]:
    kind = d.device_type
    return {
        "device": d.name,
        "address": d.address,
        "family": d.family.value,
        "model": d.model,
        "series": kind.series if kind is not None else "",
        "power_va": kind.power_va if kind is not None else None,
        "battery_voltage": kind.battery_voltage if kind is not None else None,
        "known_model": kind.known if kind is not None else False,
        "firmware": d.firmware,
        "id_type": d.id_type,
        "fid": d.fid,
        "codes": {str(n): _jsonable(v) for n, v in (kind.codes if kind else {}).items()},
    }


def run_scan(args: argparse.Namespace) -> int:
    from ..exceptions import DeviceError, XcomTimeout
    from ..models import describe_device
    from ..protocol import ADDRESS_GATEWAY, Family
    from ._progress import following, note_quiet_window, requests_sent

    with client_from_args(args, system_voltage=args.system_voltage) as client:
        note_quiet_window(client)
        with following(requests_sent(client), "scanning addresses", unit=" requests"):
            devices = client.scan(stop_at_gap=not args.all_addresses)
            volts = args.system_voltage
            source = "given" if volts is not None else None
            if volts is None and devices:
                volts = client.detect_system_voltage()
                source = "installation" if volts is not None else None
        try:
            guid = str(client.read_guid())
        except (DeviceError, XcomTimeout):
            guid = None
        flags = client.last_frame_flags
    # The gateway answered every request: the appendix gives it no identification info.
    gateway = {
        "device": "gateway",
        "address": ADDRESS_GATEWAY,
        "model": describe_device(Family.RCC, {}).description,
    }
    if args.json:
        _emit_json(
            {
                "guid": guid,
                "system_voltage": volts,
                "system_voltage_from": source,
                "frame_flags": int(flags) if flags is not None else None,
                "gateway": gateway,
                "devices": [_device_document(d) for d in devices],
            }
        )
        return 0
    if guid:
        print(f"installation GUID {guid}")
    if volts is not None:
        print(
            f"system voltage {volts} V ({'given' if source == 'given' else 'from the installation'})"
        )
    else:
        print("system voltage unknown (no device tells it; give --system-voltage)")
    if not devices:
        print("no device answered")
        return 1
    width = max(len(d.model) for d in devices)
    print(f"{'device':<8} {'address':>7}  {'model':<{width}}  {'firmware':<9} fid")
    for d in devices:
        fid = f"{d.fid:08X}" if d.fid is not None else "-"
        print(f"{d.name:<8} {d.address:>7}  {d.model:<{width}}  {d.firmware or '-':<9} {fid}")
    print(f"{'gateway':<8} {ADDRESS_GATEWAY:>7}  {gateway['model']}")
    return 0


# --- messages --------------------------------------------------------------------------------


def _parse_when(text: str) -> dt.datetime:
    from ..exceptions import ValidationError

    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    raise ValidationError(f"invalid date {text!r}: use YYYY-MM-DD or 'YYYY-MM-DD HH:MM'")


def run_messages(args: argparse.Namespace) -> int:
    from ..exceptions import ValidationError

    if args.count < 0:
        raise ValidationError("--count must be 0 (all) or more")
    since = _parse_when(args.since) if args.since else None
    from ._progress import following, note_quiet_window, requests_sent

    with client_from_args(args) as client:
        note_quiet_window(client)
        with following(requests_sent(client), "reading messages", unit=" messages"):
            messages = client.read_messages(args.count or None, since=since)
    if args.json:
        _emit_json(
            [
                {
                    "index": m.index,
                    "time": m.time.isoformat(sep=" "),
                    "timestamp": m.timestamp,
                    "number": m.number,
                    "severity": m.severity,
                    "text": m.text,
                    "source": m.source,
                    "device": m.device,
                }
                for m in messages
            ]
        )
        return 0
    if not messages:
        print("no messages")
    for m in messages:
        severity = f"{m.severity} " if m.severity else ""
        print(f"{m.time:%Y-%m-%d %H:%M:%S}  {m.device:<7} {severity}({m.number:03d}): {m.text}")
    return 0
