"""The logger's read loop and the client take the same decision for the same bytes.

Byte streams are recorded from the simulator with faults (junk, foreign frames, damaged,
lost and busy answers, leading 0xFF) plus a few written by hand (a split answer, a late
answer before the right one). Each stream is played to ``SiteLogger._exchange`` (the
logger's path, asyncio) and to ``XcomClient.request`` (the client's path, blocking),
configured alike (one retry, busy answers count as tries); both must end the same way:
the same answer frame, the same device error code, or no answer, after the same sends.
"""

from __future__ import annotations

import asyncio
from collections import deque

import pytest
from test_client_support import AsyncFakeTransport, FakeTransport, VirtualClock

from xcomlog import codec
from xcomlog.client import XcomClient
from xcomlog.dataset import DatasetWriter
from xcomlog.engine import ERROR, OK
from xcomlog.exceptions import DeviceError, XcomTimeout
from xcomlog.logger.config import config_from_dict
from xcomlog.logger.loop import SiteLogger
from xcomlog.logger.plan import compile_plan
from xcomlog.protocol import ErrorCode, ServiceFlag
from xcomlog.sim import FaultConfig, Simulator

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 0.5


class Recorded:
    """Plays recorded answers: the n-th request sent gets the n-th list of chunks."""

    def __init__(self, scripts: list[list[bytes]]) -> None:
        self.scripts = deque(scripts)
        self.requests: list[bytes] = []

    def handle(self, request: bytes) -> list[bytes]:
        self.requests.append(request)
        return self.scripts.popleft() if self.scripts else []


def site_config(tmp_path):
    return config_from_dict(
        {
            "out": str(tmp_path),
            "site": [
                {
                    "name": "t",
                    "link": "tcp://127.0.0.1:1",
                    "devices": ["xt1", "xt2", "bsp"],
                    "timeout": TIMEOUT,
                    "retries": 1,
                    "messages": False,
                    "group": [{"name": "g", "interval": 0, "points": ["essential"]}],
                }
            ],
        }
    ).sites[0]


def recorded_streams(request: bytes) -> list[list[list[bytes]]]:
    """Pairs of answers (first try, retry) to ``request``: faulty ones from the simulator
    and hand-made ones."""
    faults = FaultConfig(
        drop=0.15, corrupt=0.15, junk=0.2, leading_ff=0.1, foreign_frames=0.3, busy=0.15
    )
    sim = Simulator(seed=7, faults=faults)
    answers = [sim.handle(request) for _ in range(40)]
    streams = [[answers[i], answers[i + 1]] for i in range(0, len(answers) - 1, 2)]
    clean = Simulator(seed=1).handle(request)
    whole = b"".join(clean)
    frame = codec.decode_frame(request)
    late = codec.encode_response(
        frame.service_id, frame.object_type, frame.object_id + 1, frame.property_id,
        b"\0\0\0\0", src=frame.dst, dst=frame.src,
    )  # fmt: skip

    def refusal(code: int) -> bytes:
        return codec.encode_frame(
            frame.service_id, frame.object_type, frame.object_id, frame.property_id,
            int(code).to_bytes(2, "little"), src=frame.dst, dst=frame.src,
            service_flags=ServiceFlag.RESPONSE | ServiceFlag.ERROR,
        )  # fmt: skip

    busy = refusal(ErrorCode.SCOM_ERROR_GATEWAY_BUSY)
    streams += [
        [[refusal(ErrorCode.OBJECT_ID_NOT_FOUND)], []],  # a device error
        [[busy], [busy]],  # busy on every try
        [[busy], [whole]],  # busy, then the answer
        [[whole[:7], whole[7:30], whole[30:]], []],  # split
        [[late, whole], []],  # a late answer to another request first
        [[b"\x00\xffjunk" + whole + b"\xaa"], []],  # junk around
        [[], []],  # nothing at all
    ]
    return streams


def logger_outcome(site, request, stream, out):
    recorded = Recorded(stream)
    clock = VirtualClock()
    transport = AsyncFakeTransport(recorded, clock)
    writer = DatasetWriter(out)
    logger = SiteLogger(site, writer)
    logger.engine.clock = clock  # waiting for nothing advances the clock, no sleeping

    async def main():
        await transport.open()
        return await logger._exchange(transport, request, quiet=True)

    try:
        outcome = asyncio.run(main())
    finally:
        writer.close()
    if outcome.kind == OK:
        result = ("answer", codec.decode_frame(outcome.frame))
    elif outcome.kind == ERROR:
        result = ("error", outcome.code)
    else:
        result = ("none", None)
    return result, len(recorded.requests)


def client_outcome(site, request, stream):
    recorded = Recorded(stream)
    clock = VirtualClock()
    link = FakeTransport(recorded, clock)
    client = XcomClient(
        link,
        timeout=site.timeout,
        retries=site.retries,
        src=site.src,
        clock=clock,
        backoff=0.0,
        busy_timeout=0.0,
    )
    client.open()
    try:
        result = ("answer", client.request(request.frame))
    except DeviceError as exc:
        result = ("error", exc.code)
    except XcomTimeout:
        result = ("none", None)
    return result, len(recorded.requests)


def test_logger_and_client_decide_alike(tmp_path):
    site = site_config(tmp_path)
    plan = compile_plan(site)
    request = plan.groups[0].requests[0]
    kinds = set()
    for stream in recorded_streams(request.frame):
        ours = logger_outcome(site, request, [list(s) for s in stream], tmp_path / "data")
        theirs = client_outcome(site, request, [list(s) for s in stream])
        assert ours == theirs, stream
        kinds.add(ours[0][0])
    # the recorded faults exercised every way an exchange can end
    assert kinds == {"answer", "error", "none"}
