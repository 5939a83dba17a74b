"""One name, one default and one duration syntax for each option across the command line,
the TOML file and Python (``simple_config``, ``XcomClient``)."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import pytest

from xcomlog import options
from xcomlog.cli import build_parser
from xcomlog.client import XcomClient
from xcomlog.exceptions import XcomError
from xcomlog.links import DEFAULT_OPEN_TIMEOUT
from xcomlog.logger import config as config_module
from xcomlog.logger.config import config_from_dict, simple_config

REPO = Path(__file__).resolve().parent.parent

#: (CLI option of ``xcomlog log``, TOML key, simple_config keyword, default)
SHARED = [
    ("--timeout", "timeout", "timeout", options.DEFAULT_TIMEOUT_S),
    ("--retries", "retries", "retries", options.DEFAULT_RETRIES),
    ("--connect-timeout", "connect_timeout", "connect_timeout", options.DEFAULT_CONNECT_TIMEOUT_S),
    ("--interval", "interval", "interval", options.DEFAULT_INTERVAL_S),
    ("--flush-interval", "flush_interval", "flush_interval", options.DEFAULT_FLUSH_INTERVAL_S),
]


def subcommand(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def every_command(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_command(sub, (*prefix, name))
    if prefix:
        yield prefix, parser


def minimal_toml(**site) -> dict:
    return {
        "group": [{"name": "g", "points": [3000]}],
        "site": [{"name": "a", "link": "tcp://127.0.0.1:4001", **site}],
    }


@pytest.mark.parametrize(("flag", "key", "keyword", "default"), SHARED)
def test_same_name_and_default_everywhere(flag, key, keyword, default):
    log = subcommand(build_parser(), "log")
    action = option(log, flag)
    assert action.dest == key  # --connect-timeout <-> connect_timeout
    if action.default is not None:  # None: the file's value, else the shared default
        assert action.default == default
    assert inspect.signature(simple_config).parameters[keyword].default == default
    cfg = config_from_dict(minimal_toml())
    site, group = cfg.sites[0], cfg.sites[0].groups[0]
    from_toml = {
        "timeout": site.timeout,
        "retries": site.retries,
        "connect_timeout": site.connect_timeout,
        "interval": group.interval,
        "flush_interval": cfg.flush_interval,
    }[key]
    assert from_toml == default
    simple = simple_config("tcp://127.0.0.1:4001", "out")
    assert {
        "timeout": simple.sites[0].timeout,
        "retries": simple.sites[0].retries,
        "connect_timeout": simple.sites[0].connect_timeout,
        "interval": simple.sites[0].groups[0].interval,
        "flush_interval": simple.flush_interval,
    }[key] == default


def test_device_commands_share_the_client_defaults():
    read = subcommand(build_parser(), "read")
    signature = inspect.signature(XcomClient).parameters
    assert option(read, "--retries").default == signature["retries"].default
    assert option(read, "--timeout").default == signature["timeout"].default
    assert option(read, "--connect-timeout").default == DEFAULT_OPEN_TIMEOUT
    assert config_module.DEFAULT_RETRIES == options.DEFAULT_RETRIES


def test_one_duration_syntax_for_every_duration_option():
    found = []
    for path, parser in every_command(build_parser()):
        for action in parser._actions:
            if getattr(action.type, "__name__", "") == "duration":
                found.append((path, action.option_strings[0]))
                assert action.type("90") == 90.0
                assert action.type("90s") == 90.0
                assert action.type("1.5min") == 90.0
                with pytest.raises(XcomError, match=action.option_strings[0]):
                    action.type("nan")
                with pytest.raises(XcomError, match=action.option_strings[0]):
                    action.type("-1")
    flags = {flag for _, flag in found}
    assert {
        "--timeout",
        "--connect-timeout",
        "--interval",
        "--flush-interval",
        "--duration",
    } <= flags
    assert (("demo",), "--duration") in found and (("latest",), "--watch") in found
    # TOML durations take the same syntax
    cfg = config_from_dict({**minimal_toml(timeout="1.5s"), "flush_interval": "1min"})
    assert cfg.flush_interval == 60.0 and cfg.sites[0].timeout == 1.5
    # and so do simple_config's
    cfg = simple_config("tcp://127.0.0.1:4001", "out", flush_interval="1min", timeout="500ms")
    assert cfg.flush_interval == 60.0 and cfg.sites[0].timeout == 0.5


def test_a_dataset_folder_is_always_out():
    parser = build_parser()
    for path in (("log",), ("import",), ("demo",), ("files", "get")):
        assert option(subcommand(parser, *path), "--out")
    data = option(subcommand(parser, "files", "get"), "--data")
    assert data.help == argparse.SUPPRESS  # the old spelling, kept working but not shown


def test_readme_tells_the_real_serial_default():
    from xcomlog.protocol import DEFAULT_BAUDRATE

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "[--baud 115200]" not in readme
    assert f"--baud N] (default {DEFAULT_BAUDRATE}" in readme
    help_text = option(subcommand(build_parser(), "read"), "--baud").help
    assert f"{DEFAULT_BAUDRATE} (default)" in help_text
