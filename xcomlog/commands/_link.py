"""Link options shared by every command that talks to an installation.

``add_link_options(parser)`` adds one of ``--serial PATH_OR_URL [--baud N]``,
``--tcp HOST:PORT``, ``--listen [HOST:]PORT [--allow IP,...]`` or
``--udp HOST[:PORT] [--reply-port N]``; ``transport_from_args(args)`` turns them into a
transport (or raises ValidationError naming the mistake). ``add_client_options`` and
``client_from_args`` add the client's timeout/retries and the polite mode.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from ..options import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    MAX_BAUD,
    MAX_CONNECT_TIMEOUT_S,
    MAX_RETRIES,
    MAX_TIMEOUT_S,
)
from ._options import add_duration_option, integer, number

LINK_OPTIONS = ("serial", "tcp", "listen", "udp")


def add_link_options(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Add the link options (exactly one of them is used)."""
    group = parser.add_argument_group(
        "link to the installation (one of)",
        "Xcom-232i on a serial port, or Xcom-LAN (a Moxa NPort) over TCP or UDP",
    )
    choice = group.add_mutually_exclusive_group(required=required)
    choice.add_argument(
        "--serial",
        metavar="PATH_OR_URL",
        help="serial port (/dev/ttyUSB0, COM3) or pyserial URL (rfc2217://, socket://)",
    )
    choice.add_argument("--tcp", metavar="HOST:PORT", help="connect to a Moxa in TCP server mode")
    choice.add_argument(
        "--listen",
        metavar="[HOST:]PORT",
        help="wait for a Moxa in TCP client mode to connect (keeps the Studer portal working)",
    )
    choice.add_argument(
        "--udp", metavar="HOST[:PORT]", help="Moxa in UDP mode (requests to PORT, default 4002)"
    )
    group.add_argument(
        "--baud",
        type=integer("--baud", 1, MAX_BAUD),
        default=None,
        help="serial speed: 38400 (default) or 115200",
    )
    group.add_argument(
        "--reply-port",
        type=integer("--reply-port", 1, 65535),
        default=None,
        metavar="PORT",
        help="local UDP port the Moxa sends answers to (default 4001)",
    )
    group.add_argument(
        "--allow",
        metavar="IP[,IP]",
        default=None,
        help="with --listen: accept connections only from these addresses",
    )


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """Timeout, retries and the polite mode (for commands that make a client)."""
    group = parser.add_argument_group("requests")
    add_duration_option(
        group,
        "--timeout",
        maximum=MAX_TIMEOUT_S,
        default=DEFAULT_TIMEOUT_S,
        help=f"how long to wait for each answer ({DEFAULT_TIMEOUT_S:g}s; e.g. 500ms, 5s)",
    )
    group.add_argument(
        "--retries",
        type=integer("--retries", 0, MAX_RETRIES),
        default=DEFAULT_RETRIES,
        help=f"extra tries after a timeout, 0-{MAX_RETRIES} ({DEFAULT_RETRIES})",
    )
    add_duration_option(
        group,
        "--connect-timeout",
        maximum=MAX_CONNECT_TIMEOUT_S,
        default=DEFAULT_CONNECT_TIMEOUT_S,
        help="how long to wait for the link (with --listen: for the Moxa to connect) "
        f"({DEFAULT_CONNECT_TIMEOUT_S:g}s)",
    )
    group.add_argument(
        "--quiet-window",
        metavar="HH:MM-HH:MM[,...]",
        default=None,
        help="polite mode: windows of local time without requests (the portal uploads near midnight)",
    )
    group.add_argument(
        "--quiet-clock",
        choices=("local", "installation"),
        default=None,
        help="polite mode: the clock of --quiet-window: this machine's (local) or the "
        "installation's own clock {5002}, read at start and hourly (installation)",
    )
    group.add_argument(
        "--duty-cycle",
        type=number("--duty-cycle", 0.0, 1.0, low_open=True),
        default=None,
        metavar="F",
        help="polite mode: largest fraction of time the link is busy with us (0-1)",
    )


def add_device_command_options(parser: argparse.ArgumentParser) -> None:
    """Link, request options and ``--json``: what every one-shot device command takes."""
    add_link_options(parser)
    add_client_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _fail(message: str) -> None:
    from ..exceptions import ValidationError

    raise ValidationError(message)


def _port(text: str, option: str) -> int:
    try:
        port = int(text)
    except ValueError:
        _fail(f"{option}: {text!r} is not a port number")
    if not 0 < port <= 65535:
        _fail(f"{option}: port {port} is out of range (1-65535)")
    return port


def _host_port(value: str, option: str, default_port: int | None, example: str) -> tuple[str, int]:
    from ..links import split_host_port

    host, port_text = split_host_port(value)
    if not port_text:
        if default_port is None:
            _fail(f"{option} needs HOST:PORT, e.g. {example}; got {value!r}")
        return host, default_port  # type: ignore[return-value]
    return host, _port(port_text, option)


def link_url(args: argparse.Namespace) -> str | None:
    """The transport URL the link options describe, None if none was given.

    Every part is checked here (hosts, ports, a pyserial URL's scheme), with the same
    rules as a TOML ``link`` (``logger.config.check_link_url``).
    """
    url = _link_url(args)
    if url is not None:
        from ..logger.config import check_link_url

        option = "--" + next(name for name in LINK_OPTIONS if getattr(args, name, None))
        _checked(check_link_url, url, option)
    return url


def _checked(check: Any, value: str, option: str) -> Any:
    """Run a config check; its ConfigError becomes the CLI's ValidationError for ``option``."""
    from ..exceptions import ConfigError

    try:
        return check(value, option)
    except ConfigError as exc:
        _fail(str(exc))


def check_host(text: str, where: str) -> str:
    """A host of a link option (an IP address or a host name)."""
    from ..logger.config import check_host as check

    return check(text, where)


def _link_url(args: argparse.Namespace) -> str | None:
    from ..links import DEFAULT_TCP_PORT, DEFAULT_UDP_PORT, DEFAULT_UDP_REPLY_PORT
    from ..protocol import DEFAULT_BAUDRATE, FAST_BAUDRATE

    given = [name for name in LINK_OPTIONS if getattr(args, name, None)]
    if len(given) > 1:
        _fail("give only one link: " + ", ".join(f"--{name}" for name in given))
    baud = getattr(args, "baud", None)
    reply_port = getattr(args, "reply_port", None)
    allow = getattr(args, "allow", None)
    if not given:
        if baud is not None or reply_port is not None or allow:
            _fail("--baud, --reply-port and --allow go with a link: --serial, --udp or --listen")
        return None
    kind = given[0]
    value = str(getattr(args, kind))
    if baud is not None and kind != "serial":
        _fail("--baud applies to --serial only")
    if reply_port is not None and kind != "udp":
        _fail("--reply-port applies to --udp only")
    if allow and kind != "listen":
        _fail("--allow applies to --listen only")
    if kind == "serial":
        if baud is not None and baud <= 0:
            _fail(f"--baud must be positive, got {baud}")
        if baud is not None and baud not in (DEFAULT_BAUDRATE, FAST_BAUDRATE):
            import logging

            logging.getLogger("xcomlog.cli").warning(
                "the Xcom-232i speaks %d or %d baud; using %d",
                DEFAULT_BAUDRATE,
                FAST_BAUDRATE,
                baud,
            )
        return f"serial://{value}?baud={baud or DEFAULT_BAUDRATE}"
    if kind == "tcp":
        host, port = _host_port(value, "--tcp", None, "192.168.1.50:4001")
        if not host:
            _fail(f"--tcp needs a host: HOST:PORT, got {value!r}")
        return f"tcp://{_url_host(host)}:{port}"
    if kind == "listen":
        if re.fullmatch(r"\s*[+-]?\d+\s*", value):  # a bare port, maybe a negative one
            host, port = "0.0.0.0", _port(value.strip(), "--listen")
        else:
            host, port = _host_port(value, "--listen", DEFAULT_TCP_PORT, "0.0.0.0:4001")
        url = f"listen://{_url_host(host or '0.0.0.0')}:{port}"
        if allow:
            for address in allow.split(","):
                _checked(check_host, address, "--allow")
            url += f"?allow={allow}"
        return url
    host, port = _host_port(value, "--udp", DEFAULT_UDP_PORT, "192.168.1.50:4002")
    if not host:
        _fail(f"--udp needs the Moxa's host, got {value!r}")
    reply = reply_port if reply_port is not None else DEFAULT_UDP_REPLY_PORT
    if not 0 < reply <= 65535:
        _fail(f"--reply-port {reply} is out of range (1-65535)")
    return f"udp://{_url_host(host)}:{port}?reply_port={reply}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def transport_from_args(args: argparse.Namespace) -> Any:
    """The (unopened) transport of the link options; ValidationError if none or a bad one."""
    from ..links import open_transport

    url = link_url(args)
    if url is None:
        _fail(
            "no link given: use --serial PATH_OR_URL, --tcp HOST:PORT, --listen [HOST:]PORT "
            "or --udp HOST[:PORT]"
        )
    try:
        return open_transport(url)  # type: ignore[arg-type]
    except ValueError as exc:
        _fail(str(exc))


def polite_from_args(args: argparse.Namespace) -> Any:
    """The PolitePolicy of --quiet / --duty-cycle, None when neither was given."""
    quiet = getattr(args, "quiet_window", None)
    duty = getattr(args, "duty_cycle", None)
    clock = getattr(args, "quiet_clock", None)
    if quiet is None and duty is None:
        if clock is not None:
            _fail("--quiet-clock needs --quiet-window")
        return None
    from ..engine import PolitePolicy

    try:
        return PolitePolicy.parse(
            quiet or (), duty_cycle=1.0 if duty is None else duty, clock=clock or "local"
        )
    except ValueError as exc:
        _fail(f"polite mode: {exc}")


def client_from_args(args: argparse.Namespace, **options: Any) -> Any:
    """An (unopened) XcomClient on the link, with the request options."""
    from ..client import XcomClient

    timeout = getattr(args, "timeout", DEFAULT_TIMEOUT_S)
    retries = getattr(args, "retries", DEFAULT_RETRIES)
    if timeout is None or timeout <= 0:
        _fail(f"--timeout must be positive, got {timeout}")
    if retries is None or retries < 0:
        _fail(f"--retries must be 0 or more, got {retries}")
    connect = getattr(args, "connect_timeout", None)
    if connect is not None and connect <= 0:
        _fail(f"--connect-timeout must be positive, got {connect}")
    options.setdefault("open_timeout", connect)
    return XcomClient(
        transport_from_args(args),
        timeout=timeout,
        retries=retries,
        polite=polite_from_args(args),
        **options,
    )


__all__ = [
    "LINK_OPTIONS",
    "add_client_options",
    "add_device_command_options",
    "add_link_options",
    "client_from_args",
    "link_url",
    "polite_from_args",
    "transport_from_args",
]
