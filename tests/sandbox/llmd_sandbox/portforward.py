"""`pods/NAME/portforward`: the three ways clients reach a pod port through the API server.

1. WebSocket `v4.channel.k8s.io` (the kubernetes Python client): binary messages whose first byte is the
   channel; port index i has data channel 2i and error channel 2i+1. The server first writes the port
   (uint16, little endian) on both channels of every port, then relays. A failure is written as text on
   the error channel and ends that port; the socket closes when every port is done (the kubelet's
   websocket.go). `v5.channel.k8s.io` is the same plus the close signal [255, channel] (client half-close),
   chosen only when the client does not offer v4 (the kubelet itself knows no v5 for port-forward).
2. WebSocket `SPDY/3.1+portforward.k8s.io` (kubectl 1.31+): SPDY bytes tunnelled in binary messages.
3. `Upgrade: SPDY/3.1` + `X-Stream-Protocol-Version: portforward.k8s.io` -> 101 (kubectl 1.30 and the
   fallback of newer ones), then SPDY on the raw connection.

Over SPDY, kubectl opens an `error` and a `data` stream per local connection (headers `streamtype`,
`port`, `requestid`); each complete pair gets its own backend connection (the kubelet's httpstream.go).

`connect(port)` opens the pod's port: it returns (StreamReader, StreamWriter) or raises OSError.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from llmd_sandbox import spdy

Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
SPDY_PROTOCOL = "portforward.k8s.io"
CLOSE_CHANNEL = 255  # v5: [255, channel] says the client will send no more on that channel

CHUNK = 64 * 1024  # largest piece relayed at once, in either direction
MAX_MESSAGE = 16 * 1024 * 1024  # the Python client sends up to 1 MiB per message
STREAM_CREATION_TIMEOUT = 30.0  # kubelet default: how long data waits for its stream pair


async def handle(request: web.Request, connect: Connect, *, uid: str = "") -> web.StreamResponse:
    forward = _Forwarder(_pod_name(request), uid, connect)
    if request.headers.get("Upgrade", "").lower() == "websocket":
        protocol = _websocket_protocol(request)
        if protocol == SPDY_TUNNEL:
            return await forward.spdy_over_websocket(request)
        if protocol is None:
            offered = request.headers.get("Sec-WebSocket-Protocol", "")
            raise web.HTTPForbidden(
                text=f"requested protocol(s) are not supported: [{offered}]; supports {[V4, SPDY_TUNNEL]}"
            )
        return await forward.channels(request, protocol)
    if (
        request.headers.get("Upgrade", "").lower() == "spdy/3.1"
        and "upgrade" in request.headers.get("Connection", "").lower()
    ):
        return await forward.spdy_upgrade(request)
    raise web.HTTPBadRequest(text="Upgrade request required")


def _pod_name(request: web.Request) -> str:
    if "pod" in request.match_info:  # the kubelet API: /portForward/NS/POD
        return request.match_info["pod"]
    match = re.search(r"/pods/([^/]+)/portforward", request.path)
    return match.group(1) if match else ""


def _websocket_protocol(request: web.Request) -> str | None:
    """The client's first choice among ours; v5 only when v4 is not offered; "" (v4 framing) if none asked."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if not offered:
        return ""
    for protocol in offered:
        if protocol in (V4, SPDY_TUNNEL):
            return protocol
    return V5 if V5 in offered else None


def _ports(request: web.Request) -> list[int]:
    """`ports` as the API server reads it: repeated and/or comma separated, each 1..65535."""
    # `ports` to the API server, `port` (api.PortHeader) from the API server to the kubelet
    values = request.query.getall("ports", []) + request.query.getall("port", [])
    if not values:
        raise web.HTTPBadRequest(text='query parameter "port" is required')
    ports = []
    for value in values:
        for item in value.split(","):
            if not item.isdigit() or not 0 < int(item) < 65536:
                raise web.HTTPBadRequest(text=f'unable to parse "{value}" as a port')
            ports.append(int(item))
    return ports


class _RawConnectionParser:
    """Takes the bytes aiohttp reads after our 101: aiohttp only switches protocols for websocket itself,
    so, as its WebSocketResponse does, we install a payload parser with request.protocol.set_parser()
    and it hands every later byte on the connection to feed_data."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self._reader.feed_eof()


class _Forwarder:
    def __init__(self, pod: str, uid: str, connect: Connect) -> None:
        self.pod = pod
        self.uid = uid
        self.connect = connect

    def error_text(self, port: int, exc: OSError, action: str = "connect") -> str:
        """The kubelet's wording around a containerd-like cause, e.g. "dial ...: connect: connection refused"."""
        cause = os.strerror(exc.errno).lower() if exc.errno else str(exc) or type(exc).__name__
        if action == "connect":
            detail = f"failed to connect to localhost:{port} inside namespace of pod {self.pod}, IPv4: dial"
        else:
            detail = action
        cause = f"{detail} tcp4 127.0.0.1:{port}: {action}: {cause}"
        return f"error forwarding port {port} to pod {self.pod}, uid {self.uid}: {cause}"

    async def pump(
        self,
        port: int,
        reader: asyncio.StreamReader,
        write: Callable[[bytes], Awaitable[None]],
        report: Callable[[str], Awaitable[None]],
    ) -> None:
        """Backend -> client until the backend closes; a backend error is reported, a gone client ends it."""
        while True:
            try:
                chunk = await reader.read(CHUNK)
            except OSError as exc:
                with contextlib.suppress(ConnectionError):
                    await report(self.error_text(port, exc, "read"))
                return
            if not chunk:
                return
            try:
                await write(chunk)
            except ConnectionError:
                return

    # --- WebSocket channels (v4 / v5) -------------------------------------------------------------

    async def channels(self, request: web.Request, protocol: str) -> web.WebSocketResponse:
        ports = _ports(request)
        ws = web.WebSocketResponse(
            protocols=(protocol,) if protocol else (), compress=False, max_msg_size=MAX_MESSAGE, autoclose=True
        )
        await ws.prepare(request)
        for index, port in enumerate(ports):
            port_bytes = port.to_bytes(2, "little")
            await ws.send_bytes(bytes([2 * index]) + port_bytes)
            await ws.send_bytes(bytes([2 * index + 1]) + port_bytes)
        backends: list[asyncio.Future[asyncio.StreamWriter | None]] = [
            asyncio.get_running_loop().create_future() for _port in ports
        ]
        port_tasks = [asyncio.create_task(self._channel_port(ws, i, port, backends[i])) for i, port in enumerate(ports)]
        ports_done = asyncio.gather(*port_tasks)
        receiver = asyncio.create_task(self._channel_receiver(ws, protocol, backends))
        try:
            # The socket closes when every port is done (or when the client closes it).
            await asyncio.wait([receiver, ports_done], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiver, *port_tasks):
                task.cancel()
            await asyncio.gather(receiver, ports_done, return_exceptions=True)
            for backend in backends:
                if backend.done() and backend.result() is not None:
                    backend.result().close()
            await ws.close()
        return ws

    async def _channel_port(
        self, ws: web.WebSocketResponse, index: int, port: int, backend: asyncio.Future[asyncio.StreamWriter | None]
    ) -> None:
        async def report(text: str) -> None:
            await ws.send_bytes(bytes([2 * index + 1]) + text.encode())

        try:
            reader, writer = await self.connect(port)
        except OSError as exc:
            backend.set_result(None)
            with contextlib.suppress(ConnectionError):
                await report(self.error_text(port, exc))
            return
        backend.set_result(writer)
        try:
            await self.pump(port, reader, lambda chunk: ws.send_bytes(bytes([2 * index]) + chunk), report)
        finally:
            writer.close()

    async def _channel_receiver(
        self, ws: web.WebSocketResponse, protocol: str, backends: list[asyncio.Future[asyncio.StreamWriter | None]]
    ) -> None:
        """Client -> backends. Written in place, so a slow backend holds the socket back (as wsstream's pipes do)."""
        async for message in ws:
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            channel, payload = message.data[0], message.data[1:]
            close_signal = protocol == V5 and channel == CLOSE_CHANNEL and len(payload) == 1
            if close_signal:
                channel, payload = payload[0], b""
            if channel % 2 or channel // 2 >= len(backends):
                continue  # error channels are write-only; unknown channels are ignored
            writer = await backends[channel // 2]
            if writer is None or writer.is_closing():
                continue
            if close_signal:
                if writer.can_write_eof():
                    writer.write_eof()
                continue
            writer.write(payload)
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    # --- SPDY ---------------------------------------------------------------------------------------

    async def spdy_upgrade(self, request: web.Request) -> web.StreamResponse:
        offered = [
            v.strip() for header in request.headers.getall("X-Stream-Protocol-Version", []) for v in header.split(",")
        ]
        if not offered:
            raise web.HTTPBadRequest(text="unable to upgrade: X-Stream-Protocol-Version is required")
        if SPDY_PROTOCOL not in offered:
            raise web.HTTPForbidden(
                headers={"X-Accepted-Stream-Protocol-Versions": SPDY_PROTOCOL},
                text="unable to upgrade: unable to negotiate protocol: "
                f"client supports {offered}, server accepts [{SPDY_PROTOCOL}]",
            )
        response = web.StreamResponse(
            status=101,
            reason="Switching Protocols",
            headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": SPDY_PROTOCOL},
        )
        response.force_close()
        reader = asyncio.StreamReader(limit=CHUNK)
        reader.set_transport(request.transport)  # pauses the socket when we fall behind
        request.protocol.set_parser(_RawConnectionParser(reader))
        await response.prepare(request)
        await self._spdy_session(lambda: reader.read(CHUNK), response.write)
        return response

    async def spdy_over_websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=(SPDY_TUNNEL,), compress=False, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)

        async def recv() -> bytes:
            # client-go writes each piece of a frame as its own message, some of them empty: skip those.
            while (message := await ws.receive()).type == WSMsgType.BINARY:
                if message.data:
                    return message.data
            return b""

        try:
            await self._spdy_session(recv, ws.send_bytes)
        finally:
            await ws.close()
        return ws

    async def _spdy_session(
        self, recv: Callable[[], Awaitable[bytes]], send: Callable[[bytes], Awaitable[None]]
    ) -> None:
        pairs: dict[str, _StreamPair] = {}
        by_stream: dict[int, _StreamPair] = {}
        tasks: set[asyncio.Task] = set()

        def on_open(stream: spdy.Stream) -> str | None:
            port, kind = stream.headers.get("port", ""), stream.headers.get("streamtype", "")
            if not port.isdigit() or not 0 < int(port) < 65536:
                return f'unable to parse "{port}" as a port'
            if kind not in ("error", "data"):
                return f'invalid stream type "{kind}"'
            request_id = stream.headers.get("requestid") or str(stream.id if kind == "error" else stream.id - 2)
            pair = pairs.setdefault(request_id, _StreamPair(int(port)))
            if getattr(pair, kind) is not None:
                return f"{kind} stream already assigned"
            setattr(pair, kind, stream)
            by_stream[stream.id] = pair
            if pair.error is not None and pair.data is not None:
                del pairs[request_id]
                task = asyncio.create_task(self._forward_pair(pair))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _: [by_stream.pop(s.id, None) for s in (pair.error, pair.data)])
            return None

        async def on_data(stream: spdy.Stream, data: bytes) -> None:
            pair = by_stream.get(stream.id)
            if pair is None or stream is not pair.data:
                return  # clients write nothing on the error stream
            try:
                writer = (
                    pair.backend.result()
                    if pair.backend.done()
                    else await asyncio.wait_for(asyncio.shield(pair.backend), STREAM_CREATION_TIMEOUT)
                )
            except TimeoutError:
                return
            if writer is None or writer.is_closing():
                return
            writer.write(data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()

        def on_end(stream: spdy.Stream, reset: bool) -> None:
            pair = by_stream.get(stream.id)
            if pair is not None and stream is pair.data:
                pair.client_ended("reset" if reset else "fin")

        session = spdy.Session(recv, send, on_open, on_data, on_end)
        try:
            await session.run()
        except (spdy.ProtocolError, ConnectionError):
            pass
        finally:
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _forward_pair(self, pair: _StreamPair) -> None:
        async def report(text: str) -> None:
            await pair.error.write(text.encode())

        try:
            try:
                reader, writer = await self.connect(pair.port)
            except OSError as exc:
                pair.backend.set_result(None)
                with contextlib.suppress(ConnectionError):
                    await report(self.error_text(pair.port, exc))
                return
            pair.backend.set_result(writer)
            pair.client_ended()  # in case the client finished before we were connected
            try:
                await self.pump(pair.port, reader, pair.data.write, report)
            finally:
                writer.close()
        finally:
            if not pair.backend.done():
                pair.backend.set_result(None)
            # As the kubelet: close the error stream, then the data stream (FIN = backend closed).
            with contextlib.suppress(ConnectionError):
                await pair.error.close()
                await pair.data.close()


class _StreamPair:
    def __init__(self, port: int) -> None:
        self.port = port
        self.error: spdy.Stream | None = None
        self.data: spdy.Stream | None = None
        self.backend: asyncio.Future[asyncio.StreamWriter | None] = asyncio.get_running_loop().create_future()
        self.client_end: str | None = None  # "fin" or "reset" once the client has finished its direction

    def client_ended(self, how: str | None = None) -> None:
        """Pass the client's FIN (half-close) or reset on to the backend, now or once it is connected."""
        self.client_end = how or self.client_end
        writer = self.backend.result() if self.backend.done() else None
        if self.client_end is None or writer is None or writer.is_closing():
            return
        if self.client_end == "reset":
            writer.close()  # the client gave up on this connection
        elif writer.can_write_eof():
            writer.write_eof()  # the client sends no more
