"""SPDY/3.1 session details kubectl cannot show us (spdystream ignores window updates and a lost PING is
not fatal to it). Frames are built by hand from the draft-3 layout, header blocks with plain zlib."""

import asyncio
import struct
import zlib

from llmd_sandbox import spdy


def control(frame_type: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8003, frame_type, flags << 24 | len(payload)) + payload


def data(stream_id: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">II", stream_id, flags << 24 | len(payload)) + payload


def syn_stream(deflate, stream_id: int, headers: dict[str, str]) -> bytes:
    block = struct.pack(">I", len(headers)) + b"".join(
        struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode() for k, v in headers.items()
    )
    compressed = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    return control(1, struct.pack(">IIBB", stream_id, 0, 0, 0) + compressed)


def frames(raw: bytes) -> list[tuple[bool, int, int, bytes]]:
    """(is_control, type or stream id, flags, payload) for each frame in `raw`."""
    out, pos = [], 0
    while pos < len(raw):
        first, second = struct.unpack_from(">II", raw, pos)
        length = second & 0xFFFFFF
        kind = first & 0xFFFF if first & 0x80000000 else first
        out.append((bool(first & 0x80000000), kind, second >> 24, raw[pos + 8 : pos + 8 + length]))
        pos += 8 + length
    return out


def run_session(client_bytes: list[bytes], refuse: str | None = None):
    """Feed the client's frames one recv at a time; return (server bytes, data seen, ends seen)."""
    sent, received, ends = bytearray(), [], []

    async def main():
        incoming = iter(client_bytes)

        async def recv() -> bytes:
            await asyncio.sleep(0)
            return next(incoming, b"")

        async def send(frame: bytes) -> None:
            sent.extend(frame)

        async def on_data(stream, chunk):
            received.append((stream.id, chunk))

        session = spdy.Session(
            recv, send, lambda stream: refuse, on_data, lambda stream, reset: ends.append((stream.id, reset))
        )
        await asyncio.wait_for(session.run(), 5)

    asyncio.run(main())
    return bytes(sent), received, ends


def test_ping_is_echoed():
    sent, _received, _ends = run_session([control(6, struct.pack(">I", 7))])
    assert sent == control(6, struct.pack(">I", 7))


def test_stream_gets_an_empty_reply_then_window_back_for_what_was_consumed():
    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    opening = syn_stream(deflate, 1, {"streamtype": "data", "port": "8000", "requestid": "0"})
    payload = b"x" * 40000
    # Split mid-frame: the tunnel delivers SPDY as a byte stream, not frame by frame.
    sent, received, ends = run_session(
        [opening[:5], opening[5:] + data(1, payload)[:100], data(1, payload)[100:], data(1, b"", flags=1)]
    )

    assert received == [(1, payload)]
    assert ends == [(1, False)]  # the FIN: the client sends no more
    reply, stream_window, session_window = frames(sent)
    assert reply[:3] == (True, 2, 0) and reply[3][:4] == struct.pack(">I", 1)
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
    assert inflate.decompress(reply[3][4:]) == struct.pack(">I", 0)  # no reply headers
    assert stream_window == (True, 9, 0, struct.pack(">II", 1, 40000))
    assert session_window == (True, 9, 0, struct.pack(">II", 0, 40000))


def test_refused_stream_is_reset_and_reset_streams_end():
    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    sent, _received, _ends = run_session([syn_stream(deflate, 1, {"streamtype": "bogus"})], refuse="invalid stream type")
    assert frames(sent) == [(True, 3, 0, struct.pack(">II", 1, spdy.CANCEL))]

    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    _sent, _received, ends = run_session(
        [syn_stream(deflate, 1, {"streamtype": "data"}), control(3, struct.pack(">II", 1, spdy.CANCEL))]
    )
    assert ends == [(1, True)]


def test_no_new_streams_after_goaway():
    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    sent, _received, _ends = run_session([control(7, struct.pack(">II", 0, 0)), syn_stream(deflate, 1, {"streamtype": "data"})])
    assert sent == b""
