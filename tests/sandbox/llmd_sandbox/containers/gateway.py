"""A gateway's data plane (istio proxyv2 / envoy / kgateway container).

Finds the HTTPRoutes attached to its Gateway (`--gateway-name`, in its own namespace), sends each request
to the InferencePool of the rule whose path matches (router.py does the pod choice), honours the rule's
`timeouts.request`, and answers as Envoy does: 404 when no route matches, 500 when the route's pool does
not exist (Gateway API: invalid backendRef), 503 `no healthy upstream`, 504 `upstream request timeout`.
Istio's status port answers `/healthz/ready`. One Envoy-style access log line per request.
"""

import argparse
import asyncio
import dataclasses
import re
import time

from aiohttp import web

from . import logs
from .kube import KubeReader
from .relay import client_session
from .router import Router, poll_forever, read_view
from .spec import ContainerSpec

GATEWAY_GROUP = "gateway.networking.k8s.io"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# Envoy's response flags and details for each way a routed request can end.
ENVOY_FLAGS = {"via_upstream": ("-", "via_upstream"), "no_healthy_upstream": ("UH", "no_healthy_upstream"),
               "connect_failure": ("UF", "upstream_reset_before_response_started{connection_failure}"),
               "timeout": ("UT", "response_timeout")}


def parse_args(argv: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gateway")
    parser.add_argument("--gateway-name", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--status-port", type=int, help="Istio's readiness port (15021)")
    parser.add_argument("--pd", action="store_true", help="P/D disaggregation: pick a prefill pod too")
    parser.add_argument("--pd-threshold", type=int, default=0, help="prompt tokens below which P/D is skipped")
    args, _unknown = parser.parse_known_args(argv)
    return args


def parse_duration(text: str | None) -> float | None:
    """A Gateway API duration ("10s", "1m30s", "500ms"); "0s" means no timeout."""
    if not text:
        return None
    seconds = sum(float(number) * _SECONDS[unit] for number, unit in _DURATION.findall(text))
    return seconds or None


@dataclasses.dataclass(frozen=True)
class Rule:
    """One HTTPRoute rule: where it matches and which pool serves it."""
    path_type: str
    path: str
    pool_namespace: str
    pool_name: str
    pool_group: str
    timeout: float | None

    def matches(self, path: str) -> bool:
        if self.path_type == "Exact":
            return path == self.path
        prefix = self.path.rstrip("/")
        return path == prefix or path.startswith(prefix + "/") or not prefix

    @property
    def pool(self) -> tuple:
        return self.pool_namespace, self.pool_name, self.pool_group


def rules_for(routes: list, gateway: str, namespace: str) -> list[Rule]:
    """The rules of routes attached to the gateway, most specific path first (Gateway API precedence)."""
    rules = []
    for route in routes:
        route_ns = route["metadata"].get("namespace", namespace)
        attached = any(ref.get("name") == gateway and ref.get("namespace", route_ns) == namespace
                       and ref.get("kind", "Gateway") == "Gateway" for ref in route["spec"].get("parentRefs", []))
        if not attached:
            continue
        for rule in route["spec"].get("rules", []):
            pools = [ref for ref in rule.get("backendRefs", []) if ref.get("kind") == "InferencePool"]
            if not pools:
                continue
            pool = pools[0]
            timeout = parse_duration((rule.get("timeouts") or {}).get("request"))
            for match in rule.get("matches") or [{}]:
                path = match.get("path") or {}
                rules.append(Rule(path.get("type", "PathPrefix"), path.get("value", "/"),
                                  pool.get("namespace", route_ns), pool["name"], pool.get("group", ""), timeout))
    rules.sort(key=lambda rule: (rule.path_type != "Exact", -len(rule.path)))
    return rules


class Gateway:
    def __init__(self, spec: ContainerSpec, args: argparse.Namespace):
        self.spec, self.args = spec, args
        self.kube = KubeReader(spec)
        self.rules: list[Rule] = []
        self.routers: dict[tuple, Router] = {}
        self.session = None

    async def refresh(self) -> None:
        routes = await self.kube.get(f"/apis/{GATEWAY_GROUP}/v1/namespaces/{self.spec.namespace}/httproutes")
        rules = rules_for((routes or {}).get("items", []), self.args.gateway_name, self.spec.namespace)
        routers = {}
        for pool in {rule.pool for rule in rules}:
            router = self.routers.get(pool) or Router(pd=self.args.pd, pd_threshold=self.args.pd_threshold)
            namespace, name, group = pool
            router.view = await read_view(self.kube, namespace, name, group or None)
            routers[pool] = router
        self.rules, self.routers = rules, routers

    def on_error(self, error) -> None:
        logs.emit(f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}.000000Z\twarn\tgateway: cannot read "
                  f"routes of {self.spec.namespace}/{self.args.gateway_name}: {error!r}")

    async def handle(self, request: web.Request):
        started = time.time()
        rule = next((rule for rule in self.rules if rule.matches(request.path)), None)
        router = self.routers.get(rule.pool) if rule else None
        upstream = ""
        if rule is None:
            response, flags, details = web.Response(status=404), "NR", "route_not_found"
        elif not router.view.found:
            response, flags, details = web.Response(status=500), "-", "direct_response"
        else:
            routed = await router.handle(request, self.session, timeout=rule.timeout)
            response = routed.response
            upstream = routed.endpoint.address if routed.endpoint else ""
            flags, details = ENVOY_FLAGS[routed.outcome]
        # A direct answer has not been sent yet, so its length is the body's.
        sent = response.body_length or len(getattr(response, "body", None) or b"")
        logs.envoy_access(request.method, request.path_qs, response.status, flags, details,
                          request.content_length or 0, sent, started,
                          request.headers.get("User-Agent", ""), request.headers.get("x-request-id", ""),
                          request.host, upstream)
        return response

    async def healthz(self, request):
        return web.Response(status=200)


async def run(spec: ContainerSpec, stop: asyncio.Event) -> int:
    args = parse_args(spec.args)
    gateway = Gateway(spec, args)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", gateway.handle)
    apps = [(app, args.port)]
    if args.status_port:
        status = web.Application()
        status.router.add_get("/healthz/ready", gateway.healthz)
        apps.append((status, args.status_port))
    runners = []
    async with client_session(spec.pod_ip) as gateway.session:
        for application, port in apps:
            runner = web.AppRunner(application, access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, spec.listen_host, port).start()
            runners.append(runner)
        poller = asyncio.create_task(poll_forever(gateway.refresh, gateway.on_error))
        await stop.wait()
        poller.cancel()
        for runner in runners:
            await runner.cleanup()
        await gateway.kube.close()
    return 0
