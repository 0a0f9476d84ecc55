"""A tiny test server (image `llmd-sandbox-echo`), for the sandbox's own port-forward and log tests.

    --http-port P   HTTP: GET /hello -> "hello from POD\\n"; GET /bytes/N -> N bytes of `pattern(N)`;
                    POST /echo -> the body back, with X-Body-Sha256. One log line per request.
    --echo-port P   raw TCP: echoes what it reads; when the client half-closes, finishes and closes.
    --tick S        prints `tick N` every S seconds (for `kubectl logs --since/-f/--tail`).
    --exit-after S  exits with --exit-code (default 1) after S seconds.
Every option may be given several times (ports) or not at all.
"""

import argparse
import asyncio
import hashlib

from aiohttp import web

from .spec import ContainerSpec

CHUNK = 64 * 1024


def pattern(size: int) -> bytes:
    """Deterministic content for transfer checks; the tests compute the same."""
    block = hashlib.sha256(str(size).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def parse_args(args: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="echo")
    parser.add_argument("--http-port", type=int, action="append", default=[])
    parser.add_argument("--echo-port", type=int, action="append", default=[])
    parser.add_argument("--tick", type=float, default=0)
    parser.add_argument("--exit-after", type=float, default=0)
    parser.add_argument("--exit-code", type=int, default=1)
    return parser.parse_args([str(a) for a in args])


def http_app(spec: ContainerSpec, port: int) -> web.Application:
    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text=f"hello from {spec.pod}\n")

    async def data(request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        body = pattern(size)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        for start in range(0, size, CHUNK):
            await response.write(body[start:start + CHUNK])
        await response.write_eof()
        return response

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body, headers={"X-Body-Sha256": hashlib.sha256(body).hexdigest()})

    @web.middleware
    async def access_log(request: web.Request, handler):
        response = await handler(request)
        print(f"{request.method} {request.path_qs} {response.status} port={port}", flush=True)
        return response

    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[access_log])
    app.router.add_get("/hello", hello)
    app.router.add_get("/bytes/{size:[0-9]+}", data)
    app.router.add_post("/echo", echo)
    return app


async def echo_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def run(spec: ContainerSpec, stop: asyncio.Event) -> int:
    args = parse_args(spec.args)
    runners, servers = [], []
    for port in args.http_port:
        runner = web.AppRunner(http_app(spec, port), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, spec.listen_host, port).start()
        runners.append(runner)
    for port in args.echo_port:
        servers.append(await asyncio.start_server(echo_connection, spec.listen_host, port))
    print(f"echo {spec.name} of pod {spec.pod} serving http {args.http_port} echo {args.echo_port}", flush=True)
    code = 0

    async def tick() -> None:
        number = 0
        while True:
            number += 1
            print(f"tick {number}", flush=True)
            await asyncio.sleep(args.tick)

    async def exit_later() -> None:
        nonlocal code
        await asyncio.sleep(args.exit_after)
        print(f"exiting with {args.exit_code}", flush=True)
        code = args.exit_code
        stop.set()

    tasks = ([asyncio.create_task(tick())] if args.tick else []) + \
        ([asyncio.create_task(exit_later())] if args.exit_after else [])
    await stop.wait()
    for task in tasks:
        task.cancel()
    for server in servers:
        server.close()
    for runner in runners:
        await runner.cleanup()
    return code
