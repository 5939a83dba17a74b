"""The device commands (read, write, scan, messages, files) end to end against the simulator."""

from __future__ import annotations

import json
import socket

import pytest

pytest.importorskip("xcomlog.sim.links")

from cli_support import run, tcp_options  # noqa: E402

from xcomlog.cli import main  # noqa: E402
from xcomlog.sim import Simulator  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def sim():
    simulator = Simulator(seed=3, message_every_s=0)
    simulator.set_value(101, 3000, 49.5)
    simulator.set_value(102, 3000, 49.25)
    simulator.set_value(601, 7002, 81.0)
    return simulator


@pytest.fixture(scope="module")
def tcp(sim):
    with tcp_options(sim) as options:
        yield options


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_read_for_people_and_for_scripts(capsys, tcp):
    code, out, _ = run(capsys, "read", "3000", "Battery cycle phase", "--device", "xt1,xt2", *tcp)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("xt1") and "Battery voltage" in lines[0] and "49.5 V" in lines[0]
    assert lines[2].startswith("xt2") and "49.25 V" in lines[2]
    code, out, _ = run(capsys, "read", "7002", "--device", "bsp", "--json", *tcp)
    assert code == 0
    [row] = json.loads(out)
    assert (row["address"], row["number"], row["value"], row["unit"]) == (601, 7002, 81.0, "%")


def test_read_parameter_properties(capsys, sim, tcp):
    code, out, _ = run(capsys, "read", "1138", "--device", "xt1", "--prop", "max", "--json", *tcp)
    assert code == 0
    assert json.loads(out)[0]["value"] == 200.0
    code, out, _ = run(capsys, "read", "1138", "--device", "xt1", "--prop", "level", *tcp)
    assert code == 0 and "Basic" in out


def test_read_reports_a_missing_device_and_fails(capsys, tcp):
    code, out, _ = run(capsys, "read", "3000", "--device", "xt5", *tcp)
    assert code == 1
    assert "DEVICE_NOT_FOUND" in out


def test_ambiguous_number_asks_for_a_device(capsys, tcp):
    code, _, err = run(capsys, "read", "7002", *tcp)
    assert code == 1 and "--device" in err


def test_write_goes_to_ram_unless_flash(capsys, sim, tcp):
    before = dict(sim.flash_writes)
    code, out, _ = run(capsys, "write", "1138", "14", "--device", "xt1", *tcp)
    assert code == 0 and "RAM" in out and "read back: 14 Adc" in out
    assert sim.parameter(101, 1138)[1] == 14.0
    assert sim.flash_writes == before
    code, out, _ = run(capsys, "write", "1126", "No", "--device", "xt", "--json", *tcp)
    assert code == 0 and json.loads(out)["stored_in"] == "RAM"
    assert sim.parameter(101, 1126)[1] is False and sim.parameter(102, 1126)[1] is False
    assert sim.flash_writes == before
    code, out, _ = run(capsys, "write", "1107", "20", "--device", "xt2", "--flash", *tcp)
    assert code == 0 and "flash" in out
    assert sim.flash_writes[(102, 1107)] == before.get((102, 1107), 0) + 1


def test_bad_values_are_refused_before_connecting(capsys):
    link = ["--tcp", closed_port()]  # nothing listens: a connection attempt would fail
    code, _, err = run(capsys, "write", "1138", "500", "--device", "xt1", *link)
    assert code == 1 and "maximum" in err
    code, _, err = run(capsys, "write", "3000", "1", "--device", "xt1", *link)
    assert code == 1 and "read-only" in err
    code, _, err = run(capsys, "write", "1552", "Sometimes", "--device", "xt1", *link)
    assert code == 1 and "option" in err


def test_link_problems_are_clear_errors(capsys):
    code, _, err = run(capsys, "read", "3000", "--tcp", closed_port(), "--connect-timeout", "1")
    assert code == 1 and "cannot connect" in err
    code, _, err = run(capsys, "read", "3000", "--tcp", "nohostport")
    assert code == 1 and "HOST:PORT" in err
    code, _, err = run(capsys, "read", "3000", "--udp", "127.0.0.1", "--baud", "9600")
    assert code == 1 and "--baud" in err
    code, _, err = run(capsys, "read", "3000")
    assert code == 1 and "no link" in err
    with pytest.raises(SystemExit):
        main(["read", "3000", "--tcp", "a:1", "--udp", "b"])  # argparse: only one link
    capsys.readouterr()


def test_scan_lists_every_device(capsys, sim, tcp):
    code, out, _ = run(capsys, "scan", "--json", *tcp)
    assert code == 0
    doc = json.loads(out)
    found = {(d["device"], d["address"]) for d in doc["devices"]}
    assert found == {
        ("xt1", 101),
        ("xt2", 102),
        ("vt1", 301),
        ("vs1", 701),
        ("vs2", 702),
        ("bsp", 601),
    }
    assert doc["guid"]
    code, out, _ = run(capsys, "scan", *tcp)
    assert code == 0 and "xt1" in out and "1.6." in out


def test_messages_newest_first(capsys, sim, tcp):
    sim.add_message(16, 105, 1_503_571_330)
    code, out, _ = run(capsys, "messages", "--count", "3", "--json", *tcp)
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 3
    assert rows[0]["number"] == 16 and rows[0]["device"] == "xt5"
    assert rows[0]["text"] == "Fan error detected" and rows[0]["time"] == "2017-08-24 10:42:10"
    code, out, _ = run(capsys, "messages", "--count", "1", *tcp)
    assert code == 0 and "Warning (016): Fan error detected" in out


def test_files_list_and_get(capsys, sim, tcp, tmp_path):
    code, out, _ = run(capsys, "files", "list", *tcp)
    assert code == 0
    names = out.split()
    assert names == sim.sdcard.names(sim.now()) and names
    code, out, _ = run(capsys, "files", "get", names[-1], "--out", str(tmp_path / "sd"), *tcp)
    assert code == 0
    saved = (tmp_path / "sd" / names[-1]).read_bytes()
    assert saved == sim.sdcard.read(names[-1], sim.now())
    assert not list((tmp_path / "sd").glob(".*"))  # no temporary file left
    code, _, err = run(capsys, "files", "get", "LG000101.CSV", "--out", str(tmp_path), *tcp)
    assert code == 1 and "not on the SD card" in err


def test_files_get_and_import(capsys, sim, tcp, tmp_path):
    pytest.importorskip("xcomlog.importer")
    name = sim.sdcard.names(sim.now())[0]
    code, out, err = run(
        capsys,
        "files",
        "get",
        name,
        "--import",
        "--site",
        "simsite",
        "--tz",
        "UTC",
        "--data",
        str(tmp_path / "data"),
        "--json",
        *tcp,
    )
    assert code == 0, err
    [entry] = json.loads(out)
    assert entry["import"] == "imported"
    assert list((tmp_path / "data" / "values" / "site=simsite").glob("date=*/*.parquet"))
    code, _, err = run(capsys, "files", "get", "--import", "--site", "s", *tcp)
    assert code == 1 and "--tz" in err


@pytest.mark.parametrize("kind", ["listen", "udp", "serial"])
def test_other_links_from_the_command_line(capsys, sim, kind):
    if kind == "listen":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with sim.connect_tcp("127.0.0.1", port, retry_s=0.05):
            code, out, err = run(
                capsys, "read", "3000", "--device", "xt1", "--listen", f"127.0.0.1:{port}", "--json"
            )
    elif kind == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            reply = s.getsockname()[1]
        with sim.serve_udp("127.0.0.1", 0, reply_port=reply) as link:
            host, port = link.address
            code, out, err = run(
                capsys,
                "read",
                "3000",
                "--device",
                "xt1",
                "--udp",
                f"{host}:{port}",
                "--reply-port",
                str(reply),
                "--json",
            )
    else:
        with sim.serve_pty() as link:
            code, out, err = run(
                capsys, "read", "3000", "--device", "xt1", "--serial", link.path, "--json"
            )
    assert code == 0, err
    assert json.loads(out)[0]["value"] == 49.5
