"""The Arrow schemas of the dataset's tables and the key-value metadata keys of its files.

Tables: ``values`` (the long table of logged and imported values), ``messages``,
``events``, ``parameters`` and ``devices`` (partitioned by site and UTC date), plus the
per-site ``datapoints`` labels table. One source of truth for the columns every writer
(live logger, SD-card import) produces and every reader expects.
"""

from __future__ import annotations

import pyarrow as pa

#: Microseconds: with ``interval = 0`` on a fast link one series is read several times per
#: millisecond, so (time, address, number) is a key only at a finer unit (issue 15). The
#: writer's API still takes milliseconds (``time_ms``); see DatasetWriter for the key rule.
TIME_TYPE = pa.timestamp("us", tz="UTC")
#: Ticks of TIME_TYPE in a millisecond and in a UTC day.
TIME_PER_MS = 1000
TIME_PER_DAY = 86_400_000 * TIME_PER_MS

#: The long table: one row per value read (live) or per SD-card cell (imported).
VALUES_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("address", pa.uint16(), nullable=False),
        pa.field("number", pa.uint16(), nullable=False),
        pa.field("value", pa.float32()),
    ]
)

#: Messages of the devices (section 4.6.6): one row per message read from the gateway.
#: ``time`` is the message's own time, ``logged`` when xcomlog read it; ``number`` is the
#: message type and ``text`` its decoded text; ``total`` the messages still pending then.
MESSAGES_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("logged", TIME_TYPE),
        pa.field("address", pa.uint16(), nullable=False),
        pa.field("number", pa.uint16(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("total", pa.int32()),
    ]
)

#: What happened to the logger and when: missed intervals, timeouts, device errors, link
#: drops, restarts, imports. ``kind`` is a short word (see EVENT_KINDS); ``address`` and
#: ``number`` are null when the event concerns no datapoint; ``detail`` is free text.
EVENTS_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("address", pa.uint16()),
        pa.field("number", pa.uint16()),
        pa.field("detail", pa.string()),
    ]
)

#: Usual event kinds (other words are allowed; readers should not reject unknown kinds).
EVENT_KINDS = (
    "start",  # logger started (detail: version, configuration)
    "stop",  # logger stopped cleanly
    "recovered",  # rows recovered from the journal after a crash (detail: how many)
    "missed",  # a polling interval was missed (detail: by how much)
    "timeout",  # no answer in time (address/number of the request when known)
    "device_error",  # a device answered with an error code (detail: the code)
    "link_down",  # the link broke (detail: the reason)
    "link_up",  # the link was (re)opened
    "quiet",  # polite mode: polling paused for the portal upload window
    "import",  # an SD-card file was imported (detail: the file)
    "gap",  # a hole in the data explained by detail
)

#: Parameter snapshots: ``value`` as a float64 (exact for every Xcom numeric format) and
#: ``text`` for values that are not numbers (strings, GUIDs, bit fields as hex) or null.
PARAMETERS_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("address", pa.uint16(), nullable=False),
        pa.field("number", pa.uint16(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("text", pa.string()),
    ]
)

#: The devices seen at a site and when: one row per device per discovery (or import).
#: ``family`` is a protocol.Family value, ``device`` the short name (xt1, vs2, bsp),
#: ``model``, ``firmware`` and ``serial`` are text as read (null when unknown).
DEVICES_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("address", pa.uint16(), nullable=False),
        pa.field("family", pa.string()),
        pa.field("device", pa.string()),
        pa.field("model", pa.string()),
        pa.field("firmware", pa.string()),
        pa.field("serial", pa.string()),
        pa.field("detail", pa.string()),
    ]
)

#: Labels of the datapoints of one site, one row per (address, number):
#: ``name`` and ``unit`` as in the appendix, ``family`` a protocol.Family value and
#: ``kind`` "info" (user info, in ``values``) or "parameter" (in ``parameters``).
DATAPOINTS_SCHEMA = pa.schema(
    [
        pa.field("address", pa.uint16(), nullable=False),
        pa.field("number", pa.uint16(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("family", pa.string()),
        pa.field("kind", pa.string()),
    ]
)

#: Every time-partitioned table and its schema.
SCHEMAS: dict[str, pa.Schema] = {
    "values": VALUES_SCHEMA,
    "messages": MESSAGES_SCHEMA,
    "events": EVENTS_SCHEMA,
    "parameters": PARAMETERS_SCHEMA,
    "devices": DEVICES_SCHEMA,
}

TABLES = ("values", "messages", "events", "parameters", "devices")

#: Parquet key-value metadata keys written in every file.
META_DATAPOINTS = b"xcomlog.datapoints"  # JSON list of [address, number, name, unit, family]
META_SITE = b"xcomlog.site"
META_TABLE = b"xcomlog.table"
META_VERSION = b"xcomlog.version"
#: In a writer's ``live-*`` file: how many rows of its journal segment it holds (the file is
#: republished as the segment grows; a reader takes the segment's rows past this count).
META_JOURNAL_ROWS = b"xcomlog.journal_rows"
