"""The kubelet API of the sandbox's node, as the API server calls it (https://NODE_IP:10250, client
certificate of the API server, signed by the sandbox's CA):

- `GET /containerLogs/NS/POD/CONTAINER?follow=&previous=&timestamps=&tailLines=&sinceSeconds=&sinceTime=&limitBytes=`
  from the CRI log files the node agent writes;
- `/portForward/NS/POD[/UID]`, SPDY (what the API server sends, also when it translates kubectl's WebSocket
  tunnel) or WebSocket `v4.channel.k8s.io` (what the Python client sends, proxied as is), connecting to the
  port on the pod's own loopback, inside its network namespace, as containerd does.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
from pathlib import Path

from aiohttp import web

from . import portforward
from .crilog import LogWriter, complete_lines, parse_cri, parse_rfc3339

FOLLOW_POLL_SECONDS = 0.05
AGENT = web.AppKey("agent", object)


def make_app(agent) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[AGENT] = agent
    app.router.add_get("/healthz", lambda _request: web.Response(text="ok"))
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    for path in ("/portForward/{namespace}/{pod}", "/portForward/{namespace}/{pod}/{uid}"):
        app.router.add_route("*", path, port_forward)
    return app


async def start(agent, cert: Path, key: Path, ca_file: Path) -> web.AppRunner:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_file))
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED  # only the API server, with its kubelet client certificate
    runner = web.AppRunner(make_app(agent), access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    from .node import KUBELET_PORT
    await web.TCPSite(runner, agent.node_ip, KUBELET_PORT, ssl_context=context, reuse_address=True).start()
    return runner


def _runtime(request: web.Request):
    agent = request.app[AGENT]
    runtime = agent.runtime(request.match_info["namespace"], request.match_info["pod"])
    if runtime is None:
        raise web.HTTPNotFound(text=f"pod \"{request.match_info['pod']}\" not found")
    return runtime


def _integer(query, name: str) -> int | None:
    try:
        return int(query[name]) if name in query else None
    except ValueError:
        raise web.HTTPBadRequest(text=f'strconv.ParseInt: parsing "{query[name]}": invalid syntax') from None


async def container_logs(request: web.Request) -> web.StreamResponse:
    runtime = _runtime(request)
    name = request.match_info["container"]
    container = next((c for c in runtime.containers if c.name == name), None)
    if container is None:
        raise web.HTTPBadRequest(text=f"container {name} is not valid for pod {runtime.name}")
    query = request.query
    previous, follow, timestamps = (query.get(key, "false").lower() in ("true", "1")
                                    for key in ("previous", "follow", "timestamps"))
    tail_lines, since_seconds, limit_bytes = _integer(query, "tailLines"), _integer(query, "sinceSeconds"), \
        _integer(query, "limitBytes")
    since = None
    if since_seconds is not None:
        since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=since_seconds)
    elif "sinceTime" in query:
        since = parse_rfc3339(query["sinceTime"])
    restart_count = container.restart_count
    directory = runtime.log_dir / name
    if previous:
        path = directory / f"{restart_count - 1}.log"
        if restart_count < 1 or not path.exists():
            raise web.HTTPBadRequest(text=f'previous terminated container "{name}" in pod "{runtime.name}" not found')
    else:
        path = directory / f"{restart_count}.log"
        if not path.exists():
            reason = container.state.get("waiting", {}).get("reason", "ContainerCreating")
            raise web.HTTPBadRequest(text=f'container "{name}" in pod "{runtime.name}" is waiting to start: {reason}')
    writer = LogWriter(since, limit_bytes, timestamps)
    pending: list[str] = []
    with path.open("rb") as log_file:
        lines = parse_cri(complete_lines(log_file), pending)
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines else []
        first = writer.render(lines)
        if not follow or previous:
            return web.Response(body=first, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(first)
        while not writer.exhausted:
            running = container.process is not None and container.restart_count == restart_count \
                and not runtime.stopping
            data = writer.render(parse_cri(complete_lines(log_file), pending))
            if data:
                await response.write(data)
            if not running:
                break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
    await response.write_eof()
    return response


def _connect_inside(netns: str, port: int) -> socket.socket:
    """A TCP connection to localhost:port made from inside the pod's network namespace (in a worker thread:
    setns changes only the calling thread, and the socket keeps the namespace it was made in)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    pod = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        os.setns(pod, os.CLONE_NEWNET)
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        finally:
            os.setns(own, os.CLONE_NEWNET)
    finally:
        os.close(own)
        os.close(pod)


async def port_forward(request: web.Request) -> web.StreamResponse:
    runtime = _runtime(request)

    async def connect(port: int):
        if not runtime.netns:
            raise OSError(111, "the pod has no network yet")
        sock = await asyncio.to_thread(_connect_inside, runtime.netns, port)
        sock.settimeout(None)
        sock.setblocking(False)
        return await asyncio.open_connection(sock=sock)

    return await portforward.handle(request, connect, uid=runtime.uid)
