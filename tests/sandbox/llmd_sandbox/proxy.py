"""`pods/NAME:PORT/proxy/PATH` and `services/NAME:PORT/proxy/PATH`: the API server's HTTP proxy."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from .resources import find_resource
from .store import ApiError, Store

PODS = find_resource("", "v1", "pods")
SERVICES = find_resource("", "v1", "services")
# k8s.io/apimachinery util/proxy defaultFlushInterval, given to Go's httputil.ReverseProxy: what arrives within
# 200 ms reaches the client together. ReverseProxy overrides it and flushes at once for text/event-stream and
# for bodies of unknown length (no Content-Length), so streamed completions pass through unbatched.
FLUSH_INTERVAL = 0.2
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "host", "content-length"}
_NOT_FORWARDED = _HOP_BY_HOP | {"authorization"}  # the API server strips the credentials it authenticated


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


def split_proxy_name(raw: str) -> tuple[str, str, str]:
    """`NAME`, `NAME:PORT` or `SCHEME:NAME:PORT` -> (scheme, name, port); port may be empty."""
    parts = raw.split(":")
    if len(parts) == 3 and parts[0] in ("http", "https"):
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return "http", parts[0], parts[1]
    if len(parts) == 1:
        return "http", parts[0], ""
    raise ApiError.bad_request(f"invalid proxy name {raw!r}")


def _ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return (bool(pod.get("status", {}).get("podIP")) and not pod["metadata"].get("deletionTimestamp")
            and any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions))


def _container_port(pod: dict, name: str) -> int | None:
    spec = pod.get("spec", {})
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return port["containerPort"]
    return None


def pod_target(store: Store, namespace: str, raw_name: str) -> Target:
    scheme, name, port = split_proxy_name(raw_name)
    pod = store.get(PODS, namespace, name)
    if not port:  # like the real server: the first declared container port
        ports = [p["containerPort"] for c in pod.get("spec", {}).get("containers") or [] for p in c.get("ports") or []]
        port = str(ports[0]) if ports else "80"
    if not port.isdigit():
        named = _container_port(pod, port)
        if named is None:
            raise ApiError(503, "ServiceUnavailable", f'no port named "{port}" in pod "{name}"')
        port = str(named)
    pod_ip = pod.get("status", {}).get("podIP")
    if not pod_ip:
        raise ApiError(503, "ServiceUnavailable", f'pod "{name}" does not have a host assigned')
    return Target(scheme, pod_ip, int(port))


def service_target(store: Store, namespace: str, raw_name: str) -> Target:
    """Service port (by number or name) -> targetPort -> one Ready pod the selector picks, chosen at random."""
    scheme, name, port = split_proxy_name(raw_name)
    svc = store.get(SERVICES, namespace, name)
    ports = svc.get("spec", {}).get("ports") or []
    matching = [p for p in ports if port in (p.get("name", ""), str(p.get("port")))]
    if not port and len(ports) == 1:
        matching = ports
    if not matching:
        raise ApiError(503, "ServiceUnavailable", f'no service port "{port}" found for service "{name}"')
    target_port = matching[0].get("targetPort", matching[0]["port"])
    selector = svc.get("spec", {}).get("selector")
    candidates = []
    if selector:
        for pod in store.list(PODS, namespace, label_selector=selector)[0]:
            number = target_port if isinstance(target_port, int) or str(target_port).isdigit() \
                else _container_port(pod, target_port)
            if _ready(pod) and number is not None:
                candidates.append(Target(scheme, pod["status"]["podIP"], int(number)))
    if not candidates:
        raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
    return random.choice(candidates)


async def forward(request: web.Request, session: aiohttp.ClientSession, target: Target, path: str,
                  kind: str) -> web.StreamResponse:
    """Relays the request and streams the answer back, flushed as Go's ReverseProxy does."""
    url = f"{target.scheme}://{target.host}:{target.port}{path or '/'}"
    if request.query_string:
        url += "?" + request.query_string
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
    body = request.content if request.can_read_body else None
    try:
        upstream = await session.request(request.method, url, headers=headers, data=body, allow_redirects=False,
                                         ssl=False)  # the real proxy does not verify pod certificates either
    except (aiohttp.ClientError, OSError) as exc:
        raise ApiError(503, "ServiceUnavailable",
                       f"error trying to reach {kind}: dial tcp {target.host}:{target.port}: {exc}") from exc
    try:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in _HOP_BY_HOP:
                response.headers.add(key, value)
        if upstream.headers.get("Content-Length"):
            response.content_length = int(upstream.headers["Content-Length"])
        await response.prepare(request)
        if upstream.content_type == "text/event-stream" or "Content-Length" not in upstream.headers:
            while chunk := await upstream.content.readany():
                await response.write(chunk)
        else:
            await _relay_in_batches(upstream.content, response)
        await response.write_eof()
        return response
    finally:
        upstream.release()


async def _relay_in_batches(source: aiohttp.StreamReader, response: web.StreamResponse) -> None:
    """Like Go's maxLatencyWriter: the first bytes after a flush start a 200 ms timer; all that arrived by then
    is written together."""
    loop = asyncio.get_running_loop()
    while chunk := await source.readany():
        batch = bytearray(chunk)
        deadline = loop.time() + FLUSH_INTERVAL
        while (left := deadline - loop.time()) > 0:
            try:
                more = await asyncio.wait_for(source.readany(), left)
            except TimeoutError:
                break
            if not more:
                break
            batch += more
        await response.write(bytes(batch))
