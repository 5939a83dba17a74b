"""The Xcom codec: one API, served by the compiled ``_codec`` or the pure ``_codec_py``.

``XCOMLOG_NO_EXTENSIONS=1`` forces the pure-Python implementation. ``IMPLEMENTATION``
says which one is active (``"c"`` or ``"py"``). Both are importable by name for tests
and benchmarks: ``xcomlog._codec`` and ``xcomlog._codec_py``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .records import Frame, FrameBatch, Message, MultiInfo, MultiInfoBatch

NO_EXTENSIONS = os.environ.get("XCOMLOG_NO_EXTENSIONS", "") not in ("", "0")

if TYPE_CHECKING or NO_EXTENSIONS:
    from . import _codec_py as _impl
else:
    try:
        from . import _codec as _impl  # type: ignore[no-redef]
    except ImportError:  # not built: an sdist install without a compiler
        from . import _codec_py as _impl  # type: ignore[no-redef]

IMPLEMENTATION: str = _impl.IMPLEMENTATION

checksum = _impl.checksum
encode_frame = _impl.encode_frame
encode_request = _impl.encode_request
encode_response = _impl.encode_response
frame_size = _impl.frame_size
decode_frame = _impl.decode_frame
StreamDecoder = _impl.StreamDecoder
decode_batch = _impl.decode_batch
decode_multi_info_batch = _impl.decode_multi_info_batch
pack_value = _impl.pack_value
unpack_value = _impl.unpack_value
pack_multi_info_request = _impl.pack_multi_info_request
encode_multi_info_request = _impl.encode_multi_info_request
unpack_multi_info_request = _impl.unpack_multi_info_request
pack_multi_info_response = _impl.pack_multi_info_response
decode_multi_info = _impl.decode_multi_info
pack_message = _impl.pack_message
decode_message = _impl.decode_message

__all__ = [
    "IMPLEMENTATION",
    "NO_EXTENSIONS",
    "Frame",
    "FrameBatch",
    "Message",
    "MultiInfo",
    "MultiInfoBatch",
    "checksum",
    "encode_frame",
    "encode_request",
    "encode_response",
    "frame_size",
    "decode_frame",
    "StreamDecoder",
    "decode_batch",
    "decode_multi_info_batch",
    "pack_value",
    "unpack_value",
    "pack_multi_info_request",
    "encode_multi_info_request",
    "unpack_multi_info_request",
    "pack_multi_info_response",
    "decode_multi_info",
    "pack_message",
    "decode_message",
]
