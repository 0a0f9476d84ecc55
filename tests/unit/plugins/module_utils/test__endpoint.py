# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The selection rules of the endpoint resolution, on objects shaped as the llm-d charts make them."""

from __future__ import annotations

import pytest

from ansible_collections.llmd.verify.plugins.module_utils import _endpoint as ep
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError

NS = "llm-d"


def service(name, ports, kind="ClusterIP", labels=None, lb=None, cluster_ip="10.96.0.10", selector=True):
    obj = {"metadata": {"name": name, "namespace": NS, "labels": labels or {}},
           "spec": {"type": kind, "clusterIP": cluster_ip, "ports": ports}, "status": {}}
    if selector:
        obj["spec"]["selector"] = {"app": name}
    if lb:
        obj["status"]["loadBalancer"] = {"ingress": [lb]}
    return obj


def port(number, name=None, app=None, node_port=None):
    p = {"port": number, "protocol": "TCP"}
    if name:
        p["name"] = name
    if app:
        p["appProtocol"] = app
    if node_port:
        p["nodePort"] = node_port
    return p


ISTIO_PORTS = [port(15021, "status-port"), port(80, "http")]
EPP_PORTS = [port(9002, "grpc-ext-proc", "http2"), port(9090, "http-metrics")]


def gateway(name, addresses=(), programmed="True", listeners=None, gw_class="istio", labels=None):
    return {"metadata": {"name": name, "namespace": NS, "labels": labels or {}},
            "spec": {"gatewayClassName": gw_class,
                     "listeners": listeners or [{"name": "default", "port": 80, "protocol": "HTTP"}]},
            "status": {"addresses": [{"type": "IPAddress", "value": a} for a in addresses],
                       "conditions": [{"type": "Programmed", "status": programmed, "reason": "Pending"}]}}


def gw_label(name):
    return {ep.GATEWAY_NAME_LABEL: name}


class FakeView:
    """ClusterView's interface over lists; a missing kind (None) is an API that is not installed."""

    def __init__(self, services=(), gateways=(), ingresses=(), routes=None, nodes=()):
        self.namespace = NS
        self._services, self._gateways, self._ingresses = list(services), gateways, list(ingresses)
        self._routes, self._nodes = routes, list(nodes)

    def services(self):
        return self._services

    def gateways(self):
        if self._gateways is None:
            raise ep.Unusable("not available: no Gateway API", available=False)
        return list(self._gateways)

    def gateways_or_none(self):
        return None if self._gateways is None else list(self._gateways)

    def ingresses(self):
        return self._ingresses

    def routes(self):
        if self._routes is None:
            raise ep.Unusable("not available: no Routes", available=False)
        return self._routes

    def nodes(self):
        return self._nodes


def resolve(view, resolves=lambda host: True, **params):
    params.setdefault("namespace", NS)
    return ep.resolve_endpoint(None, params, resolve_host=resolves, make_view=lambda client, namespace: view)


# --- URLs and ports --------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme, host, number, url", [
    ("http", "10.16.4.2", 80, "http://10.16.4.2"),
    ("http", "10.16.4.2", 8000, "http://10.16.4.2:8000"),
    ("https", "gw.example.com", 443, "https://gw.example.com"),
    ("https", "gw.example.com", 80, "https://gw.example.com:80"),
    ("http", "fd00::1", 80, "http://[fd00::1]"),
    ("http", "fd00::1", 8080, "http://[fd00::1]:8080"),
    ("http", "host", None, "http://host"),
])
def test_format_url(scheme, host, number, url):
    assert ep.format_url(scheme, host, number) == url


def test_http_port_skips_istio_status_port_whatever_the_order():
    chosen, scheme, skipped = ep.http_port(service("gw-istio", ISTIO_PORTS))
    assert (chosen["port"], scheme) == (80, "http")
    assert [p["port"] for p in skipped] == [15021]


def test_http_port_of_a_standalone_epp_is_found_by_name_not_number():
    epp = service("optimized-baseline-epp", EPP_PORTS + [port(8081, "http", "http")])
    assert ep.http_port(epp)[0]["port"] == 8081


def test_an_epp_behind_a_gateway_has_no_http_port():
    with pytest.raises(ep.Unusable, match=r"no HTTP port.*9002/grpc-ext-proc.*gRPC.*9090/http-metrics.*metrics"):
        ep.http_port(service("gaie-sim-epp", EPP_PORTS))


def test_https_port_gives_https():
    assert ep.http_port(service("gw", [port(443, "https")]))[1] == "https"


# --- choosing among several ------------------------------------------------------------------------

SEED_SERVICES = [  # the seed's `k get services` listing
    service("gaie-inference-scheduling-epp", EPP_PORTS),
    service("gaie-inference-scheduling-ip-18c12339", [port(54321)], cluster_ip="None"),
    service("gaie-sim-epp", EPP_PORTS),
    service("infra-inference-scheduling-inference-gateway-istio", ISTIO_PORTS, "LoadBalancer", lb={"ip": "10.16.4.3"}),
    service("infra-sim-inference-gateway", [port(80, "http")], "LoadBalancer", lb={"ip": "10.16.4.2"}),
]


def test_bare_name_matches_follow_the_seeds_alphabetical_rule_and_say_so():
    chosen, why, warnings = ep.select_gateway_service(SEED_SERVICES, gateways=None)
    assert ep.name_of(chosen) == "infra-inference-scheduling-inference-gateway-istio"
    assert "matches the seed's pattern" in why
    assert len(warnings) == 1 and "2 gateway Services" in warnings[0] and "alphabetical" in warnings[0]


def test_a_service_labelled_for_an_existing_gateway_wins_over_a_name_match():
    services = SEED_SERVICES[:3] + [
        service("infra-inference-scheduling-inference-gateway-istio", ISTIO_PORTS),
        service("zz-sim-gw", [port(80, "http")], labels=gw_label("sim")),
    ]
    chosen, why, warnings = ep.select_gateway_service(services, [gateway("sim")])
    assert ep.name_of(chosen) == "zz-sim-gw"
    assert "labelled" in why and "chose zz-sim-gw" in warnings[0]


def test_a_label_for_a_gateway_that_does_not_exist_counts_as_nothing():
    services = [service("orphan", [port(80, "http")], labels=gw_label("gone"))]
    with pytest.raises(ep.Unusable, match="Services seen: orphan"):
        ep.select_gateway_service(services, [gateway("other")])


def test_gateway_name_selects_its_istio_service():
    services = [service("a-inference-gateway-istio", ISTIO_PORTS), service("b-inference-gateway-istio", ISTIO_PORTS)]
    chosen, why, warnings = ep.select_gateway_service(services, [gateway("b-inference-gateway")],
                                                      gateway_name="b-inference-gateway")
    assert ep.name_of(chosen) == "b-inference-gateway-istio" and warnings == []
    assert why == "it is the Service of Gateway b-inference-gateway"


def test_explicit_gateway_service_must_exist():
    with pytest.raises(ep.Unusable, match="Service nope .*not found.*Services seen: gaie-inference"):
        ep.select_gateway_service(SEED_SERVICES, None, gateway_service="nope")


def test_gateway_objects_prefer_the_inference_gateway():
    gateways = [gateway("aaa-other"), gateway("llm-d-inference-gateway")]
    chosen, why, warnings = ep.select_gateway(gateways)
    assert ep.name_of(chosen) == "llm-d-inference-gateway" and "inference gateway" in why and warnings


@pytest.mark.parametrize("value, seconds", [("300s", 300), ("5m", 300), ("2h", 7200), ("500ms", 0.5),
                                            ("30000", 30), ("1d", 86400), ("soon", None), ("", None)])
def test_route_timeout(value, seconds):
    assert ep.route_timeout_seconds(value) == seconds


@pytest.mark.parametrize("namespace", ["LLM-D", "-x", "a_b", "", "x" * 64])
def test_invalid_namespace_is_refused_before_any_request(namespace):
    with pytest.raises(LlmdError, match="not a valid Kubernetes namespace"):
        ep.check_names(namespace, {})


def test_invalid_object_name_is_refused():
    with pytest.raises(LlmdError, match="gateway_name 'My_Gateway' is not a valid"):
        ep.check_names("llm-d", {"gateway_name": "My_Gateway"})


# --- modes -----------------------------------------------------------------------------------------

def test_port_forward_mode_is_the_seeds_command():
    result = resolve(FakeView(SEED_SERVICES, gateways=None), mode="port_forward")
    assert result["endpoint"] == "http://127.0.0.1:8000"
    assert result["source"] == {"kind": "Service", "namespace": NS,
                                "name": "infra-inference-scheduling-inference-gateway-istio"}
    forward = result["reach"]["port_forward"]
    assert (forward["service"], forward["port"], forward["local_port"]) == (result["source"]["name"], 80, 8000)
    assert result["reach"]["api_proxy"] == {"transport": "api_proxy", "namespace": NS, "scheme": "http",
                                            "service": "infra-inference-scheduling-inference-gateway-istio", "port": "80"}
    assert any("15021" in w for w in result["warnings"]) and any("alphabetical" in w for w in result["warnings"])


def test_gateway_mode_reads_the_first_address_and_the_listener_port():
    gw = gateway("infra-sim-inference-gateway", ["10.16.4.2", "10.16.4.9"],
                 listeners=[{"name": "web", "port": 8080, "protocol": "HTTP"}])
    result = resolve(FakeView([], [gw]), mode="gateway")
    assert result["endpoint"] == "http://10.16.4.2:8080" and result["reach"] == {"direct": True}


def test_gateway_not_programmed_is_a_warning():
    result = resolve(FakeView([], [gateway("g-inference-gateway", ["10.0.0.1"], programmed="False")]), mode="gateway")
    assert any("not Programmed" in w for w in result["warnings"])


def test_gateway_listener_hostname_without_dns_gives_connect_address():
    gw = gateway("g", ["203.0.113.7"], listeners=[{"port": 443, "protocol": "HTTPS", "hostname": "llm.example.test"}])
    result = resolve(FakeView([], [gw]), resolves=lambda host: False, mode="gateway")
    assert result["endpoint"] == "https://llm.example.test" and result["connect_address"] == "203.0.113.7"


def test_gateway_without_address_fails_after_waiting_and_says_what_is_missing():
    clock = iter(range(0, 100, 2))
    now = [0]

    def tick():
        now[0] = next(clock)
        return now[0]

    sleeps = []
    with pytest.raises(LlmdError, match=r"mode gateway found no endpoint .*after waiting \d+ s.*no address yet"):
        ep.resolve_endpoint(None, {"namespace": NS, "mode": "gateway", "wait_timeout": 6},
                            make_view=lambda c, n: FakeView([], [gateway("g")]), clock=tick, sleep=sleeps.append)
    assert sleeps and all(0 < s <= ep.POLL_SECONDS for s in sleeps)


def test_wait_ends_as_soon_as_the_address_appears():
    views = iter([FakeView([], [gateway("g")]), FakeView([], [gateway("g", ["10.0.0.5"])])])
    result = ep.resolve_endpoint(None, {"namespace": NS, "mode": "gateway", "wait_timeout": 60},
                                 make_view=lambda c, n: next(views), sleep=lambda s: None)
    assert result["endpoint"] == "http://10.0.0.5"


def test_gateway_mode_without_the_gateway_api_is_not_available():
    with pytest.raises(LlmdError, match="mode gateway is not available.*no Gateway API"):
        resolve(FakeView(SEED_SERVICES, gateways=None), mode="gateway")


def test_service_mode_loadbalancer_and_nodeport():
    lb = resolve(FakeView(SEED_SERVICES, None), mode="service", gateway_service="infra-sim-inference-gateway")
    assert lb["endpoint"] == "http://10.16.4.2"
    node = {"metadata": {"name": "n1"}, "status": {
        "conditions": [{"type": "Ready", "status": "True"}],
        "addresses": [{"type": "InternalIP", "address": "192.168.1.5"}, {"type": "Hostname", "address": "n1"}]}}
    np = service("x-inference-gateway", [port(80, "http", node_port=30080)], "NodePort")
    assert resolve(FakeView([np], None, nodes=[node]), mode="service")["endpoint"] == "http://192.168.1.5:30080"


def test_service_mode_refuses_a_clusterip_service():
    with pytest.raises(LlmdError, match="ClusterIP: it has no address outside the cluster"):
        resolve(FakeView([service("x-inference-gateway-istio", ISTIO_PORTS)], None), mode="service")


def test_ingress_mode_with_hostname_address_tls_and_the_seeds_bug_avoided():
    gw_svc = service("infra-sim-inference-gateway", [port(80, "http")])
    other = {"metadata": {"name": "aaa-grafana"}, "spec": {"rules": [{"http": {"paths": [
        {"backend": {"service": {"name": "grafana"}}}]}}]}, "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}}
    ingress = {"metadata": {"name": "infra-sim-inference-gateway"},
               "spec": {"tls": [{"hosts": ["llm.example.test"]}], "rules": [{"host": "llm.example.test", "http": {
                   "paths": [{"path": "/", "backend": {"service": {"name": "infra-sim-inference-gateway"}}}]}}]},
               "status": {"loadBalancer": {"ingress": [{"hostname": "abc.elb.amazonaws.com"}]}}}
    result = resolve(FakeView([gw_svc], None, ingresses=[other, ingress]), resolves=lambda h: h != "llm.example.test",
                     mode="ingress")
    assert result["endpoint"] == "https://llm.example.test"
    assert result["connect_address"] == "abc.elb.amazonaws.com"
    assert any("hostname" in w and ".ip returns nothing" in w for w in result["warnings"])


def route(name, to, annotations=None, tls=True, canonical="router.apps.test"):
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"host": "%s.apps.test" % name, "to": {"kind": "Service", "name": to},
                     "tls": {"termination": "edge"} if tls else None},
            "status": {"ingress": [{"routerCanonicalHostname": canonical,
                                    "conditions": [{"type": "Admitted", "status": "True"}]}]}}


@pytest.mark.parametrize("annotations, warned", [({}, "default of 30 s"),
                                                 ({ep.ROUTE_TIMEOUT_ANNOTATION: "60s"}, "under 300 s"),
                                                 ({ep.ROUTE_TIMEOUT_ANNOTATION: "10m"}, None)])
def test_route_mode_https_and_timeout_warnings(annotations, warned):
    view = FakeView([service("gw-inference-gateway-istio", ISTIO_PORTS)], None,
                    routes=[route("llm", "gw-inference-gateway-istio", annotations)])
    result = resolve(view, resolves=lambda h: h == "router.apps.test", mode="route")
    assert result["endpoint"] == "https://llm.apps.test" and result["connect_address"] == "router.apps.test"
    assert any(warned in w for w in result["warnings"]) if warned else not any("timeout" in w for w in result["warnings"])


def test_route_host_without_dns_and_no_resolvable_router_is_a_warning():
    view = FakeView([service("gw-inference-gateway-istio", ISTIO_PORTS)], None,
                    routes=[route("llm", "gw-inference-gateway-istio", {ep.ROUTE_TIMEOUT_ANNOTATION: "10m"})])
    result = resolve(view, resolves=lambda h: False, mode="route")
    assert result["connect_address"] is None
    assert any("has no DNS record here" in w and "router.apps.test" in w for w in result["warnings"])


def test_standalone_mode_reaches_the_epp_through_forward_or_api_proxy():
    epp = service("optimized-baseline-epp", EPP_PORTS + [port(80, "http")], cluster_ip="10.96.3.4")
    result = resolve(FakeView([epp, service("gaie-sim-epp", EPP_PORTS)], None), mode="standalone")
    assert result["endpoint"] == "http://10.96.3.4"
    assert result["reach"]["direct"] is False
    assert result["reach"]["api_proxy"] == {"transport": "api_proxy", "namespace": "llm-d", "scheme": "http",
                                            "service": "optimized-baseline-epp", "port": "80"}
    assert result["warnings"] == []  # gaie-sim-epp has no HTTP port: not a candidate


def test_cluster_mode_is_the_services_dns_name():
    result = resolve(FakeView(SEED_SERVICES, None), mode="cluster", gateway_service="infra-sim-inference-gateway",
                     cluster_domain="corp.local")
    assert result["endpoint"] == "http://infra-sim-inference-gateway.llm-d.svc.corp.local"


# --- auto ------------------------------------------------------------------------------------------

def test_auto_prefers_the_gateway_address_and_explains_every_mode():
    gw = gateway("infra-sim-inference-gateway", ["10.16.4.2"], gw_class="kgateway")
    svc = service("infra-sim-inference-gateway", [port(80, "http")], "LoadBalancer",
                  labels=gw_label("infra-sim-inference-gateway"), lb={"ip": "10.16.4.2"})
    result = resolve(FakeView([svc], [gw]), mode="auto")
    assert (result["mode"], result["endpoint"]) == ("gateway", "http://10.16.4.2")
    reasons = {c["mode"]: c["reason"] for c in result["candidates"]}
    assert list(reasons) == list(ep.AUTO_ORDER) + ["cluster"]
    assert reasons["gateway"].startswith("used")
    assert "not available" in reasons["route"] and "no Ingress" in reasons["ingress"]
    assert reasons["service"] == "not used: gateway comes first in the auto order"
    assert "only inside the cluster" in reasons["cluster"]


def test_auto_skips_a_cluster_internal_gateway_address_for_the_port_forward():
    svc = service("infra-inference-scheduling-inference-gateway-istio", ISTIO_PORTS, cluster_ip="10.96.7.7",
                  labels=gw_label("infra-inference-scheduling-inference-gateway"))
    gw = gateway("infra-inference-scheduling-inference-gateway", ["10.96.7.7"])
    result = resolve(FakeView([svc], [gw]), mode="auto")
    assert result["mode"] == "port_forward"
    gateway_reason = next(c["reason"] for c in result["candidates"] if c["mode"] == "gateway")
    assert "answers only inside the cluster" in gateway_reason
    explicit = resolve(FakeView([svc], [gw]), mode="gateway")
    assert explicit["reach"]["direct"] is False and explicit["reach"]["port_forward"]["service"] == ep.name_of(svc)


def test_auto_finds_the_standalone_epp_when_there_is_no_gateway():
    epp = service("optimized-baseline-epp", EPP_PORTS + [port(80, "http")])
    result = resolve(FakeView([epp], gateways=None), mode="auto")
    assert result["mode"] == "standalone" and result["source"]["name"] == "optimized-baseline-epp"


def test_auto_with_nothing_lists_what_it_saw_in_every_mode():
    with pytest.raises(LlmdError) as failure:
        resolve(FakeView([service("vllm-decode", [port(8000, "http")])], gateways=[]), mode="auto")
    message = str(failure.value)
    assert "no gateway endpoint found in namespace llm-d" in message and "Services seen: vllm-decode" in message
    assert [c["mode"] for c in failure.value.details["candidates"]] == list(ep.AUTO_ORDER) + ["cluster"]


def test_auto_reports_a_pending_address_it_did_not_wait_for():
    svc = service("x-inference-gateway", [port(80, "http")], labels=gw_label("x-inference-gateway"))
    result = resolve(FakeView([svc], [gateway("x-inference-gateway")]), mode="auto")
    assert result["mode"] == "port_forward"
    assert any(w.startswith("gateway: Gateway x-inference-gateway has no address yet") for w in result["warnings"])


def test_auto_keeps_going_when_one_mode_is_forbidden():
    class ForbiddenRoutes(FakeView):
        def routes(self):
            raise LlmdError("the Kubernetes credentials may not list routes.route.openshift.io", status=403)
    epp = service("optimized-baseline-epp", EPP_PORTS + [port(80, "http")])
    result = resolve(ForbiddenRoutes([epp], gateways=None), mode="auto")
    assert result["mode"] == "standalone"
    assert "may not list routes" in result["candidates"][0]["reason"]
    with pytest.raises(LlmdError, match="may not list routes"):
        resolve(ForbiddenRoutes([epp], gateways=None), mode="route")


def test_auth_failures_are_not_swallowed_by_auto():
    class Unauthorized(FakeView):
        def routes(self):
            raise LlmdError("rejected the credentials (401 Unauthorized)", status=401)
    with pytest.raises(LlmdError, match="401"):
        resolve(Unauthorized([], None), mode="auto")


# --- OpenShift Routes: Admitted is a condition of each status.ingress[] entry ---------------------------------

def test_an_admitted_route_is_not_reported_unadmitted():
    view = FakeView([service("gw-inference-gateway-istio", ISTIO_PORTS)], None,
                    routes=[route("llm", "gw-inference-gateway-istio", {ep.ROUTE_TIMEOUT_ANNOTATION: "10m"})])
    result = resolve(view, resolves=lambda h: True, mode="route")
    assert not any("Admitted" in w for w in result["warnings"]), result["warnings"]


def test_an_unadmitted_route_is_reported():
    unadmitted = route("llm", "gw-inference-gateway-istio", {ep.ROUTE_TIMEOUT_ANNOTATION: "10m"})
    unadmitted["status"]["ingress"][0]["conditions"] = [
        {"type": "Admitted", "status": "False", "reason": "HostAlreadyClaimed", "message": "route llm already exposes llm.apps.test"}]
    view = FakeView([service("gw-inference-gateway-istio", ISTIO_PORTS)], None, routes=[unadmitted])
    result = resolve(view, resolves=lambda h: True, mode="route")
    assert "Route llm is not Admitted by any router yet" in result["warnings"]
    assert ep.route_admitted({"conditions": [{"type": "Admitted", "status": "True"}]})
    assert not ep.route_admitted({"status": {"conditions": [{"type": "Admitted", "status": "True"}]}})


# --- Gateways nobody runs ------------------------------------------------------------------------------------

def gateway_status(name, gw_class, accepted, addresses=(), programmed=None):
    """A Gateway as its controller (or, with accepted=None, nobody but the CRD defaults) left it."""
    conditions = [{"type": "Accepted", "status": "Unknown", "reason": "Pending", "message": "Waiting for controller"},
                  {"type": "Programmed", "status": "Unknown", "reason": "Pending", "message": "Waiting for controller"}]
    if accepted is not None:
        conditions = [{"type": "Accepted", "status": accepted, "reason": "Accepted" if accepted == "True" else "Invalid"},
                      programmed or {"type": "Programmed", "status": "True", "reason": "Programmed"}]
    return {"metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/component": "inference-gateway"}},
            "spec": {"gatewayClassName": gw_class, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
            "status": {"addresses": [{"type": "IPAddress", "value": a} for a in addresses], "conditions": conditions}}


def test_an_accepted_gateway_with_an_address_wins_over_one_no_controller_runs():
    pending = gateway_status("a-inference-gateway", "istio", None)
    served = gateway_status("b-inference-gateway", "kgateway", "True", ["203.0.113.9"])
    result = resolve(FakeView([], [pending, served]), mode="gateway")
    assert (result["endpoint"], result["source"]["name"]) == ("http://203.0.113.9", "b-inference-gateway")
    assert "Gateway a-inference-gateway skipped: GatewayClass istio: no controller has accepted it" in "\n".join(result["warnings"])
    assert any("chose b-inference-gateway because" in w and "Accepted and with an address" in w for w in result["warnings"])


def test_a_gateway_no_controller_runs_says_so():
    with pytest.raises(LlmdError, match="no address yet .*: GatewayClass istio: no controller has accepted it"):
        resolve(FakeView([], [gateway_status("a-inference-gateway", "istio", None)]), mode="gateway")


def test_the_programmed_warning_is_true_for_every_provider():
    not_programmed = {"type": "Programmed", "status": "False", "reason": "AddressNotAssigned",
                      "message": "Assigned to service(s) x-istio.llm-d.svc.cluster.local:80, but failed to assign to all requested addresses"}
    gw = gateway_status("g-inference-gateway", "istio", "True", ["10.0.0.1"], programmed=not_programmed)
    warning = next(w for w in resolve(FakeView([], [gw]), mode="gateway")["warnings"] if "not Programmed" in w)
    assert "(False, AddressNotAssigned: Assigned to service(s)" in warning
    assert "the gateway Service has an address" in warning and "says nothing about the gateway pods being Ready" in warning
