"""The gateway controllers' Envoy configuration, rendered from API objects and checked by Envoy itself
(`envoy --mode validate` on a bootstrap holding the rendered listeners and clusters)."""

import json
import subprocess

import pytest

from llmd_sandbox.cluster import envoy_binary
from llmd_sandbox.envoy_gateways import (ISTIO, KGATEWAY, Renderer, bootstrap, listen_port, route_action,
                                         route_match, write_if_changed)
from llmd_sandbox.kube import ENDPOINT_SLICES, GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES, POOLS, POOLS_ALPHA, SERVICES

NS = "llm-d"


class FakeCache:
    """What Renderer reads of the watch cache: get and list (with a label selector)."""

    def __init__(self, objects: dict):
        self.objects = objects  # Resource -> list of objects

    def get(self, res, namespace, name):
        return next((o for o in self.objects.get(res, []) if o["metadata"]["name"] == name
                     and o["metadata"].get("namespace") == namespace), None)

    def list(self, res, namespace=None, selector=None):
        return [o for o in self.objects.get(res, [])
                if namespace in (None, o["metadata"].get("namespace"))
                and (selector or {}).items() <= (o["metadata"].get("labels") or {}).items()]


def meta(name, **extra):
    return {"name": name, "namespace": NS, **extra}


GATEWAY = {"metadata": meta("gw"), "spec": {"gatewayClassName": "kgateway", "listeners": [
    {"name": "default", "port": 80, "protocol": "HTTP"}]}}
POOL_V1 = {"metadata": meta("pool"), "spec": {
    "targetPorts": [{"number": 8000}], "selector": {"matchLabels": {"app": "ms"}},
    "endpointPickerRef": {"name": "pool-epp", "port": {"number": 9002}, "failureMode": "FailOpen"}}}
POOL_ALPHA = {"metadata": meta("old"), "spec": {"targetPortNumber": 8000, "selector": {"app": "ms"},
                                                "extensionRef": {"name": "old-epp"}}}
EPP_SERVICE = {"metadata": meta("pool-epp"), "spec": {"ports": [{"name": "grpc-ext-proc", "port": 9002}]}}
EPP_SLICE = {"metadata": meta("pool-epp-x", labels={"kubernetes.io/service-name": "pool-epp"}),
             "ports": [{"name": "grpc-ext-proc", "port": 9002}],
             "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": True}},
                           {"addresses": ["10.1.2.4"], "conditions": {"ready": False}}]}


def http_route(rules, name="r", **parent):
    return {"metadata": meta(name), "spec": {"parentRefs": [{"name": "gw", **parent}], "rules": rules}}


def pool_rule(path="/", name="pool", group="inference.networking.k8s.io", **extra):
    return {"matches": [{"path": {"type": "PathPrefix", "value": path}}],
            "backendRefs": [{"group": group, "kind": "InferencePool", "name": name}], **extra}


def renderer(routes, controller=KGATEWAY):
    cache = FakeCache({GATEWAY_CLASSES: [], GATEWAYS: [GATEWAY], HTTP_ROUTES: routes, POOLS: [POOL_V1],
                       POOLS_ALPHA: [POOL_ALPHA], SERVICES: [EPP_SERVICE], ENDPOINT_SLICES: [EPP_SLICE]})
    return Renderer(cache, GATEWAY, controller)


def test_gateway_api_matches_and_timeouts_in_envoys_terms():
    assert route_match({}) == {"prefix": "/"}
    assert route_match({"path": {"type": "PathPrefix", "value": "/v1/"}}) == {"path_separated_prefix": "/v1"}
    assert route_match({"path": {"type": "Exact", "value": "/health"}, "method": "GET",
                        "headers": [{"name": "X-Team", "value": "a"}]}) == {
        "path": "/health", "headers": [{"name": "x-team", "string_match": {"exact": "a"}},
                                       {"name": ":method", "string_match": {"exact": "GET"}}]}
    assert route_action({}, "c") == {"cluster": "c"}  # no timeout: Envoy's default 15 s stays
    no_timeout = {"timeouts": {"request": "0s", "backendRequest": "0s"}}
    assert route_action(no_timeout, "c") == {"cluster": "c", "timeout": "0s"}
    assert route_action({"timeouts": {"request": "1m30s"}}, "c")["timeout"] == "90s"
    assert listen_port(KGATEWAY, 80) == 8080 and listen_port(ISTIO, 80) == 80 and listen_port(KGATEWAY, 9000) == 9000


def test_a_pool_route_goes_through_its_pickers_ext_proc_to_the_endpoint_it_names():
    render = renderer([http_route([pool_rule("/v1")])])
    listeners, clusters = render.listeners(), render.clusters()
    manager = listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert listeners[0]["address"]["socket_address"]["port_value"] == 8080
    (route,) = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert route["route"]["cluster"] == "pool/llm-d/pool"
    assert list(route["typed_per_filter_config"]) == ["envoy.filters.http.ext_proc/llm-d/pool"]
    ext_proc = manager["http_filters"][0]
    assert ext_proc["disabled"] is True and ext_proc["typed_config"]["failure_mode_allow"] is True  # FailOpen
    by_name = {c["name"]: c for c in clusters}
    assert by_name["pool/llm-d/pool"]["original_dst_lb_config"]["http_header_name"] == "x-gateway-destination-endpoint"
    endpoints = by_name["epp/llm-d/pool"]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"] for e in endpoints] == [
        {"address": "10.1.2.3", "port_value": 9002}]  # the ready endpoint only


def test_routes_of_other_gateways_or_listeners_are_left_out_and_bad_backends_answer_500():
    render = renderer([
        http_route([pool_rule("/other")], name="elsewhere", **{"sectionName": "https"}),
        {"metadata": meta("foreign"), "spec": {"parentRefs": [{"name": "other-gw"}], "rules": [pool_rule("/x")]}},
        http_route([pool_rule("/missing", name="nope"), pool_rule("/old", name="old",
                                                                  group="inference.networking.x-k8s.io")])])
    routes = render.listeners()[0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"][
        "virtual_hosts"][0]["routes"]
    assert [(r["match"], r.get("direct_response")) for r in routes] == [
        ({"path_separated_prefix": "/missing"}, {"status": 500}), ({"path_separated_prefix": "/old"}, None)]
    old = next(c for c in render.clusters() if c["name"] == "epp/llm-d/old")
    assert old["load_assignment"]["endpoints"] == []  # no such Service: no endpoint, the filter fails closed
    ext_proc = render.listeners()[0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
    assert ext_proc["typed_config"]["failure_mode_allow"] is False  # v1alpha2's default: FailClose


@pytest.mark.parametrize("controller", [ISTIO, KGATEWAY])
def test_envoy_accepts_what_is_rendered(tmp_path, controller):
    render = renderer([http_route([pool_rule("/", timeouts={"request": "300s"}),
                                   pool_rule("/old", name="old", group="inference.networking.x-k8s.io")])],
                      controller)
    config = bootstrap(tmp_path, controller)
    del config["dynamic_resources"]

    def strip(resource):
        return {k: v for k, v in resource.items() if k != "@type"}

    config["static_resources"] = {"listeners": [strip(r) for r in render.listeners()],
                                  "clusters": [strip(r) for r in render.clusters()]}
    (tmp_path / "envoy.json").write_text(json.dumps(config))
    checked = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(tmp_path / "envoy.json")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stderr[-2000:]


def test_files_are_replaced_by_rename_and_only_when_changed(tmp_path):
    path = tmp_path / "lds.json"
    assert write_if_changed(path, {"resources": []}) is True
    inode = path.stat().st_ino
    assert write_if_changed(path, {"resources": []}) is False and path.stat().st_ino == inode
    assert write_if_changed(path, {"resources": [1]}) is True and path.stat().st_ino != inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lds.json"]
