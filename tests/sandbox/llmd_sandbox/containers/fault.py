"""Faults of a gateway or model server, one port each (image `llmd-sandbox-fault`), as a sidecar of a serving pod.

Answers that are not faults are relayed to --upstream (the pod's own server, e.g. http://localhost:8000).

    --burst-port P    the first --burst-count requests get Envoy's 503 `upstream connect error ...`, the rest
                      are relayed; POST /fault/reset starts a new burst (the test calls it before a run)
    --backlog-port P  a listener whose accept queue is full and never drained: connects time out
    --hang-port P     accepts and reads a request, never answers: no first byte
    --stall-port P    relays, but a streamed answer stops after its first event and the connection stays open
    --cut-port P      relays, but a streamed answer is cut (connection reset) after its first event
    --html-port P     every request gets a 502 HTML error page, as nginx or a cloud load balancer sends
    --slow-port P     relays, a streamed answer one event every --slow-interval seconds; logs `slow stream started`
"""

import argparse
import asyncio
import socket

from aiohttp import web

from .relay import client_session, forwarded_headers
from .spec import ContainerSpec

ENVOY_503 = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
HTML_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
            "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def parse_args(args: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fault")
    parser.add_argument("--upstream", default="http://localhost:8000")
    for name in ("burst", "backlog", "hang", "stall", "cut", "html", "slow"):
        parser.add_argument(f"--{name}-port", type=int)
    parser.add_argument("--burst-count", type=int, default=3)
    parser.add_argument("--slow-interval", type=float, default=0.3)
    return parser.parse_args([str(a) for a in args])


class Faults:
    def __init__(self, spec: ContainerSpec, args: argparse.Namespace, session):
        self.spec, self.args, self.session = spec, args, session
        self.burst_left = args.burst_count
        self.streaming = set()  # transports of the answers being streamed, cut when the container stops

    async def _open(self, request: web.Request):
        """The upstream's answer to the request, not yet read (the caller closes it)."""
        body = await request.read()
        return await self.session.request(request.method, self.args.upstream + request.path_qs, data=body,
                                          headers=forwarded_headers(request), allow_redirects=False)

    async def _relay(self, request: web.Request, after_first_event=None, interval: float = 0.0):
        """Relays the answer; a streamed one event by event: after_first_event(request) is called once the first
        event is sent (it stalls or cuts), and `interval` seconds pass between events."""
        try:
            return await self._relay_answer(request, after_first_event, interval)
        except ConnectionResetError:  # the client went away (its timeout, or the cut itself)
            return web.Response(status=499)

    async def _relay_answer(self, request: web.Request, after_first_event, interval: float):
        async with await self._open(request) as upstream:
            streamed = upstream.headers.get("Content-Type", "").startswith("text/event-stream")
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            if upstream.content_length is not None and not streamed:
                response.content_length = upstream.content_length
            await response.prepare(request)
            if not streamed:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            else:
                events = 0
                self.streaming.add(request.transport)
                async for line in upstream.content:  # SSE: one event ends with an empty line
                    await response.write(line)
                    if line.strip():
                        continue
                    events += 1
                    if events == 1 and after_first_event is not None:
                        await after_first_event(request)
                        return response
                    if events == 1 and interval:
                        print(f"slow stream started: {request.method} {request.path}", flush=True)
                    await asyncio.sleep(interval)
            await response.write_eof()
            self.streaming.discard(request.transport)
            return response

    def cut_streams(self) -> None:
        """A container that stops (its pod deleted) ends its connections, as a killed process's close: a streamed
        answer is cut in the middle, instead of being finished by a graceful shutdown."""
        for transport in self.streaming:
            if transport is not None:
                transport.abort()

    async def burst(self, request: web.Request):
        if request.method == "POST" and request.path == "/fault/reset":
            self.burst_left = self.args.burst_count
            return web.Response(text="burst reset\n")
        if self.burst_left > 0:
            self.burst_left -= 1
            print(f"burst 503 ({self.burst_left} left): {request.method} {request.path}", flush=True)
            return web.Response(status=503, text=ENVOY_503, headers={"server": "envoy"})
        return await self._relay(request)

    async def hang(self, request: web.Request):
        await request.read()
        print(f"hanging: {request.method} {request.path}", flush=True)
        await asyncio.Event().wait()

    async def stall(self, request: web.Request):
        async def stall_forever(_request):
            print(f"stream stalled: {request.method} {request.path}", flush=True)
            await asyncio.Event().wait()
        return await self._relay(request, after_first_event=stall_forever)

    async def cut(self, request: web.Request):
        async def cut_now(request):
            print(f"stream cut: {request.method} {request.path}", flush=True)
            request.transport.abort()
        return await self._relay(request, after_first_event=cut_now)

    async def html(self, request: web.Request):
        await request.read()
        return web.Response(status=502, text=HTML_502, content_type="text/html")

    async def slow(self, request: web.Request):
        return await self._relay(request, interval=self.args.slow_interval)


def _full_backlog(host: str, port: int) -> list[socket.socket]:
    """A listener with an accept queue of one, filled by a connection of its own and never accepted: the kernel
    drops every further SYN, so clients' connects time out (as with a gateway that is overloaded or firewalled)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(0)
    filler = socket.create_connection(("127.0.0.1" if host == "0.0.0.0" else host, port), timeout=5)
    return [listener, filler]


async def run(spec: ContainerSpec, stop: asyncio.Event) -> int:
    args = parse_args(spec.args)
    runners, sockets = [], []
    async with client_session("127.0.0.1" if spec.netns else spec.pod_ip) as session:
        faults = Faults(spec, args, session)
        for name in ("burst", "hang", "stall", "cut", "html", "slow"):
            port = getattr(args, f"{name}_port")
            if port:
                app = web.Application(client_max_size=64 * 1024 * 1024)
                app.router.add_route("*", "/{tail:.*}", getattr(faults, name))
                runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
                await runner.setup()
                await web.TCPSite(runner, spec.listen_host, port).start()
                runners.append(runner)
        if args.backlog_port:
            sockets = _full_backlog(spec.listen_host, args.backlog_port)
        print(f"fault {spec.name} of pod {spec.pod} serving {vars(args)}", flush=True)
        await stop.wait()
        faults.cut_streams()
        for runner in runners:
            await runner.cleanup()
        for sock in sockets:
            sock.close()
    return 0
