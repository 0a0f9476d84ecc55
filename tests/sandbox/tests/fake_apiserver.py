"""A tiny Kubernetes API server for client tests: one pod and one Service, over TLS on 127.0.0.1.

It serves what kubectl and the kubernetes Python client need to reach a pod port: `/version`, discovery
(`/api`, `/apis`, `/api/v1`), GET/list of pods (label selectors) and services, and
`pods/NAME/portforward` through `llmd_sandbox.portforward.handle`. The pod `web-0` (labels `app=web`,
podIP 127.0.0.1) has two ports, each backed by a real server on a free loopback port:
  8000 (`http`)  an aiohttp app: GET /hello, GET /bytes/N (N deterministic bytes), POST /echo (body back)
  9000 (`echo`)  a TCP echo server that half-closes after the client does
Any other pod port is refused (a free port nobody listens on). The Service `web` maps 80 -> `http`.

Everything runs on one asyncio loop in a background thread, so tests can drive blocking clients and
subprocesses (kubectl) directly. `requests` lists (method, path?query) of every API call, `portforwards`
records for each portforward call what the client asked for and what `handle` answered.

    with FakeApiServer(tmp_path) as cluster:
        subprocess.run([kubectl, "--kubeconfig", cluster.kubeconfig, ...])
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import ssl
import threading
import time
from pathlib import Path

import yaml
from aiohttp import web

from llmd_sandbox import portforward, tls

NAMESPACE = "default"
POD = "web-0"
SERVICE = "web"
TOKEN = "fake-admin-token"
HTTP_PORT, ECHO_PORT = 8000, 9000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pattern_bytes(size: int) -> bytes:
    """Deterministic, non-repeating-looking content for transfer checks."""
    block = hashlib.sha256(str(size).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def pod_object() -> dict:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": POD,
            "namespace": NAMESPACE,
            "uid": "0f0e0d0c-0000-4000-8000-000000000001",
            "resourceVersion": "1",
            "labels": {"app": "web"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "nodeName": "fake-node",
            "containers": [
                {
                    "name": "web",
                    "image": "example/web:1",
                    "ports": [
                        {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                        {"name": "echo", "containerPort": ECHO_PORT, "protocol": "TCP"},
                    ],
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "hostIP": "127.0.0.1",
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": "web",
                    "ready": True,
                    "restartCount": 0,
                    "image": "example/web:1",
                    "imageID": "",
                    "started": True,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                }
            ],
        },
    }


def service_object() -> dict:
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": SERVICE,
            "namespace": NAMESPACE,
            "uid": "0f0e0d0c-0000-4000-8000-000000000002",
            "resourceVersion": "1",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
        "status": {"loadBalancer": {}},
    }


def _matches(labels: dict, selector: str) -> bool:
    """Equality-based label selectors (k=v, k==v, k!=v, k, !k), comma = and."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            ok = labels.get(key.strip()) != value.strip()
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            ok = labels.get(key.strip()) == value.strip()
        elif term.startswith("!"):
            ok = term[1:] not in labels
        else:
            ok = term in labels
        if not ok:
            return False
    return True


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status=code,
    )


class FakeApiServer:
    def __init__(self, workdir: Path, minor: str = "32") -> None:
        self.workdir = Path(workdir)
        self.minor = minor
        self.requests: list[tuple[str, str]] = []
        self.portforwards: list[dict] = []
        self.refuse_websocket_portforward = False  # act like an API server without the SPDY tunnel
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-apiserver", daemon=True)
        self._runners: list[web.AppRunner] = []
        self._echo_server: asyncio.Server | None = None
        self.backend_ports: dict[int, int] = {}
        self.refused_port = free_port()

    # --- lifecycle ---

    def __enter__(self) -> FakeApiServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        _ca, self.ca_file, server_tls = tls.api_server_tls(self.workdir)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(server_tls), self.loop).result(timeout=20)
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [
                        {
                            "name": "fake",
                            "cluster": {
                                "server": self.url,
                                "certificate-authority-data": base64.b64encode(self.ca_file.read_bytes()).decode(),
                            },
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": TOKEN}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "admin", "namespace": NAMESPACE}}
                    ],
                }
            )
        )

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=20)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        self.loop.close()

    async def _start(self, server_tls: ssl.SSLContext) -> int:
        http_port = await self._serve(self._backend_app(), "127.0.0.1", 0)
        self._echo_server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        self.backend_ports = {HTTP_PORT: http_port, ECHO_PORT: self._echo_server.sockets[0].getsockname()[1]}
        return await self._serve(self._api_app(), "127.0.0.1", 0, server_tls)

    async def _serve(self, app: web.Application, host: str, port: int, server_tls: ssl.SSLContext | None = None) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await runner.setup()
        await web.TCPSite(runner, host, port, ssl_context=server_tls).start()
        self._runners.append(runner)
        return runner.addresses[0][1]

    async def _stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        if self._echo_server is not None:
            self._echo_server.close()
            await self._echo_server.wait_closed()

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Poll `predicate()` (from the test thread) until it is true or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    # --- the pod's backends ---

    def _backend_app(self) -> web.Application:
        async def hello(_request: web.Request) -> web.Response:
            return web.Response(text=f"hello from {POD}\n")

        async def sized(request: web.Request) -> web.Response:
            return web.Response(body=pattern_bytes(int(request.match_info["size"])))

        async def echo(request: web.Request) -> web.Response:
            body = await request.read()
            return web.Response(body=body, headers={"X-Body-Sha256": hashlib.sha256(body).hexdigest()})

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/hello", hello)
        app.router.add_get("/bytes/{size:\\d+}", sized)
        app.router.add_post("/echo", echo)
        return app

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            writer.write_eof()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.backend_ports.get(port, self.refused_port))

    # --- the API ---

    def _api_app(self) -> web.Application:
        @web.middleware
        async def authenticate(request: web.Request, handler):
            self.requests.append((request.method, request.path_qs))
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return _status(401, "Unauthorized", "Unauthorized")
            return await handler(request)

        app = web.Application(middlewares=[authenticate])
        app.router.add_get("/version", self._version)
        app.router.add_get("/api", self._api_versions)
        app.router.add_get("/apis", self._api_groups)
        app.router.add_get("/api/v1", self._api_resources)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._list_pods)
        app.router.add_get("/api/v1/pods", self._list_pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self._get_pod)
        app.router.add_get("/api/v1/namespaces/{ns}/services", self._list_services)
        app.router.add_get("/api/v1/namespaces/{ns}/services/{name}", self._get_service)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}/portforward", self._portforward)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def _version(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "major": "1",
                "minor": self.minor,
                "gitVersion": f"v1.{self.minor}.4",
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.23.0",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    async def _api_versions(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}],
            }
        )

    async def _api_groups(self, _request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def _api_resources(self, _request: web.Request) -> web.Response:
        def resource(name: str, kind: str, verbs: list[str], short: list[str] | None = None) -> dict:
            entry = {
                "name": name,
                "singularName": "" if "/" in name else kind.lower(),
                "namespaced": True,
                "kind": kind,
                "verbs": verbs,
            }
            return entry | ({"shortNames": short} if short else {})

        read = ["get", "list", "watch"]
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "v1",
                "resources": [
                    resource("pods", "Pod", read, ["po"]),
                    resource("pods/portforward", "PodPortForwardOptions", ["create", "get"]),
                    resource("services", "Service", read, ["svc"]),
                ],
            }
        )

    def _namespaced(self, request: web.Request, obj: dict) -> bool:
        return request.match_info.get("ns", NAMESPACE) == obj["metadata"]["namespace"]

    def _list(self, request: web.Request, kind: str, objects: list[dict]) -> web.Response:
        selector = request.query.get("labelSelector", "")
        items = [
            o for o in objects if self._namespaced(request, o) and _matches(o["metadata"].get("labels", {}), selector)
        ]
        return web.json_response(
            {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}
        )

    def _get(self, request: web.Request, plural: str, obj: dict) -> web.Response:
        name = request.match_info["name"]
        if name != obj["metadata"]["name"] or not self._namespaced(request, obj):
            return _status(404, "NotFound", f'{plural} "{name}" not found')
        return web.json_response(obj)

    async def _list_pods(self, request: web.Request) -> web.Response:
        return self._list(request, "Pod", [pod_object()])

    async def _get_pod(self, request: web.Request) -> web.Response:
        return self._get(request, "pods", pod_object())

    async def _list_services(self, request: web.Request) -> web.Response:
        return self._list(request, "Service", [service_object()])

    async def _get_service(self, request: web.Request) -> web.Response:
        return self._get(request, "services", service_object())

    async def _not_found(self, request: web.Request) -> web.Response:
        return _status(404, "NotFound", "the server could not find the requested resource")

    async def _portforward(self, request: web.Request) -> web.StreamResponse:
        record = {
            "method": request.method,
            "upgrade": request.headers.get("Upgrade", ""),
            "offered": request.headers.get("Sec-WebSocket-Protocol", ""),
            "status": None,
            "protocol": None,
        }
        self.portforwards.append(record)
        if (not_found := self._get(request, "pods", pod_object())).status != 200:
            return not_found
        if self.refuse_websocket_portforward and record["upgrade"].lower() == "websocket":
            record["status"] = 403
            return web.Response(status=403, text="requested protocol(s) are not supported")
        try:
            response = await portforward.handle(request, self.connect, uid=pod_object()["metadata"]["uid"])
        except web.HTTPException as exc:
            record["status"] = exc.status
            raise
        record["protocol"] = getattr(response, "ws_protocol", None) or response.headers.get("X-Stream-Protocol-Version")
        record["status"] = response.status
        return response
