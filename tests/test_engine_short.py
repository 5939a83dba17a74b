"""Short frames reach the caller (issue 10): a frame of 2..9 data bytes is what the device
said, not damage. An error answer with only its service header (or header and code) ends
the exchange at once as a device error; the client raises a DeviceError that says so and
the logger records it as an event. Fed as bytes to the engine, and through the logger."""

from __future__ import annotations

import pytest
from test_engine import READ_3000, Clock, answer, client_session, drive, logger_session
from test_logger import config
from test_logger_support import SimTransport, read_table, run_logger

from xcomlog import codec
from xcomlog.engine import ANSWER, ERROR, FOREIGN, OK, UNMATCHED, Request
from xcomlog.exceptions import DeviceError
from xcomlog.protocol import ErrorCode, ObjectType, Property, Service, ServiceFlag
from xcomlog.sim import Simulator

pytestmark = pytest.mark.timeout(60)

ERROR_RESPONSE = int(ServiceFlag.RESPONSE | ServiceFlag.ERROR)


def short_frame(frame_data: bytes, *, src: int = 101, dst: int = 1) -> bytes:
    """A frame of 2..9 data bytes (service flags, service id, maybe a code)."""
    header = b"\x00" + src.to_bytes(4, "little") + dst.to_bytes(4, "little")
    header += len(frame_data).to_bytes(2, "little")
    return b"\xaa" + header + codec.checksum(header) + frame_data + codec.checksum(frame_data)


#: The 2-byte service header alone: "refused", no code.
BARE = short_frame(bytes([ERROR_RESPONSE, Service.READ]))
#: Service header and an error code: 4 data bytes.
CODED = short_frame(
    bytes([ERROR_RESPONSE, Service.READ]) + int(ErrorCode.OBJECT_ID_NOT_FOUND).to_bytes(2, "little")
)


def test_short_error_answers_are_classified_as_the_answer():
    assert READ_3000.classify(BARE) == ANSWER
    assert READ_3000.classify(CODED) == ANSWER
    # the gateway reports errors for the devices behind it
    assert READ_3000.classify(short_frame(bytes([ERROR_RESPONSE, Service.READ]), src=501)) == ANSWER
    # another device, another service, another client: not this request's answer
    assert (
        READ_3000.classify(short_frame(bytes([ERROR_RESPONSE, Service.READ]), src=102)) == UNMATCHED
    )
    assert READ_3000.classify(short_frame(bytes([ERROR_RESPONSE, Service.WRITE]))) == UNMATCHED
    assert READ_3000.classify(short_frame(bytes([ERROR_RESPONSE, Service.READ]), dst=2)) == FOREIGN
    # a short success names no object: never the answer to a read of one
    assert READ_3000.classify(short_frame(bytes([ServiceFlag.RESPONSE, Service.READ]))) == UNMATCHED


@pytest.mark.parametrize(("frame", "code"), [(BARE, 0), (CODED, ErrorCode.OBJECT_ID_NOT_FOUND)])
def test_the_logger_session_ends_at_once_with_the_device_error(frame, code):
    clock = Clock()
    session = logger_session(clock, retries=2)
    outcome, sent, _ = drive(session, session.run(READ_3000), [frame])
    assert outcome.kind == ERROR and outcome.code == code
    assert len(sent) == 1 and outcome.sends == 1  # no retry, no timeout waited
    assert session.stats.damaged_answers == 0 and session.stats.device_errors == 1
    assert clock.now == 100.0


def test_the_client_gets_a_device_error_that_says_short_answer():
    clock = Clock()
    session = client_session(clock, retries=2)
    with pytest.raises(DeviceError) as bare:
        drive(session, session.exchange(READ_3000), [BARE])
    assert bare.value.code == 0
    assert "short answer (2 data bytes, no error code)" in str(bare.value)
    assert "read user info 3000" in str(bare.value)
    with pytest.raises(DeviceError) as coded:
        drive(session, session.exchange(READ_3000), [CODED])
    assert coded.value.code == ErrorCode.OBJECT_ID_NOT_FOUND
    assert "short answer (4 data bytes, its error code)" in str(coded.value)
    assert session.stats.retries == 0 and session.stats.timeouts == 0


def test_a_short_frame_before_the_answer_of_another_request_is_skipped():
    """A short error of another service is not ours: the real answer still counts."""
    clock = Clock()
    session = logger_session(clock)
    other = short_frame(bytes([ERROR_RESPONSE, Service.WRITE]))
    outcome, _, _ = drive(session, session.run(READ_3000), [other + answer()])
    assert outcome.kind == OK and session.stats.unmatched_frames == 1


class ShortRefusal(SimTransport):
    """The simulator, but one info of xt1 is refused with a bare 2-byte error answer (and
    multi-info is refused, so the logger reads each info on its own)."""

    async def send(self, data: bytes) -> None:
        frame = codec.decode_frame(data)
        if frame.object_type == ObjectType.MULTI_INFO:
            self.buf += codec.encode_response(
                Service.READ, ObjectType.MULTI_INFO, 1, 1, src=501, dst=1,
                error_code=ErrorCode.SERVICE_NOT_SUPPORTED,
            )  # fmt: skip
            return
        if (frame.object_type, frame.object_id, frame.dst) == (ObjectType.USER_INFO, 3000, 101):
            self.buf += short_frame(bytes([ERROR_RESPONSE, Service.READ]))
            return
        await super().send(data)


def test_the_logger_records_the_short_answer_and_goes_on(tmp_path):
    sim = Simulator(seed=51)
    cfg = config(
        tmp_path,
        [{"name": "e", "interval": 0.1, "points": ["3000", "3005", "bsp:7002"]}],
        messages=False,
        devices=["xt1", "bsp"],
    )
    logger = run_logger(
        cfg,
        sim,
        duration=20,
        transport=ShortRefusal(sim),
        until=lambda lg: lg.sites[0].stats.device_errors >= 2,
    )
    events = read_table(tmp_path, "events")
    errors = events[events["kind"] == "device_error"]
    assert len(errors) == 1  # repeated refusals only count
    detail = errors["detail"].iloc[0]
    assert "info 3000 of xt1" in detail and "short answer (2 data bytes, no error code)" in detail
    stats = logger.sites[0].stats
    assert stats.device_errors >= 2 and stats.timeouts == 0 and stats.damaged_frames == 0
    values = read_table(tmp_path, "values")
    got = set(zip(values["address"], values["number"], strict=True))
    assert (101, 3005) in got and (601, 7002) in got and (101, 3000) not in got


def test_request_without_object_still_matches_full_frames():
    """The short-frame rule does not loosen matching of ordinary answers."""
    read_3001 = Request(Service.READ, ObjectType.USER_INFO, 3001, Property.VALUE, dst=101, src=1)
    assert (
        read_3001.classify(answer(3000)) == UNMATCHED and read_3001.classify(answer(3001)) == ANSWER
    )
