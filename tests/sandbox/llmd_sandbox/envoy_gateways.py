"""The data plane of the Gateway classes the sandbox runs with Envoy (istio, kgateway): what their controllers
would send the gateway's Envoy over xDS, rendered from the API objects and written as files Envoy watches.

For each Gateway of those classes: a bootstrap (`envoy.json`: admin, and listeners and clusters from files),
`lds.json` (one listener per Gateway listener port, routes from the HTTPRoutes attached to it; Istio's status
listener on 15021) and `cds.json` (per InferencePool an ORIGINAL_DST cluster that sends each request where
the pool's endpoint picker says, in `x-gateway-destination-endpoint`, and a cluster of the picker's ready
endpoints for `ext_proc`), in DIR/xds/<namespace>/<gateway>/. Files are replaced by rename, which is what
Envoy's `watched_directory` reloads on, so a changed route or a moved EPP reaches the running Envoy without a
restart, as xDS would. The gateway pods' Envoy reads the bootstrap (node.py: the wrapper images).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from .kube import (ENDPOINT_SLICES, GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES, POOLS, POOLS_ALPHA, SERVICES, Cache,
                   Reconciler)

ISTIO = "istio.io/gateway-controller"
KGATEWAY = "kgateway.dev/kgateway"
ENVOY_CONTROLLERS = (ISTIO, KGATEWAY)
ADMIN_PORT = {ISTIO: 15000, KGATEWAY: 19000}
ISTIO_STATUS_PORT = 15021
DESTINATION_HEADER = "x-gateway-destination-endpoint"  # GAIE's endpoint picker protocol
EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_TYPE = "type.googleapis.com/envoy."
CLUSTER_TYPE = _TYPE + "config.cluster.v3.Cluster"


def seconds(duration: str) -> float:
    """A Gateway API duration ("10s", "1m30s", "500ms") in seconds; "0s" is 0 (no timeout)."""
    return sum(float(number) * _SECONDS[unit] for number, unit in _DURATION.findall(duration))


def listen_port(controller: str, port: int) -> int:
    """The port the proxy binds for a Gateway listener: kgateway moves privileged ports up by 8000 (its proxy
    runs unprivileged; the Service maps 80 -> 8080), Istio binds the listener's own port."""
    return port + 8000 if controller == KGATEWAY and port < 1024 else port


def pool_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def attached(route: dict, gateway: dict, listener: dict) -> bool:
    meta = gateway["metadata"]
    route_ns = route["metadata"]["namespace"]
    return any(ref.get("kind", "Gateway") == "Gateway" and ref["name"] == meta["name"]
               and ref.get("namespace", route_ns) == meta["namespace"]
               and ref.get("sectionName", listener["name"]) == listener["name"]
               and ref.get("port", listener["port"]) == listener["port"]
               for ref in route["spec"].get("parentRefs") or [])


def route_match(match: dict) -> dict:
    """A Gateway API HTTPRouteMatch as an Envoy RouteMatch (PathPrefix matches whole path segments)."""
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    value = path.get("value", "/")
    if path.get("type") == "Exact":
        out = {"path": value}
    elif path.get("type") == "RegularExpression":
        out = {"safe_regex": {"regex": value}}
    elif value.rstrip("/"):
        out = {"path_separated_prefix": value.rstrip("/")}
    else:
        out = {"prefix": "/"}
    headers = [{"name": h["name"].lower(), "string_match": {"safe_regex": {"regex": h["value"]}}
                if h.get("type") == "RegularExpression" else {"exact": h["value"]}}
               for h in match.get("headers") or []]
    if match.get("method"):
        headers.append({"name": ":method", "string_match": {"exact": match["method"]}})
    if headers:
        out["headers"] = headers
    return out


def route_action(rule: dict, cluster: str) -> dict:
    """Where a rule sends its requests; `timeouts.request` is the route timeout (0s: none), unset leaves Envoy's
    default of 15 s, as the Envoy-based gateways do."""
    action = {"cluster": cluster}
    timeouts = rule.get("timeouts") or {}
    if "request" in timeouts:
        action["timeout"] = f"{seconds(timeouts['request']):g}s"
    if seconds(timeouts.get("backendRequest") or "0s"):
        action["retry_policy"] = {"per_try_timeout": f"{seconds(timeouts['backendRequest']):g}s", "num_retries": 0}
    return action


def epp_of(pool: dict) -> tuple[str, int, bool]:
    """The endpoint picker of a pool: Service name, port, and whether the gateway fails open without it
    (v1 `endpointPickerRef`, v1alpha2 `extensionRef`; both default to FailClose)."""
    spec = pool["spec"]
    ref = spec.get("endpointPickerRef") or spec.get("extensionRef") or {}
    port = (ref.get("port") or {}).get("number") or ref.get("portNumber") or 9002
    return ref.get("name", ""), int(port), ref.get("failureMode", "FailClose") == "FailOpen"


class Renderer:
    """The Envoy configuration of one Gateway, from a snapshot of the API objects."""

    def __init__(self, cache: Cache, gateway: dict, controller: str):
        self.cache, self.gateway, self.controller = cache, gateway, controller
        self.namespace = gateway["metadata"]["namespace"]
        self.pools: dict[str, dict] = {}  # pool_key -> pool, for every pool a route of this gateway names

    def find_pool(self, namespace: str, ref: dict) -> dict | None:
        for res in (POOLS, POOLS_ALPHA):
            if ref.get("group", res.group) == res.group:
                pool = self.cache.get(res, namespace, ref["name"])
                if pool is not None:
                    return pool
        return None

    def routes(self, listener: dict) -> list[dict]:
        """Envoy routes of the HTTPRoutes attached to a listener, Gateway API's precedence first: Exact before
        prefixes, longer paths first, then more header matches."""
        out = []
        for route in self.cache.list(HTTP_ROUTES):
            if not attached(route, self.gateway, listener):
                continue
            route_ns = route["metadata"]["namespace"]
            for index, rule in enumerate(route["spec"].get("rules") or []):
                entry = {"name": f"{route_ns}/{route['metadata']['name']}/rule{index}"}
                backend = (rule.get("backendRefs") or [None])[0]
                if backend is None:
                    entry["direct_response"] = {"status": 500}
                elif backend.get("kind") == "InferencePool":
                    pool = self.find_pool(backend.get("namespace", route_ns), backend)
                    if pool is None:  # Gateway API: a request to an invalid backend gets a 500
                        entry["direct_response"] = {"status": 500}
                    else:
                        key = pool_key(pool["metadata"]["namespace"], pool["metadata"]["name"])
                        self.pools[key] = pool
                        entry["route"] = route_action(rule, f"pool/{key}")
                        entry["typed_per_filter_config"] = {f"{EXT_PROC_FILTER}/{key}": {
                            "@type": _TYPE + "config.route.v3.FilterConfig", "config": {}}}
                else:  # a Service backend: not in the scenarios, and Envoy answers 500 to what it cannot route
                    entry["direct_response"] = {"status": 500}
                for match in rule.get("matches") or [{}]:
                    out.append(dict(entry, match=route_match(match)))
        out.sort(key=_precedence)
        return out

    def listeners(self) -> list[dict]:
        out = []
        for listener in self.gateway["spec"].get("listeners") or []:
            if listener.get("protocol", "HTTP") != "HTTP":
                continue
            routes = self.routes(listener)
            # One ext_proc filter per pool, off unless the route enables it (as kgateway renders pools).
            names = sorted({name for route in routes for name in route.get("typed_per_filter_config") or {}})
            filters = [{"name": name, "disabled": True,
                        "typed_config": self.ext_proc(self.pools[name[len(EXT_PROC_FILTER) + 1:]])}
                       for name in names]
            filters.append({"name": "envoy.filters.http.router", "typed_config": {
                "@type": _TYPE + "extensions.filters.http.router.v3.Router"}})
            out.append(_listener(listener["name"], listen_port(self.controller, listener["port"]), {
                "name": listener["name"],
                "virtual_hosts": [{"name": listener["name"], "domains": ["*"], "routes": routes}]},
                filters, access_log=True))
        if self.controller == ISTIO:  # pilot-agent's readiness endpoint, served once Envoy has its listeners
            status_routes = {"name": "status", "virtual_hosts": [{
                "name": "status", "domains": ["*"], "routes": [{"match": {"path": "/healthz/ready"},
                                                                "direct_response": {"status": 200}}]}]}
            router = [{"name": "envoy.filters.http.router",
                       "typed_config": {"@type": _TYPE + "extensions.filters.http.router.v3.Router"}}]
            out.append(_listener("status", ISTIO_STATUS_PORT, status_routes, router))
        return out

    def ext_proc(self, pool: dict) -> dict:
        """ext_proc to the pool's endpoint picker, as the GAIE charts configure Envoy for it (the standalone
        chart's envoy.yaml): full-duplex streamed bodies, the pool's failure mode."""
        _name, _port, fail_open = epp_of(pool)
        key = pool_key(pool["metadata"]["namespace"], pool["metadata"]["name"])
        return {"@type": _TYPE + "extensions.filters.http.ext_proc.v3.ExternalProcessor",
                "failure_mode_allow": fail_open,
                "grpc_service": {"envoy_grpc": {"cluster_name": f"epp/{key}"}, "timeout": "10s"},
                "processing_mode": {"request_header_mode": "SEND", "response_header_mode": "SEND",
                                    "request_body_mode": "FULL_DUPLEX_STREAMED",
                                    "response_body_mode": "FULL_DUPLEX_STREAMED",
                                    "request_trailer_mode": "SEND", "response_trailer_mode": "SEND"},
                "message_timeout": "1000s"}

    def clusters(self) -> list[dict]:
        for listener in self.gateway["spec"].get("listeners") or []:
            self.routes(listener)
        out = []
        for key, pool in sorted(self.pools.items()):
            out.append({"@type": CLUSTER_TYPE, "name": f"pool/{key}", "type": "ORIGINAL_DST",
                        "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "5s",
                        "original_dst_lb_config": {"use_http_header": True, "http_header_name": DESTINATION_HEADER}})
            out.append(self.epp_cluster(key, pool))
        return out

    def epp_cluster(self, key: str, pool: dict) -> dict:
        """The picker's ready endpoints (its Service's EndpointSlices; ClusterIPs do not route here), over
        HTTP/2 with TLS and no verification: the EPP serves a self-signed certificate (`--secure-serving`)."""
        name, port, _fail_open = epp_of(pool)
        namespace = pool["metadata"]["namespace"]
        endpoints = []
        service = self.cache.get(SERVICES, namespace, name)
        port_name = next((p.get("name", "") for p in (service or {}).get("spec", {}).get("ports") or []
                          if p["port"] == port), None)
        if port_name is not None:
            for slice_ in self.cache.list(ENDPOINT_SLICES, namespace, {"kubernetes.io/service-name": name}):
                target = next((p["port"] for p in slice_.get("ports") or [] if p.get("name", "") == port_name), None)
                for endpoint in slice_.get("endpoints") or []:
                    if target and (endpoint.get("conditions") or {}).get("ready"):
                        endpoints += [{"endpoint": {"address": {"socket_address": {"address": address,
                                                                                   "port_value": target}}}}
                                      for address in endpoint.get("addresses") or []]
        return {"@type": CLUSTER_TYPE, "name": f"epp/{key}", "type": "STATIC", "connect_timeout": "5s",
                "load_assignment": {"cluster_name": f"epp/{key}",
                                    "endpoints": [{"lb_endpoints": endpoints}] if endpoints else []},
                "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": _TYPE + "extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}}},
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": _TYPE + "extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "common_tls_context": {"alpn_protocols": ["h2"]}}}}


def _precedence(route: dict) -> tuple:
    match = route["match"]
    path = match.get("path") or match.get("path_separated_prefix") or match.get("prefix") or ""
    return ("path" not in match, -len(path), -len(match.get("headers") or []))


def _listener(name: str, port: int, route_config: dict, http_filters: list, access_log: bool = False) -> dict:
    # Routes may name a cluster before Envoy has it (the files load independently): 503 until then, rather
    # than the whole listener refused.
    route_config = dict(route_config, validate_clusters=False)
    manager = {"@type": _TYPE + "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
               "stat_prefix": name, "route_config": route_config, "http_filters": http_filters,
               "use_remote_address": True, "normalize_path": True, "merge_slashes": True}
    if access_log:  # Envoy's default format, to the container's stdout (its log)
        manager["access_log"] = [{"name": "envoy.access_loggers.stdout", "typed_config": {
            "@type": _TYPE + "extensions.access_loggers.stream.v3.StdoutAccessLog"}}]
    return {"@type": _TYPE + "config.listener.v3.Listener", "name": name,
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": manager}]}]}


def bootstrap(directory: Path, controller: str) -> dict:
    """Admin on loopback, listeners and clusters from the watched files beside it."""
    def source(name: str) -> dict:
        return {"path_config_source": {"path": str(directory / name), "watched_directory": {"path": str(directory)}},
                "resource_api_version": "V3"}
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ADMIN_PORT[controller]}}},
            "dynamic_resources": {"lds_config": source("lds.json"), "cds_config": source("cds.json")}}


def write_if_changed(path: Path, document: dict) -> bool:
    """Replace the file by rename (what `watched_directory` reacts to); leave it alone when unchanged."""
    text = json.dumps(document, indent=1, sort_keys=True)
    if path.exists() and path.read_text() == text:
        return False
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return True


class EnvoyGateways(Reconciler):
    """Keeps DIR/xds/<namespace>/<gateway>/ current for every Gateway of an Envoy class; level-triggered."""

    def __init__(self, cache: Cache, root: Path):
        super().__init__(cache)
        self.root = Path(root)

    def directory(self, namespace: str, gateway: str) -> Path:
        return self.root / namespace / gateway

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        super().start()

    async def reconcile_once(self) -> None:
        self.reconcile()

    def controller_of(self, gateway: dict) -> str:
        gateway_class = self.cache.get(GATEWAY_CLASSES, None, gateway["spec"].get("gatewayClassName", ""))
        name = (gateway_class or {}).get("spec", {}).get("controllerName", "")
        return name if name in ENVOY_CONTROLLERS else ""

    def reconcile(self) -> None:
        wanted = set()
        for gateway in self.cache.list(GATEWAYS):
            controller = self.controller_of(gateway)
            if not controller:
                continue
            meta = gateway["metadata"]
            directory = self.directory(meta["namespace"], meta["name"])
            directory.mkdir(parents=True, exist_ok=True)
            wanted.add(directory)
            renderer = Renderer(self.cache, gateway, controller)
            # Clusters before listeners, so that no route names a cluster Envoy does not have yet.
            write_if_changed(directory / "cds.json", {"resources": renderer.clusters()})
            write_if_changed(directory / "lds.json", {"resources": renderer.listeners()})
            write_if_changed(directory / "envoy.json", bootstrap(directory, controller))
        for namespace in self.root.iterdir() if self.root.is_dir() else ():
            for directory in namespace.iterdir():
                if directory not in wanted:
                    shutil.rmtree(directory, ignore_errors=True)
