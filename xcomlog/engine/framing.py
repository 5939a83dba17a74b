"""Framing: a byte stream cut into whole, checksum-verified raw frames, through the codec.

``split_frames`` is the one framing rule: it finds every valid frame in a buffer (the
codec's ``frame_size`` reads the header, ``checksum`` verifies the data) and says how
many bytes are left over (an incomplete frame). Junk before a start byte is skipped;
after a bad header checksum, an impossible length or a bad data checksum only the start
byte is dropped, so a valid frame beginning inside damaged bytes is still found, exactly
as the codec's ``StreamDecoder`` does. ``Framer`` keeps the left-over bytes between
chunks and counts what it skipped. Frames stay raw bytes: the logger batch-decodes them,
the client decodes the one that answers its request.
"""

from __future__ import annotations

from .. import codec
from ..exceptions import FrameError, HeaderChecksumError
from ..protocol import CHECKSUM_SIZE, HEADER_SIZE, START_BYTE


def is_whole_frame(chunk: bytes) -> bool:
    """True when ``chunk`` is exactly one frame with good checksums (the usual case)."""
    try:
        size = codec.frame_size(chunk) if chunk[0] == START_BYTE else -1
    except (FrameError, IndexError):
        return False
    return (
        size == len(chunk)
        and codec.checksum(chunk[HEADER_SIZE : size - CHECKSUM_SIZE])
        == chunk[size - CHECKSUM_SIZE :]
    )


def split_frames(
    buffer: bytes | bytearray, counts: list[int] | None = None
) -> tuple[list[bytes], int]:
    """The whole valid frames in ``buffer`` and the offset of the bytes left over.

    ``counts`` (if given) gets [junk bytes, header errors, length errors, data errors]
    added to it.
    """
    frames: list[bytes] = []
    frame_size = codec.frame_size
    checksum = codec.checksum
    pos = 0
    end = len(buffer)
    while pos < end:
        if buffer[pos] != START_BYTE:
            nxt = buffer.find(START_BYTE, pos)
            nxt = end if nxt < 0 else nxt
            if counts is not None:
                counts[0] += nxt - pos
            pos = nxt
            continue
        try:
            # the header alone gives the size (a copy: the buffer may be a bytearray)
            size = frame_size(bytes(buffer[pos : pos + HEADER_SIZE]))
        except FrameError as exc:
            if counts is not None:
                counts[1 if isinstance(exc, HeaderChecksumError) else 2] += 1
            pos += 1
            continue
        if size == 0 or end - pos < size:
            break
        frame = bytes(buffer[pos : pos + size])
        if checksum(frame[HEADER_SIZE : size - CHECKSUM_SIZE]) != frame[size - CHECKSUM_SIZE :]:
            if counts is not None:
                counts[3] += 1
            pos += 1
            continue
        frames.append(frame)
        pos += size
    return frames, pos


class Framer:
    """Feeds chunks of a byte stream to ``split_frames``, keeping what is left between them."""

    __slots__ = ("_buf", "_counts", "frames")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._counts = [0, 0, 0, 0]  # junk bytes, header, length, data errors
        self.frames = 0

    def reset(self) -> None:
        """Drop buffered bytes (after reconnecting a link), keeping the counters."""
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes held back, waiting for the rest of a frame."""
        return len(self._buf)

    @property
    def junk_bytes(self) -> int:
        return self._counts[0]

    @property
    def bad_frames(self) -> int:
        """Frames skipped for a bad header checksum, impossible length or bad data checksum."""
        c = self._counts
        return c[1] + c[2] + c[3]

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk`` and return the raw frames it completed, in stream order."""
        buf = self._buf
        if not buf and is_whole_frame(chunk):
            self.frames += 1
            return [bytes(chunk)]
        buf += chunk
        frames, used = split_frames(buf, self._counts)
        del buf[:used]
        self.frames += len(frames)
        return frames

    def stats(self) -> dict[str, int]:
        """The codec StreamDecoder's counters: frames, skipped bytes and why, pending."""
        junk, header, length, data = self._counts
        return {
            "frames": self.frames,
            "skipped_bytes": junk + header + length + data,
            "junk_bytes": junk,
            "header_errors": header,
            "length_errors": length,
            "data_errors": data,
            "pending": len(self._buf),
        }
