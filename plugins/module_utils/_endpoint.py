# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where is the gateway of an llm-d deployment, and how does a play reach it?

One resolver per exposure mode reads the objects of the namespace (ClusterView) and returns a
candidate or raises Unusable with the reason. The selection rules are pure functions of the objects
(wire JSON, as `kubectl get -o json` shows them), so unit tests cover them without a cluster.
resolve_endpoint() runs one mode, or every mode for `auto`, waits for addresses when asked, and
builds the result the module and the lookup both return.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import K8sNotFound, k8s_get
from ansible_collections.llmd.verify.plugins.module_utils._service_ports import (
    ISTIO_STATUS_PORT,
    choose_http_port,
    describe_port,
)

# The seed's pattern for a gateway Service: `<release>-inference-gateway` plus Istio's `-istio` suffix.
SEED_SERVICE_PATTERN = r".*-inference-gateway(-.*)?$"
EPP_SERVICE_PATTERN = r"-epp(-standalone)?$"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
ROUTE_TIMEOUT_ANNOTATION = "haproxy.router.openshift.io/timeout"
ROUTE_TIMEOUT_MIN_SECONDS = 300
LOCAL_ADDRESS = "127.0.0.1"
POLL_SECONDS = 2.0

# `auto` takes the first usable mode in this order: addresses meant for clients outside the cluster first
# (a Route or Ingress is what an operator set up for sharing), then the gateway's own address, then
# ways in that need Kubernetes credentials. `cluster` is never chosen: it only works inside the cluster.
AUTO_ORDER = ("route", "ingress", "gateway", "service", "port_forward", "standalone")
MODES = ("auto", "port_forward", "gateway", "service", "ingress", "route", "standalone", "cluster")

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DURATION = re.compile(r"^(\d+)(us|ms|s|m|h|d)?$")
_SECONDS_PER_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Unusable(Exception):
    """A mode found no endpoint; reason says what it saw. pending: an address may still be assigned."""

    def __init__(self, reason, pending=False, available=True):
        super().__init__(reason)
        self.reason = reason
        self.pending = pending
        self.available = available


# ---------------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------------

def check_names(namespace, names):
    """LlmdError unless namespace is a DNS-1123 label and every given name a DNS-1123 subdomain."""
    if not namespace or len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
        raise LlmdError("namespace %r is not a valid Kubernetes namespace (a DNS-1123 label: lower case letters, "
                        "digits and '-', starting and ending with a letter or digit, at most 63 characters)" % namespace)
    for option, value in names.items():
        if value is not None and (len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value)):
            raise LlmdError("%s %r is not a valid Kubernetes object name (a DNS-1123 subdomain: lower case letters, "
                            "digits, '-' and '.', at most 253 characters)" % (option, value))


def format_url(scheme, host, port=None):
    """scheme://host[:port], brackets around IPv6, the default port (80 or 443) left out."""
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    if port is None or int(port) == {"http": 80, "https": 443}[scheme]:
        return "%s://%s" % (scheme, host)
    return "%s://%s:%d" % (scheme, host, int(port))


def is_ip(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolves(host):
    """Whether a client here can resolve host (an IP address always can)."""
    if is_ip(host):
        return True
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return True


def route_timeout_seconds(value):
    """An OpenShift router timeout (`300s`, `5m`, `500ms`; no unit means milliseconds, as HAProxy) in seconds."""
    match = _DURATION.match((value or "").strip())
    if not match:
        return None
    return int(match.group(1)) * _SECONDS_PER_UNIT[match.group(2) or "ms"]


def _meta(obj, key):
    return (obj.get("metadata") or {}).get(key) or {}


def name_of(obj):
    return (obj.get("metadata") or {}).get("name", "")


def _names(objs):
    return ", ".join(sorted(name_of(o) for o in objs)) or "none"


def _condition(obj, kind):
    """The condition of type kind in obj's status.conditions, or None."""
    return _find_condition((obj.get("status") or {}).get("conditions"), kind)


def _find_condition(conditions, kind):
    for condition in conditions or []:
        if condition.get("type") == kind:
            return condition
    return None


def route_admitted(ingress):
    """Whether one entry of a Route's status.ingress[] (one router) says Admitted=True: its own conditions."""
    return (_find_condition(ingress.get("conditions"), "Admitted") or {}).get("status") == "True"


def gateway_addresses(gateway):
    return [a.get("value") for a in (gateway.get("status") or {}).get("addresses") or [] if a.get("value")]


def gateway_not_accepted(gateway):
    """Why no controller serves a Gateway, or None when it is Accepted (or says nothing either way).

    Status is written only by the GatewayClass's own controller: a Gateway whose class nobody runs keeps the
    CRD's default, Accepted Unknown with reason Pending, and no address.
    """
    accepted = _condition(gateway, "Accepted")
    if accepted is None or accepted.get("status") == "True":
        return None
    gateway_class = (gateway.get("spec") or {}).get("gatewayClassName") or "(none)"
    if accepted.get("status") == "Unknown" and accepted.get("reason") in (None, "", "Pending"):
        return "GatewayClass %s: no controller has accepted it (Gateway %s keeps the default Accepted Unknown, " \
               "Pending)" % (gateway_class, name_of(gateway))
    return "Gateway %s is not Accepted by the controller of GatewayClass %s (%s %s: %s)" % (
        name_of(gateway), gateway_class, accepted.get("status"), accepted.get("reason") or "-",
        accepted.get("message") or "no message")


def _gateway_rank(gateway):
    """0: Accepted with an address; 1: Accepted, no address yet; 2: no controller has accepted it."""
    if gateway_not_accepted(gateway):
        return 2
    return 0 if gateway_addresses(gateway) else 1


def programmed_warning(gateway):
    """A warning when the Gateway is not Programmed, worded so it is true whatever the provider; else None."""
    programmed = _condition(gateway, "Programmed")
    if (programmed or {}).get("status") == "True":
        return None
    said = " (%s, %s: %s)" % (programmed.get("status"), programmed.get("reason") or "-", programmed.get("message") or
                              "no message") if programmed else " (no Programmed condition)"
    return ("Gateway %s is not Programmed%s: its controller has not reported its data plane ready to take traffic; "
            "what that covers depends on the provider (Istio sets it once the gateway Service has an address, for "
            "example when a LoadBalancer is no longer pending, and says nothing about the gateway pods being Ready)"
            % (name_of(gateway), said))


def http_port(service):
    """(port, scheme, skipped) for the Service's HTTP port, chosen by name and protocol, not by number."""
    ports = (service.get("spec") or {}).get("ports") or []
    port, scheme, skipped = choose_http_port(ports)
    if port is None:
        raise Unusable("Service %s has no HTTP port (ports: %s)" % (
            name_of(service), ", ".join("%s: %s" % (describe_port(p), why) for p, why in skipped) or "none"))
    return port, scheme, [p for p, _why in skipped]


def _status_port_warning(service, port, skipped):
    if any(p.get("port") == ISTIO_STATUS_PORT for p in skipped):
        return ["Service %s also exposes Istio's status port %d (health checks only, not HTTP); port %s is the "
                "HTTP port" % (name_of(service), ISTIO_STATUS_PORT, port.get("port"))]
    return []


def pick(tiers, what):
    """The first object (by name) of the first non-empty tier, why, and a warning when there were several.

    tiers: [(objects, why)], best first. Returns None when every tier is empty.
    """
    everyone = sorted({name_of(o) for tier in tiers for o in tier[0]})
    for objects, why in tiers:
        if objects:
            chosen = min(objects, key=name_of)
            warnings = []
            if len(everyone) > 1:
                rule = why + (", then the first by name (the seed's alphabetical rule)" if len(objects) > 1 else "")
                warnings.append("%d %ss (%s): chose %s because %s" % (len(everyone), what, ", ".join(everyone),
                                                                      name_of(chosen), rule))
            return chosen, why, warnings
    return None


def select_gateway_service(services, gateways, gateway_service=None, gateway_name=None):
    """The gateway's Service: named, or labelled for an existing Gateway, or named like the seed's pattern."""
    if gateway_service:
        found = [s for s in services if name_of(s) == gateway_service]
        if not found:
            raise Unusable("Service %s (gateway_service) not found; Services seen: %s" % (gateway_service, _names(services)))
        return found[0], "named by gateway_service", []
    classes = dict((name_of(g), (g.get("spec") or {}).get("gatewayClassName")) for g in gateways or [])
    if gateway_name:
        expected = {gateway_name, "%s-%s" % (gateway_name, classes.get(gateway_name))}
        own = [s for s in services if _meta(s, "labels").get(GATEWAY_NAME_LABEL) == gateway_name or name_of(s) in expected]
        tiers = [(own, "it is the Service of Gateway %s" % gateway_name)]
    else:
        labelled = [s for s in services if _meta(s, "labels").get(GATEWAY_NAME_LABEL) in classes]
        named = [s for s in services if s not in labelled and re.search(SEED_SERVICE_PATTERN, name_of(s))]
        tiers = [(labelled, "it is labelled %s for an existing Gateway" % GATEWAY_NAME_LABEL),
                 (named, "its name matches the seed's pattern %s" % SEED_SERVICE_PATTERN)]
    chosen = pick(tiers, "gateway Service")
    if chosen is None:
        raise Unusable("no gateway Service: none labelled %s for a Gateway%s and none named like %s; Services seen: %s"
                       % (GATEWAY_NAME_LABEL, " " + gateway_name if gateway_name else "", SEED_SERVICE_PATTERN,
                          _names(services)))
    return chosen


def select_gateway(gateways, gateway_name=None):
    """(Gateway, why, warnings): named, else an llm-d inference gateway, preferring one a controller has
    Accepted and given an address over one still pending, and saying why the others were skipped."""
    if gateway_name:
        found = [g for g in gateways if name_of(g) == gateway_name]
        if not found:
            raise Unusable("Gateway %s not found; Gateways seen: %s" % (gateway_name, _names(gateways)))
        return found[0], "named by gateway_name", []
    inference = [g for g in gateways if _meta(g, "labels").get("app.kubernetes.io/component") == "inference-gateway"
                 or re.search(SEED_SERVICE_PATTERN, name_of(g))]
    others = [g for g in gateways if g not in inference]
    pool, why = (inference, "it is an llm-d inference gateway (by its component label or name)") if inference else (
        others, "it is a Gateway of the namespace")
    if not pool:
        raise Unusable("no Gateway in the namespace")
    ranks = {name_of(g): _gateway_rank(g) for g in pool}
    tiers = [([g for g in pool if ranks[name_of(g)] == 0], why + ", Accepted and with an address"),
             ([g for g in pool if ranks[name_of(g)] == 1], why + " and Accepted (its address is pending)"),
             ([g for g in pool if ranks[name_of(g)] == 2], why)]
    if inference:
        tiers.append((others, "it is a Gateway of the namespace"))  # never chosen, but counted in the warning
    gateway, reason, warnings = pick(tiers, "Gateway")
    for other in sorted(pool, key=name_of):
        if ranks[name_of(other)] > ranks[name_of(gateway)]:
            warnings.append("Gateway %s skipped: %s" % (name_of(other), gateway_not_accepted(other) or "it has no address yet"))
    return gateway, reason, warnings


def gateway_listener(gateway):
    """(listener, scheme): the HTTP listener (port 80 first), else the HTTPS one."""
    listeners = (gateway.get("spec") or {}).get("listeners") or []
    for protocol, scheme, default in (("HTTP", "http", 80), ("HTTPS", "https", 443)):
        matching = [item for item in listeners if (item.get("protocol") or "").upper() == protocol]
        if matching:
            return min(matching, key=lambda item: (item.get("port") != default, item.get("port"))), scheme
    raise Unusable("Gateway %s has no HTTP or HTTPS listener (listeners: %s)" % (
        name_of(gateway), ", ".join("%s/%s" % (item.get("protocol"), item.get("port")) for item in listeners) or "none"))


def lb_address(obj):
    """The first load-balancer ingress address (ip, else hostname) of a Service or Ingress status."""
    for entry in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if entry.get("ip") or entry.get("hostname"):
            return entry.get("ip") or entry.get("hostname")
    return None


def node_address(nodes):
    """(address, node name) of a Ready node, ExternalIP before InternalIP, first by name."""
    ready = [n for n in nodes if (_condition(n, "Ready") or {}).get("status") == "True"] or list(nodes)
    for kind in ("ExternalIP", "InternalIP"):
        for node in sorted(ready, key=name_of):
            for address in (node.get("status") or {}).get("addresses") or []:
                if address.get("type") == kind and address.get("address"):
                    return address["address"], name_of(node)
    return None, None


def ingress_backends(ingress):
    spec = ingress.get("spec") or {}
    backends = [spec.get("defaultBackend")] + [path.get("backend") for rule in spec.get("rules") or []
                                               for path in (rule.get("http") or {}).get("paths") or []]
    return {((b or {}).get("service") or {}).get("name") for b in backends} - {None}


def ingress_host(ingress):
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        if rule.get("host") and not rule["host"].startswith("*"):
            return rule["host"]
    return None


def route_timeout_warnings(route):
    value = _meta(route, "annotations").get(ROUTE_TIMEOUT_ANNOTATION)
    if value is None:
        return ["Route %s has no %s annotation: the router's default of 30 s applies, which cuts long or queued "
                "requests (the seed saw this distort results under load); set it to at least %ds"
                % (name_of(route), ROUTE_TIMEOUT_ANNOTATION, ROUTE_TIMEOUT_MIN_SECONDS)]
    seconds = route_timeout_seconds(value)
    if seconds is None:
        return ["Route %s: cannot read %s=%r as a duration" % (name_of(route), ROUTE_TIMEOUT_ANNOTATION, value)]
    if seconds < ROUTE_TIMEOUT_MIN_SECONDS:
        return ["Route %s has %s=%s (%g s), under %d s: long or queued requests are cut (the seed saw this distort "
                "results under load)" % (name_of(route), ROUTE_TIMEOUT_ANNOTATION, value, seconds,
                                         ROUTE_TIMEOUT_MIN_SECONDS)]
    return []


def service_reach(namespace, service, port, scheme, local_port):
    """How a play outside the cluster reaches a ClusterIP Service: a port-forward or the API server's proxy."""
    number = int(port["port"])
    return {
        "direct": False,
        "port_forward": {"namespace": namespace, "service": service, "port": number, "local_port": local_port,
                         "endpoint": format_url(scheme, LOCAL_ADDRESS, local_port)},
        # The options of the HTTP modules (group/llmd.verify.http) that reach it through the API server.
        "api_proxy": {"transport": "api_proxy", "namespace": namespace, "service": service, "port": str(number),
                      "scheme": scheme},
    }


def _source(kind, obj):
    return {"kind": kind, "namespace": _meta(obj, "namespace") or None, "name": name_of(obj)}


def _candidate(mode, endpoint, source, reach=None, connect_address=None, warnings=(), internal=False):
    return {"mode": mode, "usable": True, "endpoint": endpoint, "source": source,
            "reach": reach or {"direct": True}, "connect_address": connect_address,
            "warnings": list(warnings), "internal": internal}


# ---------------------------------------------------------------------------------------------------
# Reading the cluster
# ---------------------------------------------------------------------------------------------------

class ClusterView:
    """The objects of one namespace, each kind read at most once per attempt."""

    def __init__(self, api_client, namespace):
        self.namespace = namespace
        self._api = api_client
        self._read = {}

    def _once(self, key, read):
        if key not in self._read:
            try:
                self._read[key] = read()
            except Unusable as exc:
                self._read[key] = exc
        if isinstance(self._read[key], Unusable):
            raise self._read[key]
        return self._read[key]

    def _custom_list(self, group, versions, plural, missing):
        for version in versions:
            try:
                return k8s_get(self._api, "/apis/%s/%s/namespaces/{namespace}/%s" % (group, version, plural),
                               verb="list", resource="%s.%s" % (plural, group), namespace=self.namespace)["items"]
            except K8sNotFound:
                continue
        raise Unusable(missing, available=False)

    def services(self):
        return self._once("services", lambda: k8s_get(
            self._api, "/api/v1/namespaces/{namespace}/services", verb="list", resource="services",
            namespace=self.namespace)["items"])

    def gateways(self):
        return self._once("gateways", lambda: self._custom_list(
            "gateway.networking.k8s.io", ("v1", "v1beta1"), "gateways",
            "not available: the Gateway API (gateway.networking.k8s.io) is not installed in this cluster"))

    def gateways_or_none(self):
        try:
            return self.gateways()
        except Unusable:
            return None

    def ingresses(self):
        return self._once("ingresses", lambda: k8s_get(
            self._api, "/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses", verb="list",
            resource="ingresses.networking.k8s.io", namespace=self.namespace)["items"])

    def routes(self):
        return self._once("routes", lambda: self._custom_list(
            "route.openshift.io", ("v1",), "routes",
            "not available: OpenShift Routes (route.openshift.io/v1) are not served by this cluster"))

    def nodes(self):
        return self._once("nodes", lambda: k8s_get(self._api, "/api/v1/nodes", verb="list", resource="nodes")["items"])


# ---------------------------------------------------------------------------------------------------
# One resolver per mode: (view, options) -> candidate, or Unusable
# ---------------------------------------------------------------------------------------------------

def _gateway_service(view, opts):
    return select_gateway_service(view.services(), view.gateways_or_none(), opts.get("gateway_service"),
                                  opts.get("gateway_name"))


def _epp_service(view, opts):
    """The EPP Service that fronts HTTP itself (standalone mode) and its HTTP port."""
    services = view.services()
    if opts.get("epp_service"):
        found = [s for s in services if name_of(s) == opts["epp_service"]]
        if not found:
            raise Unusable("Service %s (epp_service) not found; Services seen: %s" % (opts["epp_service"], _names(services)))
        return (found[0], "named by epp_service", []), http_port(found[0])
    epps = [s for s in services if re.search(EPP_SERVICE_PATTERN, name_of(s))]
    fronting, behind = [], []
    for service in epps:
        try:
            http_port(service)
            fronting.append(service)
        except Unusable as exc:
            behind.append(exc.reason)
    chosen = pick([(fronting, "it is an EPP Service with an HTTP port")], "standalone EPP Service")
    if chosen is None:
        raise Unusable("no EPP Service fronts HTTP (%s); Services seen: %s" % (
            "; ".join(behind) or "no Service named like *-epp", _names(services)))
    return chosen, http_port(chosen[0])


def resolve_port_forward(view, opts):
    service, why, warnings = _gateway_service(view, opts)
    port, scheme, skipped = http_port(service)
    spec = service.get("spec") or {}
    if not spec.get("selector"):
        raise Unusable("Service %s has no pod selector: there is no pod to port-forward to" % name_of(service))
    reach = service_reach(view.namespace, name_of(service), port, scheme, opts["local_port"])
    return _candidate("port_forward", reach["port_forward"]["endpoint"], _source("Service", service), reach=reach,
                      warnings=warnings + _status_port_warning(service, port, skipped))


def resolve_gateway(view, opts):
    gateway, why, warnings = select_gateway(view.gateways(), opts.get("gateway_name"))
    listener, scheme = gateway_listener(gateway)
    not_accepted = gateway_not_accepted(gateway)
    addresses = gateway_addresses(gateway)
    if not addresses:
        raise Unusable("Gateway %s has no address yet (status.addresses is empty)%s" % (
            name_of(gateway), ": " + not_accepted if not_accepted else ""), pending=True)
    warnings.append(not_accepted or programmed_warning(gateway))
    warnings = [warning for warning in warnings if warning]
    address = addresses[0]
    cluster_ips = {(s.get("spec") or {}).get("clusterIP") for s in view.services()}
    internal = address in cluster_ips or bool(re.search(r"\.svc(\.|$)", address))
    reach = {"direct": not internal}
    if internal:
        try:
            service = select_gateway_service(view.services(), [gateway], gateway_name=name_of(gateway))[0]
            port, port_scheme, skipped = http_port(service)
            reach = service_reach(view.namespace, name_of(service), port, port_scheme, opts["local_port"])
        except Unusable:
            pass  # a Gateway run outside the cluster (GKE) has no Service to forward to
    host, connect_address = address, None
    if listener.get("hostname") and not listener["hostname"].startswith("*"):
        host = listener["hostname"]
        connect_address = None if opts["resolves"](host) else address
    return _candidate("gateway", format_url(scheme, host, listener.get("port")), _source("Gateway", gateway),
                      reach=reach, connect_address=connect_address, warnings=warnings, internal=internal)


def resolve_service(view, opts):
    service, why, warnings = _gateway_service(view, opts)
    port, scheme, skipped = http_port(service)
    warnings = warnings + _status_port_warning(service, port, skipped)
    kind = (service.get("spec") or {}).get("type") or "ClusterIP"
    source = _source("Service", service)
    if kind == "LoadBalancer":
        address = lb_address(service)
        if not address:
            raise Unusable("LoadBalancer Service %s has no external address yet (status.loadBalancer.ingress is "
                           "empty)" % name_of(service), pending=True)
        return _candidate("service", format_url(scheme, address, port["port"]), source, warnings=warnings)
    if kind == "NodePort":
        address, node = node_address(view.nodes())
        if not address:
            raise Unusable("NodePort Service %s: no node has an ExternalIP or InternalIP address" % name_of(service))
        warnings.append("NodePort %s on node %s" % (port.get("nodePort"), node))
        return _candidate("service", format_url(scheme, address, port["nodePort"]), source, warnings=warnings)
    raise Unusable("Service %s is %s: it has no address outside the cluster (port_forward or the api_proxy "
                   "transport reach it)" % (name_of(service), kind))


def resolve_ingress(view, opts):
    ingresses = view.ingresses()
    if opts.get("ingress_name"):
        found = [i for i in ingresses if name_of(i) == opts["ingress_name"]]
        if not found:
            raise Unusable("Ingress %s not found; Ingresses seen: %s" % (opts["ingress_name"], _names(ingresses)))
        ingress, why, warnings = found[0], "named by ingress_name", []
    else:
        try:
            gateway_service = name_of(_gateway_service(view, opts)[0])
        except Unusable:
            gateway_service = None
        to_gateway = [i for i in ingresses if gateway_service in ingress_backends(i)]
        named = [i for i in ingresses if i not in to_gateway and re.search(SEED_SERVICE_PATTERN, name_of(i))]
        chosen = pick([(to_gateway, "its backend is the gateway Service %s" % gateway_service),
                       (named, "its name matches the seed's pattern")], "Ingress")
        if chosen is None:
            raise Unusable("no Ingress to the gateway (none with the gateway Service as backend or named like %s); "
                           "Ingresses seen: %s" % (SEED_SERVICE_PATTERN, _names(ingresses)))
        ingress, why, warnings = chosen
    address = lb_address(ingress)
    if not address:
        raise Unusable("Ingress %s has no address yet (status.loadBalancer.ingress is empty)" % name_of(ingress),
                       pending=True)
    if not is_ip(address):
        warnings.append("Ingress %s's address is a hostname (%s): the seed's query of "
                        "status.loadBalancer.ingress[0].ip returns nothing for it" % (name_of(ingress), address))
    scheme = "https" if (ingress.get("spec") or {}).get("tls") else "http"
    host, connect_address = ingress_host(ingress), None
    if host:
        connect_address = None if opts["resolves"](host) else address
    return _candidate("ingress", format_url(scheme, host or address), _source("Ingress", ingress),
                      connect_address=connect_address, warnings=warnings)


def resolve_route(view, opts):
    routes = view.routes()
    if opts.get("route_name"):
        found = [r for r in routes if name_of(r) == opts["route_name"]]
        if not found:
            raise Unusable("Route %s not found; Routes seen: %s" % (opts["route_name"], _names(routes)))
        route, why, warnings = found[0], "named by route_name", []
    else:
        targets = set()
        for find in (_gateway_service, lambda v, o: _epp_service(v, o)[0]):
            try:
                targets.add(name_of(find(view, opts)[0]))
            except Unusable:
                continue
        to_target = [r for r in routes if ((r.get("spec") or {}).get("to") or {}).get("name") in targets]
        named = [r for r in routes if r not in to_target and re.search(SEED_SERVICE_PATTERN, name_of(r))]
        chosen = pick([(to_target, "it routes to the gateway (or standalone EPP) Service"),
                       (named, "its name matches the seed's pattern")], "Route")
        if chosen is None:
            raise Unusable("no Route to the gateway or EPP Service (%s); Routes seen: %s"
                           % (", ".join(sorted(targets)) or "none found", _names(routes)))
        route, why, warnings = chosen
    spec = route.get("spec") or {}
    host = spec.get("host")
    if not host:
        raise Unusable("Route %s has no host yet" % name_of(route), pending=True)
    ingresses = (route.get("status") or {}).get("ingress") or []
    admitted = [i for i in ingresses if route_admitted(i)]
    if not admitted:
        warnings.append("Route %s is not Admitted by any router yet" % name_of(route))
    connect_address = None
    if not opts["resolves"](host):
        router = next((i.get("routerCanonicalHostname") for i in admitted + ingresses if i.get("routerCanonicalHostname")),
                      None)
        connect_address = router if router and opts["resolves"](router) else None
        if connect_address is None:
            warnings.append("Route %s's host %s has no DNS record here, nor has its router's canonical hostname (%s): "
                            "connect to the router's address with the host as Host header (curl --resolve)"
                            % (name_of(route), host, router or "none given"))
    scheme = "https" if (spec.get("tls") or {}).get("termination") else "http"
    return _candidate("route", format_url(scheme, host), _source("Route", route), connect_address=connect_address,
                      warnings=warnings + route_timeout_warnings(route))


def resolve_standalone(view, opts):
    (service, why, warnings), (port, scheme, skipped) = _epp_service(view, opts)
    cluster_ip = (service.get("spec") or {}).get("clusterIP")
    host = cluster_ip if cluster_ip and cluster_ip != "None" else _cluster_dns(view.namespace, service, opts)
    reach = service_reach(view.namespace, name_of(service), port, scheme, opts["local_port"])
    return _candidate("standalone", format_url(scheme, host, port["port"]), _source("Service", service), reach=reach,
                      warnings=warnings)


def _cluster_dns(namespace, service, opts):
    return "%s.%s.svc.%s" % (name_of(service), namespace, opts["cluster_domain"])


def resolve_cluster(view, opts):
    try:
        service, why, warnings = _gateway_service(view, opts)
        port, scheme, skipped = http_port(service)
    except Unusable as gateway_missing:
        try:
            (service, why, warnings), (port, scheme, skipped) = _epp_service(view, opts)
        except Unusable as epp_missing:
            raise Unusable("%s; %s" % (gateway_missing.reason, epp_missing.reason))
    reach = service_reach(view.namespace, name_of(service), port, scheme, opts["local_port"])
    return _candidate("cluster", format_url(scheme, _cluster_dns(view.namespace, service, opts), port["port"]),
                      _source("Service", service), reach=reach, warnings=warnings, internal=True)


RESOLVERS = {"port_forward": resolve_port_forward, "gateway": resolve_gateway, "service": resolve_service,
             "ingress": resolve_ingress, "route": resolve_route, "standalone": resolve_standalone,
             "cluster": resolve_cluster}


# ---------------------------------------------------------------------------------------------------
# Choosing among modes, waiting, and the result
# ---------------------------------------------------------------------------------------------------

def evaluate(view, mode, opts):
    """One mode's candidate; never raises for what the user can fix (that is the candidate's reason)."""
    try:
        return RESOLVERS[mode](view, opts)
    except Unusable as exc:
        return {"mode": mode, "usable": False, "available": exc.available, "pending": exc.pending,
                "reason": exc.reason}
    except LlmdError as exc:
        if exc.details.get("status") != 403 or exc.details.get("anonymous"):
            raise  # 401, no credentials at all, unreachable: no mode can work, say it once
        return {"mode": mode, "usable": False, "available": True, "pending": False, "reason": exc.msg,
                "forbidden": exc}


def choose(candidates, auto):
    """The candidate to use and whether a better one may still get an address (worth waiting for)."""
    waiting = False
    for candidate in candidates:
        if candidate["usable"] and not (auto and candidate["internal"]):
            return candidate, waiting
        waiting = waiting or candidate.get("pending", False)
    return None, waiting


def _explain(candidates, chosen, auto):
    """The per-mode summary returned as `candidates`: what each mode found and why it was (not) used."""
    summary = []
    for candidate in candidates:
        entry = {"mode": candidate["mode"], "usable": candidate["usable"], "endpoint": candidate.get("endpoint"),
                 "source": candidate.get("source"), "warnings": candidate.get("warnings", [])}
        if candidate is chosen:
            entry["reason"] = "used" + (": the first usable mode in the auto order" if auto else "")
        elif candidate["usable"] and candidate["internal"]:
            entry["reason"] = "not used: %s answers only inside the cluster" % candidate["endpoint"]
        elif candidate["usable"] and chosen:
            entry["reason"] = "not used: %s comes first in the auto order" % chosen["mode"]
        else:
            entry["reason"] = candidate["reason"]
        summary.append(entry)
    return summary


def _failure(namespace, mode, candidates, waited):
    """The LlmdError when no mode gave an endpoint: the mode's reason, or every mode's for auto."""
    after = " after waiting %d s" % waited if waited else ""
    forbidden = [c["forbidden"] for c in candidates if c.get("forbidden")]
    summary = _explain(candidates, None, mode == "auto")
    if mode != "auto":
        if forbidden:
            return forbidden[0]
        available = candidates[0]["available"]
        return LlmdError("mode %s %s in namespace %s%s: %s" % (
            mode, "found no endpoint" if available else "is not available", namespace, after, summary[0]["reason"]),
            hint="try mode=auto to see what every mode finds" if available else None, candidates=summary)
    by_reason = {}  # modes that failed for the same reason are named together
    for entry in summary:
        by_reason.setdefault(entry["reason"], []).append(entry["mode"])
    reasons = "; ".join("%s: %s" % (", ".join(modes), reason) for reason, modes in by_reason.items())
    return LlmdError("no gateway endpoint found in namespace %s%s. %s" % (namespace, after, reasons),
                     hint=forbidden[0].hint if forbidden else "check the namespace, or name the object "
                     "(gateway_service, gateway_name, ingress_name, route_name, epp_service)", candidates=summary)


def resolve_endpoint(api_client, params, resolve_host=resolves, clock=time.monotonic, sleep=time.sleep,
                     make_view=ClusterView):
    """The result of gateway_endpoint_info (and the lookup) for params (the module's options)."""
    namespace, mode = params["namespace"], params.get("mode") or "auto"
    check_names(namespace, {option: params.get(option) for option in
                            ("gateway_service", "gateway_name", "ingress_name", "route_name", "epp_service")})
    opts = dict(params, local_port=params.get("local_port") or 8000, resolves=resolve_host,
                cluster_domain=params.get("cluster_domain") or "cluster.local")
    auto = mode == "auto"
    modes = AUTO_ORDER + ("cluster",) if auto else (mode,)
    started = clock()
    deadline = started + (params.get("wait_timeout") or 0)
    while True:
        view = make_view(api_client, namespace)
        candidates = [evaluate(view, each, opts) for each in modes]
        chosen, waiting = choose(candidates, auto)
        if not waiting or clock() >= deadline:
            break
        sleep(min(POLL_SECONDS, deadline - clock()))
    if chosen is None:
        raise _failure(namespace, mode, candidates, clock() - started if waiting else 0)
    warnings = ["%s: %s" % (c["mode"], c["reason"]) for c in candidates[:candidates.index(chosen)] if c.get("pending")]
    warnings.extend(chosen["warnings"])
    if chosen["internal"]:
        warnings.append("%s answers only inside the cluster; from here use reach.port_forward or reach.api_proxy"
                        % chosen["endpoint"])
    return {"endpoint": chosen["endpoint"], "mode": chosen["mode"], "source": chosen["source"],
            "connect_address": chosen["connect_address"], "reach": chosen["reach"],
            "candidates": _explain(candidates, chosen, auto), "warnings": warnings}


# The module's and the lookup's own options (besides the auth options), as doc_fragments/gateway_endpoint.py
# documents them.
ENDPOINT_ARG_SPEC = {
    "namespace": dict(type="str", required=True),
    "mode": dict(type="str", default="auto", choices=list(MODES)),
    "gateway_service": dict(type="str"),
    "gateway_name": dict(type="str"),
    "ingress_name": dict(type="str"),
    "route_name": dict(type="str"),
    "epp_service": dict(type="str"),
    "local_port": dict(type="int", default=8000),
    "cluster_domain": dict(type="str", default="cluster.local"),
    "wait_timeout": dict(type="int", default=0),
}
