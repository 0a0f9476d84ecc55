"""llm-d-routing-sidecar: the `routing-proxy` container of a decode pod.

Listens on `--port` (8000) in front of the pod's vLLM on `--vllm-port` (8200). `/health` is always 200 (it
never asks vLLM). While vLLM does not accept connections it answers as the real sidecar versions do:
`--behaviour=legacy` 502 with an empty body and "waiting for vLLM to be ready"; `--behaviour=current` 503
with vLLM-style JSON and "failed to connect to vLLM decoder". With `x-prefiller-host-port` it runs the
nixlv2 P/D protocol: prefill on that pod first (max_tokens 1), then decode locally with its KV params.
"""

import argparse
import asyncio
import errno
import json
import uuid

import aiohttp
from aiohttp import web

from . import logs
from .relay import client_session, forwarded_headers, relay
from .spec import ContainerSpec

COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions")
NOT_READY_BODY = json.dumps({
    "object": "error",
    "message": "The decode node is not ready. Please check that the vLLM service is running and the port "
               "configuration is correct.",
    "type": "ServiceUnavailable", "param": "", "code": 503}, separators=(",", ":"))
# Go's net/http sniffs a body written without a Content-Type: JSON text comes out as this.
GO_SNIFFED_TEXT = "text/plain; charset=utf-8"


def _go_bool(value: str) -> bool:
    return value.lower() in ("1", "t", "true")


def parse_args(argv: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llm-d-routing-sidecar")
    parser.add_argument("--port", "-port", default="8000")
    parser.add_argument("--vllm-port", "-vllm-port", default="8200")
    parser.add_argument("--connector", "-connector", default="nixlv2")
    parser.add_argument("--secure-proxy", "-secure-proxy", type=_go_bool, default=True,
                        help="accepted for manifest fidelity; the sandbox always serves plain HTTP")
    parser.add_argument("--behaviour", choices=("legacy", "current"), default="legacy")
    # klog and other real flags (-v=4, --enable-ssrf-protection, ...) are accepted and ignored.
    args, _unknown = parser.parse_known_args(argv)
    return args


class RoutingProxy:
    def __init__(self, spec: ContainerSpec, args: argparse.Namespace):
        self.spec, self.args = spec, args
        self.decoder = f"http://{'localhost' if spec.netns else spec.pod_ip}:{args.vllm_port}"
        # What Go prints when dialling `localhost:PORT` in the real pod.
        self.dial_error = f"dial tcp [::1]:{args.vllm_port}: connect: connection refused"
        self.session = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.request_id], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        for path in COMPLETION_PATHS:
            app.router.add_post(path, self.completions)
        app.router.add_route("*", "/{tail:.*}", self.passthrough)
        return app

    @web.middleware
    async def request_id(self, request, handler):
        """Every request gets an x-request-id (kept if the client sent one), echoed in the answer."""
        request["request_id"] = request.headers.get("x-request-id") or str(uuid.uuid4())
        response = await handler(request)
        if not response.prepared:
            response.headers["x-request-id"] = request["request_id"]
        return response

    async def health(self, request):
        return web.Response(status=200)

    async def passthrough(self, request):
        return await self.to_decoder(request, await request.read())

    async def completions(self, request):
        hosts = request.headers.get("x-prefiller-host-port") or request.headers.get("x-prefiller-url") or ""
        prefiller = hosts.split(",")[0].strip().removeprefix("http://")
        body = await request.read()
        if not prefiller:
            return await self.to_decoder(request, body)
        return await self.nixl_v2(request, body, prefiller)

    async def to_decoder(self, request, body: bytes):
        try:
            return await relay(request, self.session, self.decoder + request.path_qs, body,
                               self.upstream_headers(request), {"x-request-id": request["request_id"]})
        except aiohttp.ClientConnectorError as error:
            refused = error.os_error is not None and error.os_error.errno == errno.ECONNREFUSED
            return self.decoder_unreachable(refused, str(error))

    @staticmethod
    def upstream_headers(request) -> dict:
        return forwarded_headers(request, **{"x-request-id": request["request_id"]})

    def decoder_unreachable(self, refused: bool, detail: str) -> web.Response:
        err = self.dial_error if refused else detail
        if self.args.behaviour == "legacy":
            message = "waiting for vLLM to be ready" if refused else "http: proxy error"
            logs.klog("E", "proxy.go:268", message, err=err, logger="proxy server")
            return web.Response(status=502)
        if refused:
            logs.klog("E", "proxy.go:246", "failed to connect to vLLM decoder", err=err,
                      decoderURL=f"http://localhost:{self.args.vllm_port}", logger="proxy server")
            return web.Response(status=503, text=NOT_READY_BODY, headers={"Content-Type": GO_SNIFFED_TEXT})
        logs.klog("E", "proxy.go:254", "http: proxy error", err=err,
                  decoderURL=f"http://localhost:{self.args.vllm_port}", logger="proxy server")
        return web.Response(status=502, headers={"Content-Type": GO_SNIFFED_TEXT}, text=json.dumps(
            {"object": "error", "message": err, "type": "BadGateway", "param": "", "code": 502},
            separators=(",", ":")))

    async def nixl_v2(self, request, body: bytes, prefiller: str):
        """llm-d's nixlv2 connector: prefill remotely with max_tokens 1, decode here with its KV params."""
        logs.klog("I", "connector_nixlv2.go:37", "running NIXL protocol V2", url=prefiller, logger="proxy server")
        try:
            completion = json.loads(body)
        except ValueError as error:
            return web.json_response({"object": "error", "message": str(error), "type": "BadRequestError",
                                      "param": "", "code": 400}, status=400)
        prefill = dict(completion, stream=False, max_tokens=1, kv_transfer_params={
            "do_remote_decode": True, "do_remote_prefill": False, "remote_engine_id": None,
            "remote_block_ids": None, "remote_host": None, "remote_port": None})
        prefill.pop("stream_options", None)
        try:
            async with self.session.post(f"http://{prefiller}{request.path_qs}", data=json.dumps(prefill),
                                         headers=self.upstream_headers(request)) as answer:
                status, text = answer.status, await answer.text()
        except aiohttp.ClientError as error:
            logs.klog("E", "proxy.go:320", "http: proxy error", err=str(error), logger="proxy server")
            status, text = 502, ""
        if not 200 <= status < 300:
            logs.klog("E", "connector_nixlv2.go:119", "request failed", err="<nil>", code=status,
                      logger="proxy server")
            return web.Response(status=status)
        kv_transfer_params = json.loads(text).get("kv_transfer_params")
        if kv_transfer_params is None:
            logs.klog("I", "connector_nixlv2.go:133", "warning: missing 'kv_transfer_params' field in prefiller response",
                      logger="proxy server")
        decode = dict(completion, kv_transfer_params=kv_transfer_params)
        return await self.to_decoder(request, json.dumps(decode).encode())


async def run(spec: ContainerSpec, stop: asyncio.Event) -> int:
    args = parse_args(spec.args)
    proxy = RoutingProxy(spec, args)
    logs.klog("I", "main.go:71", "p/d connector validated", connector=args.connector)
    async with client_session(spec.pod_ip) as proxy.session:
        runner = web.AppRunner(proxy.app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, spec.listen_host, int(args.port)).start()
        logs.klog("I", "proxy.go:190", "starting", addr=f"[::]:{args.port}", logger="proxy server")
        await stop.wait()
        logs.klog("I", "proxy.go:166", "shutting down", logger="proxy server")
        await runner.cleanup()
    return 0
