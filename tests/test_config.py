"""The logger configuration: TOML files, presets, links, durations and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from xcomlog.exceptions import ConfigError
from xcomlog.logger.config import (
    PointSpec,
    link_url,
    load_config,
    parse_device_spec,
    parse_duration,
    parse_point,
    simple_config,
)
from xcomlog.protocol import ADDRESS_BSP, Family, Property

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "logger.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "logger.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (5, 5.0),
        (0.25, 0.25),
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5min", 300.0),
        ("1h", 3600.0),
        ("2 d", 172800.0),
        (0, 0.0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "-1s", -3, True, None, "1 fortnight", float("nan")])
def test_bad_durations_name_the_key(bad):
    with pytest.raises(ConfigError, match="group.interval"):
        parse_duration(bad, "group.interval")


def test_points_forms():
    assert parse_point("essential") == PointSpec("essential", preset="essential")
    assert parse_point(3000) == PointSpec("3000", number=3000)
    assert parse_point("3000").number == 3000
    bsp = parse_point("bsp:7002")
    assert (bsp.number, bsp.family, bsp.address) == (7002, Family.BSP, None)
    xt2 = parse_point("xt2:3000")
    assert (xt2.number, xt2.family, xt2.address) == (3000, Family.XTENDER, 102)
    vs = parse_point("vs:essential")
    assert (vs.preset, vs.family) == ("essential", Family.VARIOSTRING)
    named = parse_point("xt:Battery voltage")
    assert (named.name, named.family) == ("Battery voltage", Family.XTENDER)
    bms = parse_point("bms:7002")
    assert bms.family is Family.XCOM_CAN_BMS


@pytest.mark.parametrize("bad", ["", "xt99:3000", "0", "70000", "foo:3000", "xt:", 1.5, True])
def test_bad_points(bad):
    with pytest.raises(ConfigError):
        parse_point(bad, "points[0]")


def test_devices():
    assert parse_device_spec("xt3").address == 103
    assert parse_device_spec("bms").family is Family.XCOM_CAN_BMS
    assert parse_device_spec("bsp") == parse_device_spec(ADDRESS_BSP)
    assert parse_device_spec("vs15").name == "vs15"
    for bad in ("xt", "l1", "xt10", "nonsense"):
        with pytest.raises(ConfigError):
            parse_device_spec(bad)


def test_links():
    assert link_url("tcp://10.0.0.2:4001") == "tcp://10.0.0.2:4001"
    assert link_url("10.0.0.2:4001") == "tcp://10.0.0.2:4001"
    assert link_url("/dev/ttyUSB0") == "serial:///dev/ttyUSB0"
    assert (
        link_url({"serial": "/dev/ttyUSB0", "baud": 115200}) == "serial:///dev/ttyUSB0?baud=115200"
    )
    assert (
        link_url({"udp": "10.0.0.2:4002", "reply_port": 4001})
        == "udp://10.0.0.2:4002?reply_port=4001"
    )
    assert link_url({"listen": "0.0.0.0:4001"}) == "listen://0.0.0.0:4001"
    for bad in ("ftp://x", "nowhere", {"tcp": "a:1", "udp": "b:2"}, {"tcp": "a:1", "speed": 1}, 42):
        with pytest.raises(ConfigError, match="link"):
            link_url(bad, "site[0].link")


def test_full_file(tmp_path):
    path = write(
        tmp_path,
        """
out = "logs"
flush_interval = "5s"

[defaults]
timeout = 1.5
retries = 2

[[group]]
name = "fast"
interval = "1s"
points = ["essential"]

[[group]]
name = "hourly"
interval = "1h"
offset = "30s"
points = ["all-parameters"]
devices = ["xt", "bsp"]

[[site]]
name = "home"
link = "tcp://127.0.0.1:4001"
devices = ["xt1", "xt2", "vt1", "bsp"]

[[site]]
name = "farm-2"
link = { udp = "127.0.0.1:4002", reply_port = 4001 }
groups = ["fast"]
polite = { quiet = ["23:50-00:20", "12:00-12:05"], duty_cycle = 0.5, tz = "UTC" }
parameter_property = "unsaved"

[[site.group]]
name = "pv"
interval = 60
points = ["vs:15010", "Battery voltage"]
""",
    )
    cfg = load_config(path)
    assert cfg.out == tmp_path / "logs"
    assert cfg.flush_interval == 5.0
    home, farm = cfg.sites
    assert [g.name for g in home.groups] == ["fast", "hourly"]
    assert home.timeout == 1.5 and home.retries == 2
    assert [d.address for d in home.devices] == [101, 102, 301, 601]
    assert home.groups[1].interval == 3600 and home.groups[1].offset == 30
    assert home.groups[1].devices == ("xt", "bsp")
    assert farm.devices is None  # auto: discovered by scanning
    assert [g.name for g in farm.groups] == ["fast", "pv"]
    assert farm.link == "udp://127.0.0.1:4002?reply_port=4001"
    assert farm.parameter_property == Property.UNSAVED_VALUE_QSP
    assert farm.polite.duty_cycle == 0.5 and len(farm.polite.quiet) == 2
    assert home.polite is None


def test_polite_mode_uses_the_client_policy():
    import datetime as dt

    from xcomlog.engine import PolitePolicy

    cfg = simple_config("tcp://h:1", "out", polite={"quiet": "23:50-00:20", "tz": "UTC"})
    policy = cfg.sites[0].polite
    assert isinstance(policy, PolitePolicy)
    at = dt.datetime(2024, 6, 1, 23, 55, tzinfo=dt.timezone.utc)
    assert policy.quiet_remaining(at) == pytest.approx(25 * 60)
    assert policy.quiet_remaining(at.replace(hour=12)) == 0
    for bad in (
        {"quiet": "25:00-01:00"},
        {"duty_cycle": 0},
        {"duty_cycle": "half"},
        {"tz": "Mars/Base"},
        {"speed": 1},
    ):
        with pytest.raises(ConfigError, match="polite"):
            simple_config("tcp://h:1", "out", polite=bad)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[[site]]\nname='a'\n", "needs a link"),
        (
            "[[site]]\nname='a b'\nlink='tcp://h:1'\n[[site.group]]\nname='g'\npoints=[1]",
            "site name",
        ),
        ("[[group]]\nname='g'\npoints=['essential']\n", "no \\[\\[site\\]\\]"),
        ("[[site]]\nname='a'\nlink='tcp://h:1'\n", "nothing to log"),
        (
            "[[group]]\nname='g'\npoints=['essential']\ninterval='fast'\n[[site]]\nname='a'\nlink='tcp://h:1'",
            "group\\[0\\].interval",
        ),
        ("[[group]]\nname='g'\n[[site]]\nname='a'\nlink='tcp://h:1'", "needs points"),
        (
            "[[group]]\nname='g'\npoints=['essential']\n[[site]]\nname='a'\nlink='tcp://h:1'\ngroups=['nope']",
            "no \\[\\[group\\]\\] named 'nope'",
        ),
        (
            "[[group]]\nname='g'\npoints=['essential']\n[[site]]\nname='a'\nlink='tcp://h:1'\ncolour='red'",
            "unknown key.*colour",
        ),
        (
            "[[group]]\nname='g'\npoints=['essential']\n[[site]]\nname='a'\nlink='tcp://h:1'\n[[site]]\nname='a'\nlink='tcp://h:2'",
            "two sites",
        ),
        (
            "[[group]]\nname='g'\npoints=['essential']\n[[site]]\nname='a'\nlink='tcp://h:1'\ndevices=['xt1','xt1']",
            "listed twice",
        ),
        (
            "[[group]]\nname='g'\npoints=['essential']\ninterval=10\noffset=10\n[[site]]\nname='a'\nlink='tcp://h:1'",
            "offset",
        ),
        ("[[group]\n", "invalid TOML"),
    ],
)
def test_errors_name_file_and_key(tmp_path, body, fragment):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "absent.toml")


def test_simple_config(tmp_path):
    cfg = simple_config(
        "tcp://127.0.0.1:4001", tmp_path, site="home", interval="2s", points=["essential", 7002]
    )
    (site,) = cfg.sites
    assert site.name == "home" and site.devices is None
    (group,) = site.groups
    assert group.interval == 2.0
    assert [p.text for p in group.points] == ["essential", "7002"]
    with pytest.raises(ConfigError):
        simple_config("tcp://127.0.0.1:4001", tmp_path, interval="-1")


def test_out_override(tmp_path):
    path = write(tmp_path, "[[group]]\nname='g'\npoints=[3000]\n[[site]]\nname='a'\nlink='h:1'\n")
    assert load_config(path, out=tmp_path / "elsewhere").out == tmp_path / "elsewhere"


def test_example_file_is_valid():
    if not EXAMPLE.exists():
        pytest.fail("examples/logger.toml is missing")
    cfg = load_config(EXAMPLE)
    assert cfg.sites and all(site.groups for site in cfg.sites)
