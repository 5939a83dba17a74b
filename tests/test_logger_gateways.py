"""Older gateways (issue 10): before firmware 1.6.74 a gateway answers SERVICE_NOT_SUPPORTED
to multi-info. The logger then reads every user info one by one, records the fallback
once in ``events``, and still logs every value of its plan; the client falls back too."""

from __future__ import annotations

import pytest
from processes import run_xcomlog, sim_process
from test_logger import LINKS, assert_dataset_matches, config
from test_logger_support import Recorder, read_table, run_logger

from xcomlog.client import XcomClient
from xcomlog.protocol import FAMILY_ADDRESSES, ErrorCode, Family, ObjectType
from xcomlog.sim import Installation, Simulator

pytestmark = pytest.mark.timeout(120)


def old_gateway(seed: int) -> Simulator:
    return Simulator(Installation(gateway_version="1.6.50"), seed=seed)


def plan_infos(logger) -> set[tuple[int, int]]:
    """(address, number) of every user info the site's plan logs."""
    plan = logger.sites[0].plan
    return {(p.address, p.number) for p in plan.points.values() if p.kind == "info"}


def check_single_reads(served) -> None:
    """Multi-info was asked once (and refused); everything after it was a single read."""
    multi = [s for s in served if s.request.object_type == ObjectType.MULTI_INFO]
    assert len(multi) >= 1
    assert all(
        s.answer is not None and s.answer.error_code == ErrorCode.SERVICE_NOT_SUPPORTED
        for s in multi
    )
    last_multi = served.index(multi[-1])
    after = served[last_multi + 1 :]
    assert after and all(
        s.request.object_type in (ObjectType.USER_INFO, ObjectType.PARAMETER) for s in after
    )


@pytest.mark.parametrize("link", list(LINKS))
@pytest.mark.parametrize("devices", ["configured", "auto"])
def test_logger_falls_back_to_single_reads_once(tmp_path, link, devices):
    sim = old_gateway(seed=41)
    rec = Recorder(sim)
    make, points = LINKS[link]
    transport = make(sim)
    site = {"devices": "auto", "timeout": 0.3} if devices == "auto" else {}
    groups = [
        {"name": "fast", "interval": 0.1, "points": [points]},
        {"name": "slow", "interval": 0.3, "points": ["essential"]},
    ]
    cfg = config(tmp_path, groups, messages=False, **site)
    logger = run_logger(cfg, sim, duration=1.5, transport=transport)
    served = rec.snapshot()
    check_single_reads(served)
    if devices == "auto":
        # the scan: one multi-info probe (refused), then one read per possible address;
        # the plan then never asks for multi-info again
        scanned = (Family.XTENDER, Family.VARIOTRACK, Family.VARIOSTRING, Family.BSP)
        probes = 1 + sum(FAMILY_ADDRESSES[f][2] - FAMILY_ADDRESSES[f][1] + 1 for f in scanned)
        assert served[0].request.object_type == ObjectType.MULTI_INFO
        assert all(s.request.object_type != ObjectType.MULTI_INFO for s in served[1:])
        served = served[probes:]
    df = assert_dataset_matches(tmp_path, served)
    logged = set(zip(df["address"], df["number"], strict=True))
    assert plan_infos(logger) <= logged, "every info of the plan was logged"
    events = read_table(tmp_path, "events")
    fallback = events[events["kind"] == "fallback"]
    assert len(fallback) == 1
    assert (
        "one by one" in fallback["detail"].iloc[0]
        and "SERVICE_NOT_SUPPORTED" in fallback["detail"].iloc[0]
    )
    assert logger.sites[0].stats.timeouts == 0


def test_log_against_sim_gateway_version_1_6_50(tmp_path):
    """``xcomlog sim --gateway-version 1.6.50`` + ``xcomlog log``, two processes on loopback."""
    with sim_process("--gateway-version", "1.6.50") as sim:
        address = sim.address
        log = run_xcomlog(
            "log", "--tcp", address, "--out", str(tmp_path), "--site", "old",
            "--devices", "auto", "--interval", "0.5", "--points", "essential",
            "--duration", "4", "--no-status", "--flush-interval", "0.5",
            timeout=90,
        )  # fmt: skip
    assert log.returncode == 0, log.stderr
    events = read_table(tmp_path, "events")
    assert (events["kind"] == "fallback").sum() == 1, list(events["kind"])
    values = read_table(tmp_path, "values")
    # every essential info of every scanned device, read one by one, several cycles
    from xcomlog.catalog import load_catalog
    from xcomlog.logger.config import config_from_dict
    from xcomlog.logger.plan import compile_plan

    devices = read_table(tmp_path, "devices")
    assert sorted(devices["device"]) == sorted(["xt1", "xt2", "vt1", "vs1", "vs2", "bsp"])
    cfg = config_from_dict(
        {"out": str(tmp_path), "site": [{"name": "old", "link": f"tcp://{address}",
         "devices": list(devices["device"]), "group": [{"name": "g", "interval": 0.5,
                                                        "points": ["essential"]}]}]}
    )  # fmt: skip
    plan = compile_plan(cfg.sites[0], cfg.sites[0].devices, load_catalog())
    want = {(p.address, p.number) for p in plan.points.values() if p.kind == "info"}
    counts = values.groupby(["address", "number"]).size()
    assert want <= set(counts.index)
    assert counts.min() >= 2


def test_client_reads_infos_one_by_one_from_an_old_gateway(caplog):
    sim = old_gateway(seed=42)
    rec = Recorder(sim)
    items = [(3000, 101), (3000, 102), (7002, 601), (11000, 301)]
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        with XcomClient(f"tcp://{host}:{port}", timeout=0.5) as client:
            first = client.read_infos(items)
            second = client.read_infos(items)
            assert client.session.multi_info_supported is False
    assert len(first) == len(second) == len(items)
    multi = [s for s in rec.snapshot() if s.request.object_type == ObjectType.MULTI_INFO]
    assert len(multi) == 1  # asked once, then single reads
    assert sum("no multi-info service" in r.getMessage() for r in caplog.records) == 1
