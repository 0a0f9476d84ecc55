"""The server side of SPDY/3.1, as the kubelet speaks it for `kubectl port-forward`.

Semantics follow moby/spdystream (what kubectl and the kubelet both use): the client opens streams with
SYN_STREAM, the server answers SYN_REPLY (or RST_STREAM to refuse), DATA flows both ways, a DATA frame
with FLAG_FIN half-closes one direction, RST_STREAM ends a stream at once, PING is echoed, GOAWAY means no
new streams. spdystream does no flow control of its own, so WINDOW_UPDATE frames from the client are
ignored and we never wait for window: a peer that did honour windows still gets ours (see `_consumed`).

Header blocks are zlib streams primed with the SPDY/3 dictionary; there is one compressor and one
decompressor per connection and every block ends with a sync flush, so the order of header frames on the
wire must be the order they were compressed in (one write lock covers both).
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Awaitable, Callable

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01

# RST_STREAM status codes
PROTOCOL_ERROR = 1
CANCEL = 5

INITIAL_WINDOW = 64 * 1024

# The SPDY/3 header compression dictionary (spec draft 3, section 2.6.10.1; spdystream's headerDictionary).
DICTIONARY = (
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put"
    b"\x00\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset"
    b"\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\raccept-ranges"
    b"\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\rauthorization\x00\x00\x00\rcache-control"
    b"\x00\x00\x00\nconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding"
    b"\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location"
    b"\x00\x00\x00\x0bcontent-md5\x00\x00\x00\rcontent-range\x00\x00\x00\x0ccontent-type"
    b"\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires"
    b"\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since"
    b"\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since"
    b"\x00\x00\x00\rlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards"
    b"\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization"
    b"\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server"
    b"\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade"
    b"\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning"
    b"\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status"
    b"\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url"
    b"\x00\x00\x00\x06public\x00\x00\x00\nset-cookie\x00\x00\x00\nkeep-alive\x00\x00\x00\x06origin"
    b"100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    b"203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    b"403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    b"Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    b"chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    b"text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1; the connection cannot go on."""


class HeaderCodec:
    """Name/value header blocks: 32-bit counts and lengths, multiple values joined by NUL, zlib'd."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def encode(self, headers: dict[str, str]) -> bytes:
        parts = [struct.pack(">I", len(headers))]
        for name, value in headers.items():
            for item in (name.lower().encode(), value.encode()):
                parts += [struct.pack(">I", len(item)), item]
        return self._deflate.compress(b"".join(parts)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as exc:
            raise ProtocolError(f"bad header block: {exc}") from exc
        (count,), pos = struct.unpack_from(">I", raw), 4
        headers = {}
        for _header in range(count):
            (size,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4 : pos + 4 + size].decode()
            pos += 4 + size
            (size,) = struct.unpack_from(">I", raw, pos)
            # A NUL separates multiple values; like http.Header.Get we keep the first.
            headers[name] = raw[pos + 4 : pos + 4 + size].split(b"\x00")[0].decode()
            pos += 4 + size
        return headers


def control_frame(frame_type: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, frame_type, flags << 24 | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">II", stream_id, flags << 24 | len(data)) + data


class Stream:
    """One SPDY stream opened by the client. Writes raise ConnectionResetError once it cannot carry data."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.remote_closed = False  # FIN or RST received
        self.local_closed = False  # FIN or RST sent
        self.was_reset = False
        self._unacked = 0

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.was_reset:
            raise ConnectionResetError(f"SPDY stream {self.id} is closed")
        await self.session._send(data_frame(self.id, data))

    async def close(self) -> None:
        """Half-close our direction: an empty DATA frame with FLAG_FIN."""
        if not self.local_closed:
            self.local_closed = True
            await self.session._send(data_frame(self.id, b"", FLAG_FIN))
            self.session._forget_if_done(self)

    async def reset(self, status: int = CANCEL) -> None:
        if not self.local_closed or not self.remote_closed:
            self.local_closed = self.remote_closed = True
            await self.session._send(control_frame(RST_STREAM, struct.pack(">II", self.id, status)))
        self.session._forget_if_done(self)


class Session:
    """Reads frames from `recv` (bytes, b"" at end) and writes them with `send`; `run` returns at EOF.

    The callbacks say what the streams mean:
      on_open(stream) -> str | None   refuse the stream with RST_STREAM by returning a reason
      on_data(stream, data)           awaited before the next frame is read (so a slow consumer
                                      slows the client down, as in spdystream)
      on_end(stream, reset)           the client finished its direction (FIN) or reset the stream
    """

    def __init__(
        self,
        recv: Callable[[], Awaitable[bytes]],
        send: Callable[[bytes], Awaitable[None]],
        on_open: Callable[[Stream], str | None],
        on_data: Callable[[Stream, bytes], Awaitable[None]],
        on_end: Callable[[Stream, bool], None],
    ) -> None:
        self._recv = recv
        self._send_raw = send
        self._on_open = on_open
        self._on_data = on_data
        self._on_end = on_end
        self._codec = HeaderCodec()
        self._write_lock = asyncio.Lock()
        self._buffer = bytearray()
        self._eof = False
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self.going_away = False
        self._session_unacked = 0

    async def run(self) -> None:
        try:
            while (header := await self._read_exactly(8)) is not None:
                first, second = struct.unpack(">II", header)
                flags, length = second >> 24, second & 0xFFFFFF
                payload = await self._read_exactly(length)
                if payload is None:
                    break
                if first & 0x80000000:
                    await self._control(first >> 16 & 0x7FFF, first & 0xFFFF, flags, payload)
                else:
                    await self._data(first & 0x7FFFFFFF, flags, payload)
        finally:
            self.closed = True
            for stream in list(self.streams.values()):
                if not stream.remote_closed:
                    self._on_end(stream, True)  # the connection is gone: as good as a reset
                stream.local_closed = stream.remote_closed = stream.was_reset = True
            self.streams.clear()

    async def _read_exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size and not self._eof:
            chunk = await self._recv()
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True
        if len(self._buffer) < size:
            return None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def _send(self, frame: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("SPDY connection is closed")
        async with self._write_lock:
            await self._send_raw(frame)

    async def _control(self, version: int, frame_type: int, flags: int, payload: bytes) -> None:
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version} is not supported")
        if frame_type == SYN_STREAM:
            stream_id, _associated = struct.unpack_from(">II", payload)
            await self._open(stream_id & 0x7FFFFFFF, flags, self._codec.decode(payload[10:]))
        elif frame_type in (SYN_REPLY, HEADERS):
            self._codec.decode(payload[4:])  # keeps the shared zlib stream in step; nothing to do with them
        elif frame_type == RST_STREAM:
            stream = self.streams.pop(struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF, None)
            if stream is not None:
                stream.local_closed = stream.remote_closed = stream.was_reset = True
                self._on_end(stream, True)
        elif frame_type == PING:
            await self._send(control_frame(PING, payload))
        elif frame_type == GOAWAY:
            self.going_away = True
        # SETTINGS, WINDOW_UPDATE and unknown control frames are ignored, as spdystream does.

    async def _open(self, stream_id: int, flags: int, headers: dict[str, str]) -> None:
        if self.going_away:
            return  # after GOAWAY spdystream ignores new streams without a word
        stream = Stream(self, stream_id, headers)
        if stream_id in self.streams or stream_id % 2 == 0:
            await self._send(control_frame(RST_STREAM, struct.pack(">II", stream_id, PROTOCOL_ERROR)))
            return
        refusal = self._on_open(stream)
        if refusal is not None:
            await stream.reset()
            return
        self.streams[stream_id] = stream
        # Empty reply headers, not finished: what the kubelet's spdy connection sends.
        async with self._write_lock:
            await self._send_raw(control_frame(SYN_REPLY, struct.pack(">I", stream_id) + self._codec.encode({})))
        if flags & FLAG_FIN:
            self._remote_finished(stream)

    async def _data(self, stream_id: int, flags: int, data: bytes) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return  # spdystream drops data for streams it no longer knows
        if data and not stream.remote_closed:
            await self._on_data(stream, data)
            await self._consumed(stream, len(data))
        if flags & FLAG_FIN and not stream.remote_closed:
            self._remote_finished(stream)

    def _remote_finished(self, stream: Stream) -> None:
        stream.remote_closed = True
        self._on_end(stream, False)
        self._forget_if_done(stream)

    def _forget_if_done(self, stream: Stream) -> None:
        if stream.local_closed and stream.remote_closed:
            self.streams.pop(stream.id, None)

    async def _consumed(self, stream: Stream, size: int) -> None:
        # Give back window (per stream and, SPDY/3.1, per session) once half of it has been used.
        stream._unacked += size
        self._session_unacked += size
        if stream._unacked >= INITIAL_WINDOW // 2 and not stream.remote_closed:
            await self._send(control_frame(WINDOW_UPDATE, struct.pack(">II", stream.id, stream._unacked)))
            stream._unacked = 0
        if self._session_unacked >= INITIAL_WINDOW // 2:
            await self._send(control_frame(WINDOW_UPDATE, struct.pack(">II", 0, self._session_unacked)))
            self._session_unacked = 0
