# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory of stack_info: parsing objects recorded from the sandbox's real control plane, and the reads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.llmd.verify.plugins.module_utils import _stack
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import K8sNotFound
from ansible_collections.llmd.verify.tests.unit.plugins.module_utils.stack_fixtures import inventory, named, recorded


# ---- parsing the recorded namespaces ---------------------------------------------------------------------

def test_optimized_baseline_is_standalone_with_envoy_in_front_of_the_epp():
    inv = inventory("optimized-baseline")
    assert inv["mode"] == "standalone"
    assert inv["crds"] == {"gateway_api": True, "inference_pool_v1": True, "inference_pool_v1alpha2": True,
                           "openshift_route": True}
    assert inv["gateways"] == [] and inv["httproutes"] == []
    (epp,) = inv["epp"]
    assert epp["name"] == "optimized-baseline-epp" and epp["service"] == "optimized-baseline-epp"
    assert epp["standalone"] is True and epp["http_port"] == 80 and epp["envoy_container"] == "envoy-proxy"
    assert epp["pool"] == "optimized-baseline" and epp["pool_group"] == "inference.networking.k8s.io"
    assert epp["ready_replicas"] == 1 and epp["metrics_auth"] is True
    (pool,) = inv["inference_pools"]
    assert pool["api_version"] == "inference.networking.k8s.io/v1" and pool["target_ports"] == [8000]
    assert pool["selector"] == {"llm-d.ai/guide": "optimized-baseline"}
    assert pool["endpoint_picker"] == {"name": "optimized-baseline-epp", "kind": "Service", "port": 9002,
                                       "failure_mode": "FailOpen"}
    assert len(pool["pods"]) == 2 and pool["pods"] == pool["ready_pods"]
    pods = inv["model_servers"]["pods"]
    assert [p["role"] for p in pods] == ["decode", "decode"]  # the EPP pod is not a model server
    pod = pods[0]
    assert pod["served_models"] == ["Qwen/Qwen3-32B"] and pod["vllm_port"] == 8200
    assert pod["routing_sidecar"]["port"] == 8000 and pod["routing_sidecar"]["vllm_port"] == 8200
    assert pod["listening_ports"] == [8000, 8200]
    assert [c["name"] for c in pod["containers"]] == ["routing-proxy", "vllm"]  # the native sidecar first
    assert pod["containers"][0]["sidecar"] is True and pod["ready"] is True


def test_an_epp_serving_http_itself_is_standalone_too():
    def epp_http_itself(r):  # GAIE's older standalone EPP (--http-port), as the pd-disaggregation scenario runs it
        spec = named(r["deployments"], "optimized-baseline-epp")["spec"]["template"]["spec"]
        spec["containers"] = [c for c in spec["containers"] if c["name"] == "epp"]
    inv = inventory("optimized-baseline", epp_http_itself)
    assert inv["mode"] == "standalone" and inv["epp"][0]["envoy_container"] is None
    assert inv["epp"][0]["http_port"] == 80


def test_sim_gateway_route_and_the_v1alpha2_pool():
    inv = inventory("sim")
    assert inv["mode"] == "gateway"
    (gateway,) = inv["gateways"]
    assert gateway["class"] == "kgateway" and gateway["controller"] == "kgateway.dev/kgateway"
    assert gateway["accepted"]["status"] == "True" and gateway["programmed"]["status"] == "True"
    assert gateway["addresses"] and gateway["services"][0]["type"] == "LoadBalancer"
    assert gateway["listeners"] == [{"name": "default", "port": 80, "protocol": "HTTP", "hostname": None}]
    (route,) = inv["httproutes"]
    (backend,) = route["backends"]
    assert backend["group"] == "inference.networking.x-k8s.io" and backend["resolves"] is True
    assert backend["found_in_groups"] == ["inference.networking.x-k8s.io"]
    assert route["timeouts"] == [{"rule": 0, "request": "0s", "backend_request": "0s"}]
    (parent,) = route["parents"]
    assert parent["reported"] and parent["accepted"]["status"] == "True" and parent["resolved_refs"]["status"] == "True"
    (pool,) = inv["inference_pools"]
    assert pool["version"] == "v1alpha2" and pool["target_ports"] == [8000] and len(pool["pods"]) == 3
    assert pool["parents"][0]["gateway"] == "infra-sim-inference-gateway"
    roles = sorted(p["role"] for p in inv["model_servers"]["pods"])
    assert roles == ["decode", "decode", "prefill"]  # the kgateway proxy pod is not a model server
    assert {m for p in inv["model_servers"]["pods"] for m in p["served_models"]} == {"random"}
    assert inv["epp"][0]["standalone"] is False and inv["epp"][0]["pool_group"] == "inference.networking.x-k8s.io"


def test_crashloop_pod_is_crash_looping_with_its_last_exit():
    pod = inventory("crashloop")["model_servers"]["pods"][0]
    vllm = next(c for c in pod["containers"] if c["name"] == "vllm")
    assert pod["ready"] is False and vllm["crash_looping"] is True
    assert vllm["waiting_reason"] == "CrashLoopBackOff" and vllm["restarts"] >= 1
    assert vllm["last_termination"]["exit_code"] == 1 and vllm["last_termination"]["reason"] == "Error"


def test_inference_scheduling_istio_gateway_and_v1_pool():
    inv = inventory("inference-scheduling")
    gateway = inv["gateways"][0]
    assert gateway["controller"] == "istio.io/gateway-controller"
    assert gateway["addresses"][0].endswith(".svc.cluster.local")
    assert [s["name"] for s in gateway["services"]] == ["infra-inference-scheduling-inference-gateway-istio"]
    assert inv["httproutes"][0]["backends"][0]["resolves"] is True
    assert len(inv["inference_pools"][0]["ready_pods"]) == 2


def test_guide_leaves_out_pods_of_another_guide():
    def relabel(raw):
        named(raw["pods"], "optimized-baseline-decode")["metadata"]["labels"]["llm-d.ai/guide"] = "other"
    inv = inventory("optimized-baseline", relabel, guide="optimized-baseline")
    assert len(inv["model_servers"]["pods"]) == 1 and len(inv["inference_pools"][0]["pods"]) == 1


def test_unread_kinds_are_none_not_empty():
    def refuse(raw):
        raw["gateways"] = raw["httproutes"] = raw["pods"] = None
    inv = inventory("sim", refuse)
    assert inv["gateways"] is None and inv["httproutes"] is None and inv["pods_read"] is False
    assert inv["model_servers"]["pods"] == []


# ---- pure helpers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [
    ("10s", 10), ("300s", 300), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("0s", 0), ("", None), ("10", None),
    ("ten", None), (None, None)])
def test_gateway_duration_seconds(value, seconds):
    assert _stack.gateway_duration_seconds(value) == seconds


@pytest.mark.parametrize("container, models", [
    ({"args": ["--model", "m", "--served-model-name", "a", "b", "--port", "8200"]}, ["a", "b"]),
    ({"args": ["--served-model-name=a"]}, ["a"]),
    ({"args": ["--model", "Qwen/Qwen3-0.6B"]}, ["Qwen/Qwen3-0.6B"]),
    ({"args": ["Qwen/Qwen3-32B", "--port", "8200"]}, ["Qwen/Qwen3-32B"]),
    ({"command": ["vllm", "serve", "meta/llama"], "args": ["--port", "8000"]}, ["meta/llama"]),
    ({"command": ["/bin/sh", "-c", "exec vllm serve 'org/m' --port 8200"]}, ["org/m"]),
    ({"command": ["python3", "-m", "x"], "args": ["--port", "1"]}, []),
])
def test_served_models(container, models):
    assert _stack.served_models(container) == models


def test_selector_matches_labels_and_expressions():
    labels = {"a": "1", "b": "2"}
    assert _stack.selector_matches({"a": "1"}, [], labels)
    assert not _stack.selector_matches({"a": "2"}, [], labels)
    assert not _stack.selector_matches({}, [], labels)  # an empty pool selector selects nothing
    assert _stack.selector_matches({}, [{"key": "b", "operator": "In", "values": ["2", "3"]}], labels)
    assert not _stack.selector_matches({}, [{"key": "c", "operator": "Exists"}], labels)


# ---- reading: one list per kind, discovery first, refusals recorded ----------------------------------------

class SerialExecutor(ThreadPoolExecutor):
    """Reads in order, so a test can read the request log."""

    def __init__(self, max_workers=None):
        super().__init__(max_workers=1)


def fake_get(scenario, forbidden=(), status=403, not_found=()):
    data = recorded(scenario)
    by_path = {"/apis": data["apis"]}
    for key, (group, version, plural, namespaced, _family) in _stack.READS.items():
        path = _stack._path(group, version, plural, namespaced).replace("{namespace}", data["namespace"])
        by_path[path] = data.get(key)
    requests = []

    def get(api_client, path, query=None, **kwargs):
        path = path.replace("{namespace}", kwargs.get("namespace") or "")
        requests.append(path)
        if any(word in path for word in forbidden):
            raise LlmdError("the Kubernetes credentials may not list it (403 Forbidden)", hint="grant it",
                            status=status, verb="list", resource=kwargs["resource"])
        if any(word in path for word in not_found) or by_path.get(path) is None:
            raise K8sNotFound("not found", status=404)
        return by_path[path]
    return get, requests


def test_read_objects_lists_each_kind_once(monkeypatch):
    get, requests = fake_get("sim")
    monkeypatch.setattr(_stack, "k8s_get", get)
    raw = _stack.read_objects(None, "llm-d-sim", executor=SerialExecutor)
    assert requests[0] == "/apis" and len(requests) == len(set(requests)) == 1 + len(_stack.READS)
    assert len(raw["pods"]) == 5 and raw["refused"] == [] and raw["crds"]["gateway_api"] is True


def test_read_objects_skips_kinds_whose_crd_is_not_served(monkeypatch):
    get, requests = fake_get("sim")
    apis = recorded("sim")["apis"]
    apis["groups"] = [g for g in apis["groups"] if g["name"] not in ("gateway.networking.k8s.io", "route.openshift.io")]
    monkeypatch.setattr(_stack, "k8s_get", lambda client, path, *a, **k: apis if path == "/apis" else get(client, path,
                                                                                                          *a, **k))
    raw = _stack.read_objects(None, "llm-d-sim", executor=SerialExecutor)
    assert raw["gateways"] is None and raw["routes"] is None
    assert raw["crds"]["gateway_api"] is False and raw["crds"]["openshift_route"] is False
    assert not any("gateway.networking" in path for path in requests)


def test_a_refused_read_is_recorded_and_the_rest_carries_on(monkeypatch):
    get, _requests = fake_get("sim", forbidden=("gatewayclasses",))
    monkeypatch.setattr(_stack, "k8s_get", get)
    raw = _stack.read_objects(None, "llm-d-sim", executor=SerialExecutor)
    assert raw["gatewayclasses"] is None and len(raw["gateways"]) == 1
    (refused,) = raw["refused"]
    assert refused["read"] == "gatewayclasses" and refused["namespace"] is None and refused["status"] == 403
    inv = _stack.build_inventory(raw, "llm-d-sim")
    assert inv["gateways"][0]["class_found"] is None and inv["gateways"][0]["controller"] is None


def test_refused_discovery_falls_back_to_reading_every_kind(monkeypatch):
    get, requests = fake_get("sim", forbidden=("/apis",))

    def get_but_lists(client, path, *args, **kwargs):
        if path == "/apis":
            return get(client, path, *args, **kwargs)
        return fake_get("sim", not_found=("route.openshift.io",))[0](client, path, *args, **kwargs)
    monkeypatch.setattr(_stack, "k8s_get", get_but_lists)
    raw = _stack.read_objects(None, "llm-d-sim", executor=SerialExecutor)
    assert raw["refused"][0]["read"] == "discovery" and len(requests) == 1
    assert raw["crds"]["gateway_api"] is True and raw["crds"]["openshift_route"] is False  # 404: not installed
    assert raw["routes"] is None and len(raw["gateways"]) == 1


def test_401_stops_everything(monkeypatch):
    get, _requests = fake_get("sim", forbidden=("pods",), status=401)
    monkeypatch.setattr(_stack, "k8s_get", get)
    with pytest.raises(LlmdError):
        _stack.read_objects(None, "llm-d-sim", executor=SerialExecutor)


def test_previous_logs_are_read_only_for_crash_looping_containers():
    inv = inventory("crashloop")
    calls = []
    _stack.add_previous_logs(None, inv, lines=5, read=lambda c, ns, pod, container, lines: calls.append(
        (ns, pod, container, lines)) or ["boom"])
    assert calls == [("llm-d-crashloop", inv["model_servers"]["pods"][0]["name"], "vllm", 5)]
    assert next(c for c in inv["model_servers"]["pods"][0]["containers"] if c["name"] == "vllm")["previous_log"] == [
        "boom"]
    assert _stack.add_previous_logs(None, inventory("sim"), lines=0, read=None)  # 0 lines: no read at all
