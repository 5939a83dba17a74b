"""First frame checks from section 5.3 of the specification, on both codecs."""

from xcomlog.protocol import Format


def test_read_user_info_request(codec):
    frame = codec.encode_request(1, 1, 3000, 1, src=1, dst=101)
    assert frame == bytes.fromhex("AA 00 01000000 65000000 0A00 6F71 00 01 0100 B80B0000 0100 C590")


def test_read_user_info_response(codec):
    raw = bytes.fromhex("AA 34 65000000 01000000 0E00 A745 02 01 0100 B80B0000 0100 00C04541 0DCB")
    frame = codec.decode_frame(raw)
    assert (frame.src, frame.dst, frame.object_id, frame.frame_flags) == (101, 1, 3000, 0x34)
    assert codec.unpack_value(Format.FLOAT, frame.data) == 12.359375
