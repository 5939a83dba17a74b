"""SD-card file transfer (section 4.8): the directory and the day files, block by block."""

from __future__ import annotations

import logging
from typing import Any

from ..engine import (
    Operation,
    Request,
    Session,
)
from ..exceptions import (
    DeviceError,
    LinkError,
    ValidationError,
    XcomError,
    XcomTimeout,
)
from ..protocol import (
    ADDRESS_GATEWAY,
    FILE_OBJECT_DIRECTORY,
    FILE_OBJECT_FILE,
    ErrorCode,
    ObjectType,
    Property,
    Service,
)
from ..records import Frame

log = logging.getLogger("xcomlog.client")

#: Property ids a transfer answer may carry.
TRANSFER_ANSWERS = frozenset(
    {
        Property.NONE,
        Property.SD_START,
        Property.SD_DATABLOCK,
        Property.SD_ACK_CONTINUE,
        Property.SD_NACK_RETRY,
        Property.SD_ABORT,
        Property.SD_FINISH,
    }
)


class _TransferLost(XcomError):
    """The gateway lost track of a file transfer: start it again."""


class FileTransferOperations:
    """The client's file operations, generators over the engine's I/O commands."""

    #: Download transfers restart from the beginning at most this often.
    file_restarts = 3
    _session: Session

    def _list_datalog_files(self) -> Operation[list[str]]:
        """Names of the datalog files on the gateway's SD card (``LGYYMMDD.CSV``)."""
        data = yield from self._transfer(FILE_OBJECT_DIRECTORY, b"")
        text = data.decode("ascii", errors="replace")
        return [
            name.strip() for name in text.replace("\r", "\n").split("\n") if name.strip("\0 \t")
        ]

    def _download_datalog_file(self, name: str) -> Operation[bytes]:
        """The content of one datalog file from the SD card."""
        name = name.strip()
        if not name or any(c in name for c in "/\\\r\n\0"):
            raise ValidationError(f"invalid datalog file name {name!r}")
        try:
            data = name.encode("ascii") + b"\n"
        except UnicodeEncodeError:
            raise ValidationError(f"datalog file name {name!r} is not ASCII") from None
        return (yield from self._transfer(FILE_OBJECT_FILE, data))

    def _transfer_request(
        self, object_id: int, prop: int, data: bytes = b"", check: Any = None
    ) -> Request:
        return Request(
            Service.READ,
            ObjectType.DATALOG_TRANSFER,
            object_id,
            prop,
            data,
            dst=ADDRESS_GATEWAY,
            src=self._session.src,
            response_properties=TRANSFER_ANSWERS,
            check=check,
        )

    def _transfer(self, object_id: int, start_data: bytes) -> Operation[bytes]:
        """Run a transfer to its end, restarting it (after an abort) a few times if needed."""
        restarts = 0
        while True:
            try:
                return (yield from self._transfer_once(object_id, start_data))
            except (XcomTimeout, LinkError, _TransferLost) as exc:
                if restarts >= self.file_restarts:
                    if isinstance(exc, _TransferLost):
                        raise XcomTimeout(f"file transfer failed: {exc}") from None
                    raise
                restarts += 1
                log.info("file transfer restarts (%s)", exc)
                try:
                    yield from self._session.exchange(
                        self._transfer_request(object_id, Property.SD_ABORT), retries=0
                    )
                except XcomError:
                    pass

    def _transfer_once(self, object_id: int, start_data: bytes) -> Operation[bytes]:
        """One START...FINISH sequence: ACK after each good block, NACK when one is lost.

        The protocol numbers no blocks, so two cases look alike: the answer to our ACK
        was lost (the gateway moved on) or the ACK itself was (it did not). A NACK tells
        them apart: it makes the gateway send again the block it is at, and if that is
        the block we already hold, our ACK never arrived and is sent again. After a NACK
        a second copy of a block may still be on its way: until the next block arrives,
        a copy of the block just stored is skipped, never stored twice. (A file with two
        identical consecutive 512-byte blocks would defeat this; datalog lines all carry
        their own time.)
        """
        blocks: list[bytes] = []
        last: list[bytes | None] = [None]

        def not_a_copy(frame: Frame) -> bool:
            return not (
                last[0] is not None
                and frame.property_id == Property.SD_DATABLOCK
                and frame.data == last[0]
            )

        start = self._transfer_request(object_id, Property.SD_START, start_data)
        ack = self._transfer_request(object_id, Property.SD_ACK_CONTINUE)
        ack_after_nack = self._transfer_request(
            object_id, Property.SD_ACK_CONTINUE, check=not_a_copy
        )
        nack = self._transfer_request(object_id, Property.SD_NACK_RETRY)
        session = self._session
        request = start
        failures = 0
        copies_possible = False
        while True:
            try:
                frame = yield from session.exchange(request, retries=0)
            except (XcomTimeout, LinkError) as exc:
                failures += 1
                if failures > session.retries + 2:
                    raise
                if isinstance(exc, LinkError):
                    session.mark_broken()
                if request is not start:
                    request = nack  # START again simply restarts the file
                    copies_possible = True
                continue
            except DeviceError as exc:
                if (
                    exc.code in (ErrorCode.OBJECT_PROPERTY_INVALID, ErrorCode.INVALID_FRAME)
                    and request is not start
                ):
                    raise _TransferLost(str(exc)) from None
                raise
            if request is nack and not not_a_copy(frame):
                request = ack_after_nack  # the gateway is still at our block: ACK again
                continue
            failures = 0
            if frame.property_id == Property.SD_FINISH:
                blocks.append(bytes(frame.data))
                return b"".join(blocks)
            if frame.property_id != Property.SD_DATABLOCK:
                raise _TransferLost(
                    f"unexpected transfer answer property 0x{frame.property_id:02X}"
                )
            if request is ack or request is ack_after_nack:
                # An answer to an ACK comes after every copy sent before it.
                copies_possible = False
            blocks.append(bytes(frame.data))
            last[0] = bytes(frame.data)
            request = ack_after_nack if copies_possible else ack
