"""The protocol engine fed bytes directly: no link, no event loop, a virtual clock.

``drive`` plays the I/O commands of ``Session.run`` against a script: each Receive gets
the next scripted chunk (``None``: nothing arrives, the clock jumps to the deadline).
Chunks arrive after the request left, except ``Early`` ones, already waiting before it.
"""

from __future__ import annotations

import pytest

from xcomlog import codec
from xcomlog.engine import (
    DAMAGED,
    ERROR,
    OK,
    TIMEOUT,
    UNMATCHED,
    Framer,
    Receive,
    Request,
    Send,
    Session,
    Sleep,
    split_frames,
)
from xcomlog.exceptions import LinkError
from xcomlog.protocol import (
    ErrorCode,
    ObjectType,
    Property,
    Service,
    ServiceFlag,
)

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def logger_session(clock: Clock, retries: int = 1) -> Session:
    session = Session.for_logger(src=1, timeout=2.0, retries=retries)
    session.clock = clock
    return session


def client_session(clock: Clock, **options) -> Session:
    options.setdefault("backoff", 0.0)
    options.setdefault("retries", 1)
    return Session(src=1, timeout=2.0, clock=clock, **options)


class Early(bytes):
    """A chunk that arrived before the request was sent."""


def drive(session: Session, op, script: list[bytes | None]):
    """Run ``op``; returns (its value, the frames it sent, the sleeps it asked for)."""
    clock = session.clock
    sent: list[bytes] = []
    sleeps: list[float] = []
    chunks = list(script)
    value = None
    while True:
        try:
            command = op.send(value)
        except StopIteration as stop:
            return stop.value, sent, sleeps
        value = None
        if isinstance(command, Send):
            sent.append(command.data)
        elif isinstance(command, Receive):
            if not sent and not (chunks and isinstance(chunks[0], Early)):
                chunk = None if command.timeout > 0 else b""  # the request did not leave yet
            else:
                chunk = chunks.pop(0) if chunks else None
            if chunk is None:
                clock.now += command.timeout
                value = b""
            else:
                value = chunk
        elif isinstance(command, Sleep):
            sleeps.append(command.seconds)
            clock.now += command.seconds


READ_3000 = Request(Service.READ, ObjectType.USER_INFO, 3000, Property.VALUE, dst=101, src=1)
READ_3001 = Request(Service.READ, ObjectType.USER_INFO, 3001, Property.VALUE, dst=101, src=1)


def answer(object_id: int = 3000, *, src: int = 101, dst: int = 1, flags: int = 0) -> bytes:
    return codec.encode_response(
        Service.READ,
        ObjectType.USER_INFO,
        object_id,
        Property.VALUE,
        b"\x00\x00\x80\x3f",
        src=src,
        dst=dst,
        frame_flags=flags,
    )


def error(code: int, object_id: int = 3000) -> bytes:
    return codec.encode_frame(
        Service.READ,
        ObjectType.USER_INFO,
        object_id,
        Property.VALUE,
        int(code).to_bytes(2, "little"),
        src=101,
        dst=1,
        service_flags=ServiceFlag.RESPONSE | ServiceFlag.ERROR,
    )


def damaged(frame: bytes) -> bytes:
    bad = bytearray(frame)
    bad[-3] ^= 0x40  # the data checksum no longer matches
    return bytes(bad)


@pytest.mark.parametrize("make", [logger_session, client_session])
def test_split_answer(make):
    clock = Clock()
    session = make(clock)
    frame = answer()
    outcome, sent, _ = drive(session, session.run(READ_3000), [frame[:3], frame[3:20], frame[20:]])
    assert outcome.kind == OK and outcome.frame == frame
    assert sent == [READ_3000.frame] and outcome.sends == 1


@pytest.mark.parametrize("make", [logger_session, client_session])
def test_answer_with_junk_around_it(make):
    clock = Clock()
    session = make(clock)
    frame = answer()
    chunk = b"\xff\x00garbage" + frame + b"\xaa\x01"
    outcome, sent, _ = drive(session, session.run(READ_3000), [chunk])
    assert outcome.kind == OK and outcome.frame == frame and len(sent) == 1
    assert session.framer.junk_bytes >= len(b"\xff\x00garbage")


@pytest.mark.parametrize("make", [logger_session, client_session])
def test_foreign_frames_are_skipped_and_counted(make):
    clock = Clock()
    session = make(clock)
    other_client = answer(dst=2)  # the same answer, for another client on a shared Moxa
    echo = READ_3000.frame  # our own request echoed (not a response)
    outcome, sent, _ = drive(session, session.run(READ_3000), [other_client + echo, answer()])
    assert outcome.kind == OK and outcome.frame == answer() and len(sent) == 1
    assert session.stats.foreign_frames == 2 and session.stats.unmatched_frames == 2


@pytest.mark.parametrize("make", [logger_session, client_session])
def test_late_answer_to_an_earlier_request_is_not_taken(make):
    clock = Clock()
    session = make(clock)
    first, _, _ = drive(session, session.run(READ_3000, retries=0, quiet=True), [None])
    assert first.kind == TIMEOUT
    # the answer to 3000 comes late, before 3001 is sent; then 3001's own answer
    script = [Early(answer(3000)), answer(3001)]
    outcome, sent, _ = drive(session, session.run(READ_3001), script)
    assert outcome.kind == OK and outcome.frame == answer(3001)
    assert sent == [READ_3001.frame]
    stats = session.stats
    # the client discards it before sending (stale), the logger skips it while waiting
    assert stats.stale_frames + stats.unmatched_frames - stats.foreign_frames == 1


def test_busy_then_answer_logger_resends_at_once():
    clock = Clock()
    session = logger_session(clock)
    busy = error(ErrorCode.SCOM_ERROR_GATEWAY_BUSY)
    outcome, sent, sleeps = drive(session, session.run(READ_3000), [busy, answer()])
    assert outcome.kind == OK and sent == [READ_3000.frame] * 2 and sleeps == []
    assert session.stats.busy == 1


def test_busy_then_answer_client_waits_without_using_a_retry():
    clock = Clock()
    session = client_session(clock, retries=0, busy_delay=0.25)
    busy = error(ErrorCode.SCOM_ERROR_GATEWAY_BUSY)
    outcome, sent, sleeps = drive(session, session.run(READ_3000), [busy, busy, answer()])
    assert outcome.kind == OK and len(sent) == 3 and sleeps == [0.25, 0.25]
    assert session.stats.busy == 2 and session.stats.retries == 0


def test_busy_to_the_end_is_an_error():
    clock = Clock()
    session = logger_session(clock, retries=1)
    busy = error(ErrorCode.SCOM_ERROR_GATEWAY_BUSY)
    outcome, sent, _ = drive(session, session.run(READ_3000), [busy, busy])
    assert outcome.kind == ERROR and outcome.code == ErrorCode.SCOM_ERROR_GATEWAY_BUSY
    assert len(sent) == 2


@pytest.mark.parametrize("make", [logger_session, client_session])
def test_damaged_then_answer_is_retried_at_once(make):
    clock = Clock()
    session = make(clock)
    start = clock.now
    outcome, sent, _ = drive(session, session.run(READ_3000), [damaged(answer()), answer()])
    assert outcome.kind == OK and sent == [READ_3000.frame] * 2
    assert clock.now == start  # no timeout was waited for
    assert session.stats.damaged_answers == 1 and outcome.damaged == 1


def test_damaged_on_the_last_try():
    clock = Clock()
    session = logger_session(clock, retries=0)
    outcome, _, _ = drive(session, session.run(READ_3000), [damaged(answer())])
    assert outcome.kind == DAMAGED


def test_device_error_is_returned_without_retry():
    clock = Clock()
    session = logger_session(clock)
    outcome, sent, _ = drive(
        session, session.run(READ_3000), [error(ErrorCode.OBJECT_ID_NOT_FOUND)]
    )
    assert outcome.kind == ERROR and outcome.code == ErrorCode.OBJECT_ID_NOT_FOUND
    assert len(sent) == 1


def test_unanswered_limit_takes_the_link_for_dead():
    clock = Clock()
    session = logger_session(clock, retries=0)
    limit = session.silent_limit
    assert limit == 5
    # quiet exchanges (a scan probing for devices) never count
    for _ in range(limit + 2):
        outcome, _, _ = drive(session, session.run(READ_3000, quiet=True), [None])
        assert outcome.kind == TIMEOUT
    for _ in range(limit - 1):
        outcome, _, _ = drive(session, session.run(READ_3000), [None])
        assert outcome.kind == TIMEOUT
    # an answer starts the count again
    outcome, _, _ = drive(session, session.run(READ_3000), [answer()])
    assert outcome.kind == OK
    for _ in range(limit - 1):
        drive(session, session.run(READ_3000), [None])
    with pytest.raises(LinkError, match="no answer to 5 requests in a row"):
        drive(session, session.run(READ_3000), [None])


def test_fast_path_takes_only_a_whole_clean_answer():
    clock = Clock()
    session = logger_session(clock)
    frame = answer(flags=0x02)
    assert session.take_answer(READ_3000, frame)
    assert session.restarted and session.stats.responses == 1
    assert not session.take_answer(READ_3000, frame[:10])  # split
    assert not session.take_answer(READ_3000, damaged(frame))
    assert not session.take_answer(READ_3000, answer(dst=2))  # another client's
    assert not session.take_answer(READ_3000, answer(3001))  # another request's
    assert not session.take_answer(READ_3000, error(ErrorCode.SCOM_ERROR_GATEWAY_BUSY))
    assert not session.take_answer(READ_3000, b"\xff" + frame)  # junk first
    assert session.stats.responses == 1


def test_fast_path_refuses_while_bytes_are_pending():
    clock = Clock()
    session = logger_session(clock)
    session.framer.feed(answer()[:5])
    assert not session.take_answer(READ_3000, answer())


def test_split_frames_says_what_is_left():
    a, b = answer(), answer(3001)
    counts = [0, 0, 0, 0]
    frames, used = split_frames(b"\x00\x01" + a + damaged(b) + b + a[:7], counts)
    assert frames == [a, b]
    assert used == 2 + len(a) + 2 * len(b)
    assert counts[0] >= 2 and counts[3] == 1
    framer = Framer()
    assert framer.feed(a[:7]) == [] and framer.pending == 7
    assert framer.feed(a[7:] + b) == [a, b] and framer.pending == 0


def test_an_error_answer_without_its_code_is_code_zero():
    clock = Clock()
    session = logger_session(clock)
    bare = codec.encode_frame(
        Service.READ,
        ObjectType.USER_INFO,
        3000,
        Property.VALUE,
        b"",
        src=101,
        dst=1,
        service_flags=ServiceFlag.RESPONSE | ServiceFlag.ERROR,
    )
    outcome, _, _ = drive(session, session.run(READ_3000), [bare])
    assert outcome.kind == ERROR and outcome.code == 0


def test_a_short_frame_is_classified_not_crashed_on():
    """A frame of 2..9 bytes of data (no object fields, issue 10) is valid: never an
    answer to a request that names an object, and counted as skipped."""
    clock = Clock()
    session = logger_session(clock)
    # header with data_length 2, then the service flags and id, and the checksums
    data = bytes([ServiceFlag.RESPONSE, Service.READ])
    header = b"\x00" + (101).to_bytes(4, "little") + (1).to_bytes(4, "little") + b"\x02\x00"
    short = b"\xaa" + header + codec.checksum(header) + data + codec.checksum(data)
    assert len(short) == 18 and codec.frame_size(short) == 18
    assert READ_3000.classify(short) == UNMATCHED  # a response to us, but not the answer
    outcome, _, _ = drive(session, session.run(READ_3000), [short, answer()])
    assert outcome.kind == OK and session.stats.unmatched_frames == 1
