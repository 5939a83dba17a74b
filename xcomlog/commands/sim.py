"""``xcomlog sim``: run the virtual installation on a pty, TCP (server or client) or UDP.

The first line printed is where to connect (the tty path or HOST:PORT); it runs until
interrupted and exits cleanly on SIGINT and SIGTERM.
"""

from __future__ import annotations

import argparse
import sys

from ._options import number

DEFAULT_TCP = "127.0.0.1:4001"  # the Moxa NPort's default data port


def _host_port(
    text: str, default_host: str = "127.0.0.1", need_host: bool = False
) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``PORT`` -> (host, port); argparse-friendly errors."""
    from ..links import split_host_port

    host, port_text = split_host_port(text)
    if not port_text:  # a bare PORT
        host, port_text = "", host
    host = host or ("" if need_host else default_host)
    if need_host and not host:
        raise argparse.ArgumentTypeError(f"{text!r}: give HOST:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be 0..65535")
    return host, port


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: a probability is 0..1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be >= 0")
    return value


#: (option, FaultConfig field, type, help)
FAULT_OPTIONS = [
    ("--delay", "delay_s", _seconds, "each response waits a random 0..S seconds (spec: up to 2)"),
    (
        "--slowdown-every",
        "slowdown_every_s",
        _seconds,
        "period of the datalogger slow-down (spec: 60)",
    ),
    ("--slowdown", "slowdown_s", _seconds, "extra delay during each slow-down"),
    ("--drop", "drop", _probability, "probability that a response is lost"),
    ("--corrupt", "corrupt", _probability, "probability that a response has a flipped bit"),
    ("--junk", "junk", _probability, "probability of junk bytes before a response"),
    ("--leading-ff", "leading_ff", _probability, "probability of a 0xFF byte before a response"),
    ("--foreign", "foreign_frames", _probability, "probability of another client's frame first"),
    ("--busy", "busy", _probability, "probability of a GATEWAY_BUSY answer"),
    ("--restart-every", "restart_every_s", _seconds, "the gateway restarts every S seconds"),
    ("--disconnect-every", "disconnect_every_s", _seconds, "the link drops every S seconds"),
    ("--disconnect-for", "disconnect_s", _seconds, "how long the link stays down (default 1)"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sim",
        help="run a simulated Xcom-232i installation (pty, TCP, UDP)",
        description=(
            "Run a virtual Studer installation behind a simulated Xcom-232i. The first line "
            "printed is where to connect. Default: --tcp-server " + DEFAULT_TCP + "."
        ),
    )
    links = p.add_argument_group(
        "links (any combination; the first one's address is printed first)"
    )
    links.add_argument(
        "--pty", action="store_true", help="a pseudo terminal (open it at 38400 8E1)"
    )
    links.add_argument(
        "--tcp-server",
        metavar="[HOST:]PORT",
        type=_host_port,
        help="listen like a Moxa in TCP-server mode (clients use --tcp); port 0 picks a free one",
    )
    links.add_argument(
        "--shared",
        action="store_true",
        help="with --tcp-server: every client receives every response (an NPort shared by clients)",
    )
    links.add_argument(
        "--tcp-client",
        metavar="HOST:PORT",
        type=lambda t: _host_port(t, need_host=True),
        help="connect out like a Moxa in TCP-client mode (the logger uses --listen)",
    )
    links.add_argument("--udp", metavar="[HOST:]PORT", type=_host_port, help="Xcom-LAN over UDP")
    links.add_argument(
        "--reply-port",
        metavar="PORT",
        type=int,
        help="with --udp: send responses to this port of the client (the Xcom-LAN quirk)",
    )
    links.add_argument("--baud", type=int, metavar="N", help="throttle every link to N bps (8E1)")
    sim = p.add_argument_group("installation")
    sim.add_argument("--config", metavar="FILE", help="installation file (.toml or .json)")
    sim.add_argument(
        "--replay", metavar="LGyymmdd.CSV", help="serve the values of a real SD-card datalog"
    )
    sim.add_argument(
        "--system-voltage",
        type=int,
        choices=(12, 24, 48),
        help="battery system voltage (default: the installation file's, else 48)",
    )
    sim.add_argument(
        "--models",
        metavar="LIST",
        help='device models, comma-separated, e.g. "XTH 8000-48,XTM 4000-48,VS-70"',
    )
    sim.add_argument(
        "--gateway-version",
        metavar="X.Y.Z",
        help="firmware of the simulated Xcom-232i (before 1.6.74: no multi-info service)",
    )
    sim.add_argument(
        "--strict",
        action="store_true",
        help="refuse reads at multicast addresses, as the spec says",
    )
    sim.add_argument("--seed", type=int, default=0, help="seed of values and faults (default 0)")
    sim.add_argument(
        "--speed",
        type=number("--speed", 0.0, 1e6),
        default=1.0,
        help="simulated seconds per real second (0 to 1000000)",
    )
    sim.add_argument(
        "--start", metavar="ISO-TIME", help="simulated start time, e.g. 2024-06-21T06:00Z"
    )
    faults = p.add_argument_group("faults")
    for option, field, kind, text in FAULT_OPTIONS:
        faults.add_argument(
            option,
            dest=f"fault_{field}",
            type=kind,
            metavar="P" if kind is _probability else "S",
            help=text,
        )
    p.set_defaults(func=run)


def _start_time(text: str | None) -> float | None:
    if not text:
        return None
    import datetime as dt

    from ..exceptions import ValidationError

    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"--start {text!r}: give an ISO time such as 2024-06-21T06:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def build(args: argparse.Namespace):
    """The Simulator the arguments describe (also used by the demo command and tests)."""
    from ..exceptions import ValidationError
    from ..sim import FaultConfig, Installation, Simulator
    from ..sim.replay import installation_for

    if args.speed < 0:
        raise ValidationError(f"--speed must be >= 0, got {args.speed}")
    if args.config:
        installation = Installation.from_file(args.config)
        if args.replay:
            import dataclasses

            installation = dataclasses.replace(installation, replay=args.replay)
    elif args.replay:
        installation = installation_for(args.replay)
    else:
        installation = Installation()
    hardware: dict[str, object] = {}
    if getattr(args, "system_voltage", None):
        hardware["system_voltage"] = args.system_voltage
    if getattr(args, "models", None):
        hardware["models"] = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if getattr(args, "gateway_version", None):
        hardware["gateway_version"] = args.gateway_version
    if hardware:
        import dataclasses

        installation = dataclasses.replace(installation, **hardware)
    fault_values = {
        field: getattr(args, f"fault_{field}")
        for _, field, _, _ in FAULT_OPTIONS
        if getattr(args, f"fault_{field}", None) is not None
    }
    faults = FaultConfig(**fault_values)
    return Simulator(
        installation,
        strict=args.strict,
        faults=faults,
        seed=args.seed,
        start_time=_start_time(args.start),
        speed=args.speed,
    )


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from ..exceptions import ValidationError

    if args.reply_port is not None and args.udp is None:
        raise ValidationError("--reply-port goes with --udp")
    if args.baud is not None and args.baud <= 0:
        raise ValidationError(f"--baud must be > 0, got {args.baud}")
    sim = build(args)
    links = []
    if args.pty:
        links.append(sim.serve_pty(baud=args.baud))
    if args.tcp_server:
        links.append(sim.serve_tcp(*args.tcp_server, baud=args.baud, shared=args.shared))
    if args.tcp_client:
        links.append(sim.connect_tcp(*args.tcp_client, baud=args.baud))
    if args.udp:
        links.append(sim.serve_udp(*args.udp, reply_port=args.reply_port, baud=args.baud))
    if not links:
        links.append(sim.serve_tcp(*_host_port(DEFAULT_TCP), baud=args.baud, shared=args.shared))

    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = []
    try:
        for link in links:
            link.start()
            started.append(link)
        for link in started:
            print(_where(link), flush=True)
        inst = sim.installation
        print(
            f"xcomlog sim: {inst.xtenders} XT, {inst.variotracks} VT, {inst.variostrings} VS, "
            f"{inst.battery or 'no battery device'}, gateway 501; {inst.nominal_voltage} V; "
            f"models {', '.join(sorted({d.model for d in inst.devices}))}; "
            f"gateway firmware {inst.gateway_version}"
            + (f"; faults {sim.faults}" if sim.faults.active else "")
            + "; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        for link in reversed(started):
            link.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def _where(link) -> str:
    if link.kind == "pty":
        return link.path
    host, port = link.address[:2]
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}"
