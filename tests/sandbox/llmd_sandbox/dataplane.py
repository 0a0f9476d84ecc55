"""The data plane outside the pods: kube-proxy (LoadBalancer addresses and NodePorts), an ingress controller
(Traefik-like) and the OpenShift router (HAProxy-like), each listening on its own loopback address, reading
Services, EndpointSlices, Ingresses and Routes from the API server's watch cache.

Every connection or request is sent to a Ready endpoint looked up at that moment, so restarted pods are found.
A Service without a ready endpoint refuses connections, as kube-proxy's REJECT rule does. HTTP answers stream
through chunk by chunk (TTFT is measured through these).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from .kube import ENDPOINT_SLICES, INGRESSES, ROUTES, SERVICES, Cache
from .tls import CertificateAuthority, server_ssl_context

log = logging.getLogger(__name__)

ROUTER_KEY = "Router/default"
HOSTNAME_ANNOTATION = "sandbox.llm-d.ai/hostname"  # an Ingress whose address is this name, not an IP
ROUTE_TIMEOUT_ANNOTATION = "haproxy.router.openshift.io/timeout"
DEFAULT_ROUTE_TIMEOUT = 30.0  # HAProxy's `timeout server` in the OpenShift router
CHUNK = 64 * 1024
CONNECT_TIMEOUT = 5.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "content-length", "host"}
ROUTER_UNAVAILABLE = """<html><head><title>Application is not available</title></head><body>
<h1>Application is not available</h1>
<p>The application is currently not serving requests at this endpoint. It may not have been started or is still
starting.</p></body></html>
"""
HAPROXY_TIMEOUT = "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n"


def parse_haproxy_duration(text: str) -> float:
    """HAProxy time values: `30s`, `5m`, `500ms`, `1h`, `1d`; a bare number is milliseconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d)?\s*", text or "")
    if not match:
        return DEFAULT_ROUTE_TIMEOUT
    scale = {"us": 1e-6, "ms": 1e-3, None: 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(match.group(1)) * scale


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.close()


class Network:
    def __init__(self, store: Cache, *, node_ip: str, ca: CertificateAuthority, cert_dir: Path,
                 on_bound: Callable[[], None]):
        self.store, self.node_ip, self.ca, self.cert_dir, self.on_bound = store, node_ip, ca, cert_dir, on_bound
        self.entries: dict[str, dict] = {}  # key -> load-balancer ingress entry ({"ip"} or {"hostname"})
        self.reserved: dict[str, str] = {}  # load balancer key -> its address, listened on or not
        self.bound_ips: dict[str, str] = {}  # key -> the loopback address it listens on
        self._closers: dict[str, list[Callable[[], Awaitable]]] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self._host_contexts: dict[str, ssl.SSLContext] = {}

    # ---- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(force_close=True))
        self.store.subscribe(self._on_event)
        await self.reconcile()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.store.unsubscribe(self._on_event)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for key in list(self._closers):
            await self._unbind(key)
        await self._session.close()

    def address(self, key: str) -> dict | None:
        return self.entries.get(key)

    def _on_event(self, event: str, obj: dict) -> None:
        if obj.get("kind") in ("Service", "EndpointSlice", "Ingress", "Route"):
            self._dirty.set()

    def _has_ready_endpoint(self, namespace: str, name: str) -> bool:
        slices = self.store.list(ENDPOINT_SLICES, namespace, {"kubernetes.io/service-name": name})
        return any((e.get("conditions") or {}).get("ready") for s in slices for e in s.get("endpoints") or [])

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self.reconcile()

    async def reconcile(self) -> None:
        wanted: dict[str, Callable[[], Awaitable[bool]]] = {}
        changed = False
        services = {f"Service/{s['metadata']['namespace']}/{s['metadata']['name']}" for s in self.store.list(SERVICES)}
        for key in [k for k in self.entries if k.startswith("Service/") and k not in services]:
            del self.entries[key]  # the Service is gone: its address is free again
            self.reserved.pop(key, None)
            changed = True
        for service in self.store.list(SERVICES):
            meta, spec = service["metadata"], service["spec"]
            # kube-proxy REJECTs connections to a Service without a ready endpoint: a refused connection,
            # so nothing listens then; the load balancer keeps its address.
            serving = self._has_ready_endpoint(meta["namespace"], meta["name"])
            if spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass"):
                key = f"Service/{meta['namespace']}/{meta['name']}"
                if key not in self.entries:
                    self.entries[key] = {"ip": self._reserve_address(key)}
                    changed = True
                if serving:
                    wanted[key] = lambda s=service: self._bind_load_balancer(s)
            for port in spec.get("ports") or []:
                if spec.get("type") in ("NodePort", "LoadBalancer") and port.get("nodePort") and serving:
                    wanted[f"NodePort/{port['nodePort']}"] = lambda s=service, p=port: self._bind_node_port(s, p)
        for ingress in self.store.list(INGRESSES):
            meta = ingress["metadata"]
            wanted[f"Ingress/{meta['namespace']}/{meta['name']}"] = lambda i=ingress: self._bind_ingress(i)
        if self.store.list(ROUTES):
            wanted[ROUTER_KEY] = self._bind_router
        for key in [k for k in self._closers if k not in wanted]:
            await self._unbind(key)
            changed = True
        for key, bind in wanted.items():
            if key not in self._closers:
                try:
                    changed = await bind() or changed
                except OSError as exc:
                    log.error("cannot listen for %s: %s", key, exc)
        if changed:
            self.on_bound()

    async def _unbind(self, key: str) -> None:
        for close in self._closers.pop(key, []):
            with contextlib.suppress(Exception):
                await close()
        if key not in self.reserved:  # a load balancer keeps its address while nothing listens
            self.entries.pop(key, None)
        self.bound_ips.pop(key, None)

    async def _listen_on_free_address(self, key: str, listen: Callable[[str], Awaitable[list]]) -> str:
        """Picks a free 127.0.0.X at random and starts what listens there; `listen(ip)` returns closers."""
        taken = set(self.bound_ips.values()) | set(self.reserved.values()) | {"127.0.0.1"}
        candidates = [f"127.0.0.{x}" for x in range(2, 255) if f"127.0.0.{x}" not in taken]
        random.shuffle(candidates)
        for ip in candidates[:40]:
            try:
                self._closers[key] = await listen(ip)
            except OSError:
                continue
            self.bound_ips[key] = ip
            return ip
        raise OSError(f"no free loopback address for {key}")

    async def _tcp_servers(self, ip: str, ports: list[int], handler_for: Callable[[int], Callable]) -> list:
        servers = []
        try:
            for port in ports:
                servers.append(await asyncio.start_server(handler_for(port), ip, port, reuse_address=True))
        except OSError:
            for server in servers:
                server.close()
            raise
        return [_server_closer(s) for s in servers]

    async def _http_servers(self, ip: str, handler, ports: list[tuple[int, ssl.SSLContext | None]]) -> list:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        try:
            for port, context in ports:
                await web.TCPSite(runner, ip, port, ssl_context=context, reuse_address=True).start()
        except OSError:
            await runner.cleanup()
            raise
        return [runner.cleanup]

    # ---- kube-proxy ------------------------------------------------------------------------------

    def _reserve_address(self, key: str) -> str:
        """A free 127.0.0.X for a load balancer, kept while its Service exists, listened on or not."""
        taken = set(self.bound_ips.values()) | set(self.reserved.values()) | {"127.0.0.1"}
        candidates = [f"127.0.0.{x}" for x in range(2, 255) if f"127.0.0.{x}" not in taken]
        random.shuffle(candidates)
        listened_on = _listening_ips()  # another sandbox's load balancer may hold one: binding port 0 works there
        for ip in candidates:
            if ip in listened_on:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind((ip, 0))
                except OSError:
                    continue
            self.reserved[key] = ip
            return ip
        raise OSError(f"no free loopback address for {key}")

    async def _bind_load_balancer(self, service: dict) -> bool:
        meta, ports = service["metadata"], service["spec"].get("ports") or []
        key = f"Service/{meta['namespace']}/{meta['name']}"

        def handler_for(port_number: int):
            return lambda r, w: self._relay(r, w, meta["namespace"], meta["name"], port_number)

        ip = self.entries[key]["ip"]
        self._closers[key] = await self._tcp_servers(ip, [p["port"] for p in ports], handler_for)
        self.bound_ips[key] = ip
        return True

    async def _bind_node_port(self, service: dict, port: dict) -> bool:
        meta = service["metadata"]
        key = f"NodePort/{port['nodePort']}"
        self._closers[key] = await self._tcp_servers(
            self.node_ip, [port["nodePort"]],
            lambda _: lambda r, w: self._relay(r, w, meta["namespace"], meta["name"], port["port"]))
        self.bound_ips[key] = self.node_ip
        return True

    def endpoint(self, namespace: str, service_name: str, port: int | str, by_target: bool = False
                 ) -> tuple[str, int] | None:
        """A random Ready endpoint (as kube-proxy picks) for a Service port given by number or name; with
        by_target, `port` is the target port (as an OpenShift Route names it)."""
        service = self.store.get(SERVICES, namespace, service_name)
        if service is None:
            return None
        if by_target:
            name = next((p.get("name") for p in service["spec"].get("ports") or []
                         if str(p.get("targetPort")) == str(port) or p.get("name") == port), None)
        else:
            name = next((p.get("name") for p in service["spec"].get("ports") or []
                         if p["port"] == port or p.get("name") == port), None)
        choices = []
        for endpoint_slice in self.store.list(ENDPOINT_SLICES, namespace, {"kubernetes.io/service-name": service_name}):
            for entry in endpoint_slice.get("ports") or []:
                if entry.get("name", "") == (name or "") or (by_target and str(entry.get("port")) == str(port)):
                    choices += [(address, entry["port"]) for e in endpoint_slice.get("endpoints") or []
                                if (e.get("conditions") or {}).get("ready") for address in e.get("addresses") or []]
        return random.choice(choices) if choices else None

    async def _relay(self, reader, writer, namespace: str, service: str, port: int) -> None:
        target = self.endpoint(namespace, service, port)
        upstream_writer = None
        try:
            if target is None:  # the last endpoint went away since reconcile stopped listening: as refused
                writer.transport.abort()
                return
            upstream_reader, upstream_writer = await asyncio.wait_for(asyncio.open_connection(*target),
                                                                      CONNECT_TIMEOUT)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (OSError, TimeoutError):
            pass
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()

    # ---- ingress controller ----------------------------------------------------------------------

    async def _bind_ingress(self, ingress: dict) -> bool:
        meta, spec = ingress["metadata"], ingress["spec"]
        key = f"Ingress/{meta['namespace']}/{meta['name']}"
        hostname = (meta.get("annotations") or {}).get(HOSTNAME_ANNOTATION)

        async def handler(request):
            return await self._ingress_request(request, meta["namespace"], meta["name"])

        def listen(ip: str):
            ports = [(80, None)]
            if spec.get("tls"):
                hosts = [h for t in spec["tls"] for h in t.get("hosts") or []] + [ip] + ([hostname] if hostname else [])
                cert, key_file = self.ca.write_server_files(self.cert_dir, f"ingress-{meta['name']}", hosts)
                ports.append((443, server_ssl_context(cert, key_file)))
            return self._http_servers(ip, handler, ports)

        if hostname:  # the name must resolve to where we listen, so listen where it resolves
            ip = socket.gethostbyname(hostname)
            self._closers[key] = await listen(ip)
            self.bound_ips[key] = ip
            self.entries[key] = {"hostname": hostname}
        else:
            self.entries[key] = {"ip": await self._listen_on_free_address(key, listen)}
        return True

    async def _ingress_request(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        ingress = self.store.get(INGRESSES, namespace, name)
        if ingress is None:
            return web.Response(status=404, text="404 page not found\n")
        backend = _ingress_backend(ingress["spec"], request.host.rsplit(":", 1)[0] if request.host else "",
                                   request.path)
        if backend is None:
            return web.Response(status=404, text="404 page not found\n")
        service = backend["service"]
        port = service.get("port", {}).get("number") or service.get("port", {}).get("name")
        target = self.endpoint(namespace, service["name"], port)
        if target is None:
            return web.Response(status=503, text="no available server")
        return await self._proxy(request, target, idle_timeout=None, bad_gateway_text="Bad Gateway")

    # ---- OpenShift router ------------------------------------------------------------------------

    async def _bind_router(self) -> bool:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ip_holder: dict = {}

        def listen(ip: str):
            ip_holder["ip"] = ip
            cert, key_file = self.ca.write_server_files(self.cert_dir, "router-default", [ip])
            context.load_cert_chain(cert, key_file)
            context.sni_callback = self._sni
            return self._http_servers(ip, self._route_request, [(80, None), (443, context)])

        self.entries[ROUTER_KEY] = {"ip": await self._listen_on_free_address(ROUTER_KEY, listen)}
        return True

    def _sni(self, ssl_object: ssl.SSLObject, server_name: str | None, _context) -> None:
        """Each route host gets a certificate from the sandbox CA, as a router's wildcard certificate would."""
        if not server_name:
            return
        if server_name not in self._host_contexts:
            cert, key_file = self.ca.write_server_files(self.cert_dir, f"route-{server_name}", [server_name])
            self._host_contexts[server_name] = server_ssl_context(cert, key_file)
        ssl_object.context = self._host_contexts[server_name]

    async def _route_request(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0].lower()
        route = next((r for r in self.store.list(ROUTES) if r["spec"].get("host", "").lower() == host), None)
        secure = request.secure
        if route is None:
            return _unavailable()
        tls = route["spec"].get("tls") or {}
        if tls and not secure:
            policy = tls.get("insecureEdgeTerminationPolicy", "None")
            if policy == "Redirect":
                raise web.HTTPFound(f"https://{host}{request.path_qs}")
            if policy != "Allow":
                return _unavailable()
        if secure and not tls:
            return _unavailable()
        meta, spec = route["metadata"], route["spec"]
        port = (spec.get("port") or {}).get("targetPort")
        target = self.endpoint(meta["namespace"], spec["to"]["name"], port, by_target=True) if port is not None \
            else self._first_port_endpoint(meta["namespace"], spec["to"]["name"])
        if target is None:
            return _unavailable()
        timeout = parse_haproxy_duration((meta.get("annotations") or {}).get(ROUTE_TIMEOUT_ANNOTATION, "30s"))
        return await self._proxy(request, target, idle_timeout=timeout, bad_gateway_text=ROUTER_UNAVAILABLE)

    def _first_port_endpoint(self, namespace: str, service_name: str) -> tuple[str, int] | None:
        service = self.store.get(SERVICES, namespace, service_name)
        if service is None:
            return None
        ports = service["spec"].get("ports") or []
        return self.endpoint(namespace, service_name, ports[0]["port"]) if ports else None

    # ---- HTTP relay ------------------------------------------------------------------------------

    async def _proxy(self, request: web.Request, target: tuple[str, int], *, idle_timeout: float | None,
                     bad_gateway_text: str) -> web.StreamResponse:
        """Relays one request; idle_timeout is the longest silence allowed from the upstream (HAProxy's
        `timeout server`): 504 before the answer starts, a cut connection after."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.update({"Host": request.host or "", "X-Forwarded-For": request.remote or "",
                        "X-Forwarded-Proto": "https" if request.secure else "http",
                        "X-Forwarded-Host": request.host or ""})
        body = await request.read()
        url = f"http://{target[0]}:{target[1]}{request.path_qs}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=idle_timeout)
        response = None
        try:
            async with self._session.request(request.method, url, data=body, headers=headers, timeout=timeout,
                                             allow_redirects=False) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for name, value in upstream.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        response.headers.add(name, value)
                if upstream.content_length is not None:
                    response.content_length = upstream.content_length
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except TimeoutError:
            if response is None:
                return web.Response(status=504, text=HAPROXY_TIMEOUT, content_type="text/html")
            request.transport.close()
            return response
        except aiohttp.ClientConnectionError:
            if response is None:
                return web.Response(status=502, text=bad_gateway_text)
            request.transport.close()
            return response


def _ingress_backend(spec: dict, host: str, path: str) -> dict | None:
    """The Ingress rule for this host and path: exact host or wildcard, then the longest matching path."""
    best, best_length = None, -1
    for rule in spec.get("rules") or []:
        rule_host = rule.get("host")
        if rule_host and not (rule_host == host or (rule_host.startswith("*.") and host.endswith(rule_host[1:]))):
            continue
        for item in (rule.get("http") or {}).get("paths") or []:
            prefix = item.get("path", "/")
            exact = item.get("pathType") == "Exact"
            matches = path == prefix if exact else (
                path == prefix or path.startswith(prefix.rstrip("/") + "/") or prefix == "/")
            if matches and len(prefix) > best_length:
                best, best_length = item.get("backend"), len(prefix)
    return best or spec.get("defaultBackend")


def _unavailable() -> web.Response:
    return web.Response(status=503, text=ROUTER_UNAVAILABLE, content_type="text/html")


def _listening_ips() -> set[str]:
    """The IPv4 addresses some TCP socket of this network namespace listens on (/proc/net/tcp, state 0A)."""
    ips = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                ips.add(socket.inet_ntoa(bytes.fromhex(fields[1].split(":")[0])[::-1]))
    return ips


def _server_closer(server: asyncio.Server) -> Callable[[], Awaitable]:
    async def close() -> None:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)
    return close
