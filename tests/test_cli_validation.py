"""Every number, duration and link is checked where it enters (command line, TOML, URL):
a mistake is one sentence on stderr naming the field and what is accepted, never a
traceback, and nothing runs with a meaningless value (issue 15 items 8 and 11).

The commands run as real processes, as a user would start them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

XCOMLOG = [sys.executable, "-m", "xcomlog"]
NOWHERE = "127.0.0.1:9"  # nothing must ever connect there: every case fails before


def refused(*argv: str, cwd: Path | None = None) -> str:
    """Run the CLI; assert it failed with one line on stderr and no traceback."""
    proc = subprocess.run([*XCOMLOG, *argv], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def toml(tmp_path: Path, text: str, link: str = "'tcp://127.0.0.1:4001'") -> str:
    path = tmp_path / "logger.toml"
    body = f"{text}\n[[group]]\nname='g'\npoints=[3000]\n[[site]]\nname='a'\nlink={link}\n"
    path.write_text(body, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("link", "words"),
    [
        ("'tcp://127.0.0.1:99999'", ["site[0].link", "99999", "1-65535"]),
        ("'tcp://127.0.0.1:-1'", ["site[0].link", "-1", "1-65535"]),
        ("'tcp://[::1:4001'", ["site[0].link", "IPv6"]),
        ("'tcp://[fe80::zz]:4001'", ["site[0].link", "IPv6"]),
        ("'udp://127.0.0.1:4002?reply_port=999999'", ["reply_port", "1-65535"]),
        ("{ udp = '127.0.0.1:4002', reply_port = 999999 }", ["reply_port", "1..65535"]),
        ("'listen://0.0.0.0:4001?allow=not..an..ip'", ["allow", "host name"]),
        ("'serial://bogus://x'", ["site[0].link", "bogus"]),
        ("'bogus://x'", ["site[0].link", "bogus"]),
        ("{ serial = '/dev/ttyUSB0', baud = -5 }", ["baud"]),
    ],
)
def test_bad_toml_links(tmp_path, link, words):
    line = refused("log", "--config", toml(tmp_path, "", link), "--plan")
    for word in words:
        assert word in line


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("out = 5", ["out", "folder"]),
        ("flush_interval = 12345678901234567890", ["flush_interval", "1d"]),
        ("flush_interval = inf", ["flush_interval", "1d"]),
        ("flush_interval = nan", ["flush_interval"]),
        ("flush_interval = 1e308", ["flush_interval"]),
        ("rotate_interval = -1", ["rotate_interval"]),
        ("[defaults]\ntimeout = 1e308", ["timeout", "10min"]),
        ("[defaults]\nretries = 12345678901234567890", ["retries", "0..10"]),
        ("[defaults]\nconnect_timeout = 'forever'", ["connect_timeout"]),
    ],
)
def test_bad_toml_numbers(tmp_path, text, words):
    line = refused("log", "--config", toml(tmp_path, text), "--plan")
    for word in words:
        assert word in line


def test_deeply_nested_toml(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    line = refused("log", "--config", str(path), "--plan")
    assert "nested too deeply" in line and str(path) in line


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["log", "--tcp", NOWHERE, "--flush-interval", "nan"], ["--flush-interval", "1d"]),
        (["log", "--tcp", NOWHERE, "--flush-interval", "inf"], ["--flush-interval"]),
        (["log", "--tcp", NOWHERE, "--flush-interval", "1e308"], ["--flush-interval"]),
        (["log", "--tcp", NOWHERE, "--flush-interval", "0"], ["--flush-interval", "above 0"]),
        (["log", "--tcp", NOWHERE, "--duration", "-5"], ["--duration"]),
        (["log", "--tcp", NOWHERE, "--duration", "nan"], ["--duration"]),
        (["log", "--tcp", NOWHERE, "--interval", "fast"], ["--interval"]),
        (["log", "--tcp", NOWHERE, "--timeout", "-1"], ["--timeout"]),
        (["log", "--tcp", "127.0.0.1:99999"], ["--tcp", "99999", "1-65535"]),
        (["read", "3000", "--listen", "-1"], ["--listen", "-1", "1-65535"]),
        (["read", "3000", "--listen", "4001", "--allow", "not..an..ip"], ["--allow"]),
        (["read", "3000", "--device", "xt1", "--serial", "bogus://x"], ["--serial", "bogus"]),
        (["read", "3000", "--udp", "127.0.0.1", "--reply-port", "999999"], ["--reply-port"]),
        (["read", "3000", "--tcp", NOWHERE, "--retries", "-1"], ["--retries", "0 to 10"]),
        (["read", "3000", "--tcp", NOWHERE, "--duty-cycle", "nan"], ["--duty-cycle"]),
        (["read", "3000", "--tcp", NOWHERE, "--connect-timeout", "inf"], ["--connect-timeout"]),
        (["sim", "--speed", "nan"], ["--speed"]),
        (["sim", "--speed", "inf"], ["--speed"]),
        (["demo", "--duration", "nan"], ["--duration"]),
        (["demo", "--speed", "0"], ["--speed"]),
        (["latest", ".", "--watch", "nan"], ["--watch"]),
    ],
)
def test_bad_options(argv, words):
    line = refused(*argv)
    for word in words:
        assert word in line


def test_files_get_checks_its_destination_first(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    # nothing listens at NOWHERE: a transfer attempt would be a different error
    line = refused("files", "get", "--out", str(blocker / "sub"), "--tcp", NOWHERE)
    assert "--out" in line and "cannot write there" in line
    line = refused("files", "get", "--out", "/proc/x", "--tcp", NOWHERE)
    assert "--out /proc/x" in line
    line = refused(
        "files",
        "get",
        "--import",
        "--site",
        "s",
        "--tz",
        "UTC",
        "--out",
        str(blocker / "data"),
        "--tcp",
        NOWHERE,
    )
    assert "cannot write there" in line
    assert blocker.read_text() == "x"


def test_demo_out_is_one_sentence(tmp_path):
    line = refused("demo", "--out", "/proc/x", "--no-status")
    assert "--out /proc/x" in line and "cannot write there" in line


def test_a_transferred_file_is_never_dropped(tmp_path, monkeypatch):
    from xcomlog.commands.files import keep

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.chdir(tmp_path)
    path, problem = keep("LG240601.CSV", b"data", blocker / "sd")
    assert path == tmp_path / "LG240601.CSV" and path.read_bytes() == b"data"
    assert problem is not None and "cannot save in" in problem
    path, problem = keep("LG240602.CSV", b"more", tmp_path / "sd")
    assert path.read_bytes() == b"more" and problem is None
