"""The example frames printed in the Xcom specification V1.6.32 (sections 5.3-5.8, 6.1, 6.2.5).

Shared by the codec, simulator and client tests for byte-for-byte checks. ``SPEC_FRAMES``
holds every frame printed in full whose bytes are self-consistent; ``ERRATA`` describes
the printed frames that are not, with what is still usable from them. The bytes are
facts of the protocol, transcribed from the specification's tables.
"""

from __future__ import annotations

from dataclasses import dataclass


def spec_checksum(data: bytes) -> bytes:
    """The checksum loop of section 3.4, literally (the oracle both codecs are tested against)."""
    a, b = 0xFF, 0
    for byte in data:
        a = (a + byte) % 0x100
        b = (b + a) % 0x100
    return bytes((a, b))


def h(text: str) -> bytes:
    """Bytes from the specification's spaced hexadecimal notation."""
    return bytes.fromhex(text)


@dataclass(frozen=True)
class SpecFrame:
    """One printed frame: its fields (to encode) and its wire bytes (to decode)."""

    name: str
    section: str
    wire: bytes
    frame_flags: int
    src: int
    dst: int
    service_flags: int
    service_id: int
    object_type: int
    object_id: int
    property_id: int
    data: bytes = b""
    note: str = ""

    @property
    def is_response(self) -> bool:
        return bool(self.service_flags & 0x02)


#: Directory listing of sections 5.7.1/5.7.2: two datalog file names, each ended by LF.
DIRECTORY_LISTING = b"LG171010.CSV\nLG171011.CSV\n"
#: The GUID of section 6.1.5.
GUID = h("3A D0 1B 0B 58 C9 32 BA EC 4D 35 28 61 3D 7D 40")
#: The message of section 5.6: 976 messages, type 16 (fan error), from 105 (XT5), at
#: 1503571330 (24.08.2017 10:42:10), value unused.
MESSAGE_DATA = h("D0 03 00 00 10 00 69 00 00 00 82 AD 9E 59 00 00 00 00")


def spec(
    name: str,
    section: str,
    header: str,
    service: str,
    data: bytes,
    data_checksum: str,
    note: str = "",
) -> SpecFrame:
    """A frame from the rows of its table: header, service header, property data, checksum.

    The fields are read back from the printed rows themselves (little endian), so the
    tables are the single source of each frame.
    """
    head, serv = h(header), h(service)
    return SpecFrame(
        name,
        section,
        head + serv + data + h(data_checksum),
        frame_flags=head[1],
        src=int.from_bytes(head[2:6], "little"),
        dst=int.from_bytes(head[6:10], "little"),
        service_flags=serv[0],
        service_id=serv[1],
        object_type=int.from_bytes(serv[2:4], "little"),
        object_id=int.from_bytes(serv[4:8], "little"),
        property_id=int.from_bytes(serv[8:10], "little"),
        data=data,
        note=note,
    )


# fmt: off
SPEC_FRAMES: list[SpecFrame] = [
    spec("read user info 3000 request", "5.3",
         "AA 00 01 00 00 00 65 00 00 00 0A 00 6F 71", "00 01 01 00 B8 0B 00 00 01 00",
         b"", "C5 90"),
    spec("read user info 3000 response", "5.3",
         "AA 34 65 00 00 00 01 00 00 00 0E 00 A7 45", "02 01 01 00 B8 0B 00 00 01 00",
         h("00 C0 45 41"), "0D CB", note="FLOAT 12.359375 (printed rounded as 12.3594)"),
    spec("read parameter 1138 value_qsp request", "5.4",
         "AA 00 01 00 00 00 65 00 00 00 0A 00 6F 71", "00 01 02 00 72 04 00 00 05 00",
         b"", "7D D9"),
    spec("read parameter 1138 value_qsp response", "5.4",
         "AA 34 65 00 00 00 01 00 00 00 0E 00 A7 45", "02 01 02 00 72 04 00 00 05 00",
         h("00 00 70 42"), "31 0B", note="FLOAT 60.0"),
    spec("write parameter 1138 value_qsp request", "5.5",
         "AA 00 01 00 00 00 65 00 00 00 0E 00 73 79", "00 02 02 00 72 04 00 00 05 00",
         h("00 00 40 41"), "FF 9B", note="FLOAT 12.0"),
    spec("write parameter 1138 value_qsp response", "5.5",
         "AA 34 65 00 00 00 01 00 00 00 0A 00 A3 3D", "02 02 02 00 72 04 00 00 05 00",
         b"", "80 F6"),
    spec("read message 0 request", "5.6",
         "AA 00 01 00 00 00 F5 01 00 00 0A 00 00 D6", "00 01 03 00 00 00 00 00 00 00",
         b"", "03 17"),
    spec("read message 0 response", "5.6",
         "AA 34 F5 01 00 00 01 00 00 00 1C 00 46 0A", "02 01 03 00 00 00 00 00 00 00",
         MESSAGE_DATA, "77 60"),
    spec("read directory start request", "5.7.1",
         "AA 00 01 00 00 00 F5 01 00 00 0A 00 00 D6", "00 01 01 01 01 00 00 00 21 00",
         b"", "24 56"),
    spec("read directory finish response", "5.7.1",
         "AA 27 F5 01 00 00 01 00 00 00 24 00 41 8B", "02 01 01 01 01 00 00 00 26 00",
         DIRECTORY_LISTING, "EE C9", note="frame flags 0x27 = 00100111b as printed"),
    spec("read GUID request", "6.1.5",
         "AA 00 01 00 00 00 F5 01 00 00 0A 00 00 D6", "00 01 04 00 00 00 00 00 00 00",
         b"", "04 1F"),
    # Erratum: the table's binary row says 00110100 (0x34, copied from the other
    # examples) but the byte row says 23; the header checksum 33 4B is that of 0x23.
    spec("read GUID response", "6.1.5",
         "AA 23 F5 01 00 00 01 00 00 00 1A 00 33 4B", "02 01 04 00 00 00 00 00 00 00",
         GUID, "34 A3", note="frame flags byte is 0x23; the binary row 00110100 is an erratum"),
    spec("read screen request", "6.2.5",
         "AA 00 01 00 00 00 F5 01 00 00 0A 00 00 D6", "00 01 00 01 00 00 00 00 00 00",
         b"", "01 06"),
]
# fmt: on

SPEC_BY_NAME = {frame.name: frame for frame in SPEC_FRAMES}


@dataclass(frozen=True)
class Erratum:
    """A printed frame that is not self-consistent, and the parts of it that are."""

    name: str
    section: str
    printed: bytes
    explanation: str


#: Section 5.7.2 request: the header is copied from 5.7.1 (data_length 0x0A, header
#: checksum 00 D6) but the frame carries 23 bytes of frame_data (10 + the 13-byte name
#: "LG171010.CSV\n"), as "Total number of bytes: 14+23+2 = 39" says; the data checksum
#: 24 56 is also 5.7.1's. A correct frame has data_length 0x17.
FILE_START_REQUEST_5_7_2 = Erratum(
    "read file start request",
    "5.7.2",
    h(
        "AA 00 01 00 00 00 F5 01 00 00 0A 00 00 D6"
        " 00 01 01 01 02 00 00 00 21 00"
        " 4C 47 31 37 31 30 31 30 2E 43 53 56 0A 24 56"
    ),
    "header and data checksum copied from 5.7.1: data_length must be 0x17, not 0x0A",
)
#: Section 5.7.2 response: object_id is 2 (file access) but the data checksum EE C9 is
#: the one of 5.7.1's object_id 1; the header (same length) is consistent.
FILE_FINISH_RESPONSE_5_7_2 = Erratum(
    "read file finish response",
    "5.7.2",
    h(
        "AA 27 F5 01 00 00 01 00 00 00 24 00 41 8B"
        " 02 01 01 01 02 00 00 00 26 00"
        " 4C 47 31 37 31 30 31 30 2E 43 53 56 0A"
        " 4C 47 31 37 31 30 31 31 2E 43 53 56 0A EE C9"
    ),
    "data checksum copied from 5.7.1 (object_id 1); with object_id 2 it is EF E9",
)
#: Section 5.8 request: the items are not printed ("???????"), the header shows
#: data_length 0x0A (it must be 10 + 3 * N) and the data checksum 13 8E cannot be
#: checked. Consistent: the service header and the total sizes 29 (1 item) to 254 bytes.
MULTI_INFO_REQUEST_5_8 = Erratum(
    "read multi infos request",
    "5.8",
    h("AA 00 01 00 00 00 F5 01 00 00 0A 00 00 D6 00 01 0A 00 01 00 00 00 01 00"),
    "items not printed; data_length 0x0A cannot hold any item",
)
#: Section 5.8 response: checksums printed as "xx xx"; data_length 0x72 = 114 gives 104
#: bytes of property data, i.e. 8 + 96, and 96 is no multiple of 7. Consistent: the
#: service header and the total sizes 41 (1 item) to 566 bytes (76 items).
MULTI_INFO_RESPONSE_5_8 = Erratum(
    "read multi infos response",
    "5.8",
    h("AA 37 F5 01 00 00 01 00 00 00 72 00"),
    "checksums not printed; data_length 114 is not 10 + 8 + 7 * N",
)
MULTI_INFO_RESPONSE_SERVICE_5_8 = h("02 01 0A 00 01 00 00 00 01 00")
#: The 24 (user info, aggregation) pairs of the section 5.8 table (Xcom portal synoptic).
MULTI_INFO_ITEMS_5_8 = [
    (3000, 253), (3080, 254), (3081, 254), (3082, 254), (3083, 254), (3136, 254),
    (3137, 254), (7000, 0), (7001, 0), (7002, 0), (7003, 0), (7005, 0), (7007, 0),
    (7008, 0), (7009, 0), (7010, 0), (11000, 253), (11004, 254), (11007, 254),
    (11011, 254), (15000, 253), (15010, 254), (15017, 254), (15027, 254),
]  # fmt: skip
#: Section 6.2.5 response: only the header is printed (1024 bytes of screen omitted).
SCREEN_RESPONSE_HEADER_6_2_5 = h("AA 22 F5 01 00 00 01 00 00 00 0A 04 26 24")

ERRATA = [
    FILE_START_REQUEST_5_7_2,
    FILE_FINISH_RESPONSE_5_7_2,
    MULTI_INFO_REQUEST_5_8,
    MULTI_INFO_RESPONSE_5_8,
]
