"""``xcomlog log``: log one installation (link options) or many (a TOML file) into Parquet."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    from ..options import (
        DEFAULT_FLUSH_INTERVAL_S,
        DEFAULT_INTERVAL_S,
        DEFAULT_PUBLISH_INTERVAL_S,
        MAX_FLUSH_INTERVAL_S,
        MAX_INTERVAL_S,
        MAX_PUBLISH_INTERVAL_S,
        MAX_RUN_S,
    )
    from ._link import add_client_options, add_link_options
    from ._options import add_duration_option

    parser = subparsers.add_parser(
        "log",
        help="log installations into a Parquet dataset",
        description=(
            "Poll one installation (give a link) or every site of a configuration file "
            "(--config) and write the values into a hive-partitioned Parquet dataset. "
            "Stops cleanly on Ctrl-C or SIGTERM; at most --flush-interval of rows is lost "
            "on a crash and recovered rows are compacted on the next start."
        ),
        epilog=(
            "examples:\n"
            "  xcomlog log --tcp 192.168.1.50:4001 --out data/\n"
            "  xcomlog log --serial /dev/ttyUSB0 --points essential,bsp:7002 --interval 5s\n"
            "  xcomlog log --config logger.toml\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML configuration (see examples/logger.toml)"
    )
    add_link_options(parser)
    add_client_options(parser)
    parser.add_argument(
        "--out",
        metavar="DIR_OR_URI",
        help="dataset folder or URI: s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http, "
        "gs://, hdfs://, file:// (default: data, or the file's 'out')",
    )
    parser.add_argument(
        "--journal",
        metavar="DIR",
        help="local folder for the crash journal and working files when --out is a URI or "
        "shared by several writers (default: ~/.cache/xcomlog/journal/<hash of --out>)",
    )
    parser.add_argument(
        "--layout",
        choices=("home", "fleet"),
        default=None,
        help="home: a folder per site and day; fleet: a file per day and writer holding "
        "every site (default: home, or the file's 'layout')",
    )
    parser.add_argument("--site", default="site", help="site name (a folder name) without --config")
    add_duration_option(
        parser,
        "--interval",
        maximum=MAX_INTERVAL_S,
        default=DEFAULT_INTERVAL_S,
        positive=False,
        help=f"polling interval without --config ({DEFAULT_INTERVAL_S:g}s; e.g. 1s, 1min; "
        "0 = back to back)",
    )
    parser.add_argument(
        "--points",
        default="essential",
        help="comma-separated presets, numbers or names (essential, energy, all-infos, "
        "all-parameters, 3000, bsp:7002, 'Battery voltage')",
    )
    parser.add_argument("--devices", default="auto", help="auto (scan) or a list: xt1,xt2,vt1,bsp")
    add_duration_option(
        parser,
        "--flush-interval",
        maximum=MAX_FLUSH_INTERVAL_S,
        default=None,
        help="rows at risk on a crash: how often the journal is written "
        f"(default {DEFAULT_FLUSH_INTERVAL_S:g}s, or the file's flush_interval)",
    )
    add_duration_option(
        parser,
        "--publish-interval",
        maximum=MAX_PUBLISH_INTERVAL_S,
        default=None,
        help="plain Parquet readers (pandas, DuckDB) see rows at most this old "
        f"(default {DEFAULT_PUBLISH_INTERVAL_S:g}s, or the file's publish_interval; e.g. 10s, 5min)",
    )
    add_duration_option(
        parser,
        "--duration",
        maximum=MAX_RUN_S,
        default=None,
        help="stop after this long (e.g. 90s, 10min, 1h)",
    )
    parser.add_argument("--no-status", action="store_true", help="no live status line")
    parser.add_argument(
        "--plan",
        action="store_true",
        help="print the polling plan and exit (needs configured devices)",
    )
    add_mqtt_options(parser)  # MQTT
    parser.set_defaults(func=run)


def add_mqtt_options(parser) -> None:
    """MQTT: publish live values with Home Assistant discovery (see xcomlog.mqtt)."""
    from ..options import DEFAULT_MQTT_INTERVAL_S, MAX_MQTT_INTERVAL_S
    from ._options import duration

    group = parser.add_argument_group("MQTT / Home Assistant (pip install 'xcomlog[mqtt]')")
    group.add_argument(
        "--mqtt", metavar="URL", help="broker: mqtt://[user:pass@]HOST[:PORT] or mqtts://"
    )
    group.add_argument(
        "--mqtt-interval",
        type=duration("--mqtt-interval", maximum=MAX_MQTT_INTERVAL_S, positive=False),
        metavar="DURATION",
        help=f"publish each value at most this often (default {DEFAULT_MQTT_INTERVAL_S:g}s, "
        "or the file's [mqtt] interval; e.g. 1s, 1min; 0 = every change)",
    )
    group.add_argument(
        "--mqtt-writes", metavar="NUMBERS", help="parameters HA may write, e.g. 1138,1107 (to RAM)"
    )
    group.add_argument(
        "--mqtt-flash", metavar="NUMBERS", help="of those, the ones written to flash"
    )
    group.add_argument("--mqtt-prefix", metavar="PREFIX", help="topic prefix (default xcomlog)")
    group.add_argument(
        "--discovery-prefix", metavar="PREFIX", help="HA discovery prefix (default homeassistant)"
    )


def mqtt_from_args(args: argparse.Namespace, cfg):
    """MQTT: the configuration with the --mqtt options applied over its [mqtt] table."""
    import dataclasses

    from ..exceptions import ConfigError
    from ..mqtt.settings import settings_from_dict

    options = {
        "url": args.mqtt,
        "interval": args.mqtt_interval,
        "writes": args.mqtt_writes,
        "flash": args.mqtt_flash,
        "prefix": args.mqtt_prefix,
        "discovery_prefix": args.discovery_prefix,
    }
    given = {k: v for k, v in options.items() if v is not None}
    if not given:
        return cfg
    base = cfg.mqtt
    if base is None and "url" not in given:
        raise ConfigError(
            "--mqtt-... options need --mqtt URL (or an [mqtt] table in the configuration)"
        )
    if base is not None:  # the options override the file's [mqtt] table, key by key
        given.setdefault("writes", sorted(base.writes))
        given.setdefault("url", "mqtt://placeholder")
    parsed = settings_from_dict(given, "--mqtt", options=True)
    if base is None:
        return dataclasses.replace(cfg, mqtt=parsed)
    fields = {name: getattr(parsed, name) for name in options if name in given and name != "url"}
    if options["url"] is not None:
        fields["broker"] = parsed.broker
    return dataclasses.replace(cfg, mqtt=dataclasses.replace(base, **fields))


def _link_url(args: argparse.Namespace) -> str | None:
    """The transport URL of the link options, or None when none was given."""
    from ._link import link_url

    return link_url(args)


def build_config(args: argparse.Namespace):
    """The LoggerConfig the options describe (a file, or the simple one-site case)."""
    from ..exceptions import ConfigError
    from ..logger.config import load_config, simple_config
    from ._link import polite_from_args

    url = _link_url(args)
    if args.config:
        if url:
            raise ConfigError(
                "give either --config or a link option (--tcp, --serial...), not both"
            )
        cfg = load_config(args.config, out=args.out, journal=args.journal, layout=args.layout)
    else:
        if not url:
            raise ConfigError(
                "nothing to log: give a link (--tcp HOST:PORT, --serial PORT, --listen, --udp) or --config FILE"
            )
        points = [p.strip() for p in args.points.split(",") if p.strip()]
        devices = (
            args.devices
            if args.devices == "auto"
            else [d.strip() for d in args.devices.split(",") if d.strip()]
        )
        cfg = simple_config(
            url,
            args.out or "data",
            site=args.site,
            interval=args.interval,
            points=points,
            devices=devices,
            timeout=args.timeout,
            retries=args.retries,
            connect_timeout=args.connect_timeout,
            journal=args.journal,
            layout=args.layout or "home",
        )
        polite = polite_from_args(args)
        if polite is not None:
            import dataclasses

            site = dataclasses.replace(cfg.sites[0], polite=polite)
            cfg = dataclasses.replace(cfg, sites=(site,))
    if args.flush_interval is not None:
        import dataclasses

        cfg = dataclasses.replace(cfg, flush_interval=args.flush_interval)
    if args.publish_interval is not None:
        import dataclasses

        cfg = dataclasses.replace(cfg, publish_interval=args.publish_interval)
    return mqtt_from_args(args, cfg)  # MQTT


def print_plan(cfg, stream=None) -> int:
    """Print what every site would poll; sites that scan for devices are listed as such."""
    stream = stream or sys.stdout
    from ..logger.plan import compile_plan
    from ..protocol import BITS_PER_BYTE_8E1

    for site in cfg.sites:
        print(f"site {site.name}: {site.link}", file=stream)
        if site.devices is None:
            print("  devices: scanned at start (list them to see the plan)", file=stream)
            continue
        plan = compile_plan(site)
        print(f"  devices: {', '.join(d.name for d in plan.devices)}", file=stream)
        baud = _serial_baud(site.link)
        for group in plan.groups:
            every = f"every {group.interval:g} s" if group.interval else "back to back"
            wire = ""
            if baud:
                seconds = group.wire_bytes * BITS_PER_BYTE_8E1 / baud
                wire = f" (at least {seconds:.2f} s a cycle at {baud} baud)"
            print(
                f"  group {group.name}: {every}, {group.values} values in {len(group.requests)} "
                f"frames, {group.wire_bytes} bytes on the wire per cycle{wire}",
                file=stream,
            )
        for warning in plan.warnings:
            print(f"  warning: {warning}", file=stream)
    return 0


def _serial_baud(url: str) -> int | None:
    """The baud rate of a serial:// link (None for network links)."""
    from urllib.parse import parse_qs, urlsplit

    from ..protocol import DEFAULT_BAUDRATE

    parts = urlsplit(url)
    if parts.scheme != "serial":
        return None
    query = parse_qs(parts.query)
    try:
        return int(query.get("baud", [DEFAULT_BAUDRATE])[-1])
    except ValueError:
        return None


def run(args: argparse.Namespace) -> int:
    from ..logger.loop import run_logger
    from ..logger.status import StatusLine

    cfg = build_config(args)
    if args.plan:
        return print_plan(cfg)
    status = None if args.no_status else StatusLine()
    sites = ", ".join(f"{s.name} ({s.link})" for s in cfg.sites)
    print(f"logging {sites} into {cfg.out} (Ctrl-C to stop)", file=sys.stderr)
    try:
        logger = run_logger(cfg, duration=args.duration, status=status)
    finally:
        if status is not None:
            status.close()
    totals = logger.totals()
    print(
        f"stopped: {int(totals['values']):,} values in {totals['elapsed']:.1f} s, "
        f"{int(totals['timeouts'] + totals['device_errors'] + totals['damaged_frames'])} errors, dataset in {cfg.out}",
        file=sys.stderr,
    )
    return 0
