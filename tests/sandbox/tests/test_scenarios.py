"""The scenario files: valid, and shaped as the llm-d charts make a deployment (FACTS.md section 1).

These read the data only; test_runtime.py starts every scenario.
"""

import functools
import re

import pytest

from llmd_sandbox import scenario as scenarios
from llmd_sandbox.node import flag_value, is_vllm, milliseconds
from llmd_sandbox.kube import resource_for

NAMES = scenarios.names()
# `echo` is the sandbox's own test server for the Kubernetes-side fidelity tests, not an llm-d deployment.
LLM_D = [name for name in NAMES if name != "echo"]
STANDALONE = ("optimized-baseline", "pd-disaggregation", "simulated-accelerators")  # guides with no Gateway
GATEWAY_SERVICE_REGEX = re.compile(r".*-inference-gateway(-.*)?$")  # the seed's


@functools.cache
def load(name):
    return scenarios.load(name)


def objects(name, kind):
    return [o for o in load(name).objects if o["kind"] == kind]


def pod_templates(name):
    return [(d["metadata"]["name"], d["spec"]["template"]) for d in objects(name, "Deployment")]


def test_the_issue_lists_every_scenario():
    assert set(LLM_D) == {
        "sim", "inference-scheduling", "optimized-baseline", "pd-disaggregation", "nodeport", "ingress",
        "ingress-hostname", "openshift-route", "warming-up", "no-healthy-upstream", "crashloop", "two-gateways",
        "no-gateway", "simulated-accelerators",  # today's guide, every component real
        "faults"}  # the sim stack with a fault sidecar, for tests/integration/targets/faults


def test_an_unknown_scenario_names_the_known_ones():
    with pytest.raises(scenarios.ScenarioError, match="known: crashloop, echo, faults, inference-scheduling"):
        scenarios.load("nope")


@pytest.mark.parametrize("name", NAMES)
def test_every_object_is_a_kind_the_api_server_serves(name):
    scenario = load(name)
    assert scenario.namespace in {o["metadata"]["name"] for o in objects(name, "Namespace")}
    for obj in scenario.objects:
        assert resource_for(obj["apiVersion"], obj["kind"]) is not None, obj["kind"]


# simulated-accelerators renders today's guide, whose decode pods run without the routing sidecar
@pytest.mark.parametrize("name", [n for n in LLM_D if n != "simulated-accelerators"])
def test_decode_pods_carry_the_chart_labels_and_the_routing_proxy_native_sidecar(name):
    decode = [(n, t) for n, t in pod_templates(name) if t["metadata"]["labels"].get("llm-d.ai/role") == "decode"]
    assert decode, "every scenario has decode pods"
    for deployment, template in decode:
        labels = template["metadata"]["labels"]
        assert "true" in (labels.get("llm-d.ai/inferenceServing"), labels.get("llm-d.ai/inference-serving")), deployment
        proxies = [c for c in template["spec"].get("initContainers", []) if c["name"] == "routing-proxy"]
        assert proxies and proxies[0]["restartPolicy"] == "Always", deployment
        assert "llm-d-routing-sidecar" in proxies[0]["image"]
        assert not any(c["name"] == "routing-proxy" for c in template["spec"]["containers"])
        vllm = next(c for c in template["spec"]["containers"] if c["name"] == "vllm")
        assert flag_value(vllm["args"], "--port") == "8200" and flag_value(proxies[0]["args"], "--vllm-port") == "8200"


@pytest.mark.parametrize("name", LLM_D)
def test_model_servers_declare_ttft_and_itl(name):
    for deployment, template in pod_templates(name):
        for container in template["spec"]["containers"]:
            if is_vllm(container):
                # Go durations for the real simulator (`20ms`), bare milliseconds for the sandbox's vLLM
                assert milliseconds(flag_value(container["args"], "--time-to-first-token")) > 0, deployment
                assert milliseconds(flag_value(container["args"], "--inter-token-latency")) > 0, deployment


def test_one_scenario_varies_ttft_between_pods():
    ttfts = {flag_value(c["args"], "--time-to-first-token")
             for _name, t in pod_templates("pd-disaggregation") for c in t["spec"]["containers"] if is_vllm(c)}
    assert len(ttfts) == 2


@pytest.mark.parametrize("name", [n for n in LLM_D if n not in ("no-gateway", *STANDALONE)])
def test_gateway_services_match_the_seed_regex_and_carry_the_gateway_name_label(name):
    gateways = {g["metadata"]["name"] for g in objects(name, "Gateway")}
    services = [s for s in objects(name, "Service") if GATEWAY_SERVICE_REGEX.match(s["metadata"]["name"])]
    assert gateways and len(services) == len(gateways)
    for service in services:
        assert service["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"] in gateways
        assert 80 in [p["port"] for p in service["spec"]["ports"]]
    for gateway in objects(name, "Gateway"):
        assert gateway["metadata"]["labels"]["app.kubernetes.io/component"] == "inference-gateway"
        assert [listener["port"] for listener in gateway["spec"]["listeners"]] == [80]


@pytest.mark.parametrize("name", STANDALONE)
def test_standalone_guides_have_no_gateway_and_an_epp_service_fronting_http(name):
    assert not objects(name, "Gateway") and not objects(name, "HTTPRoute")
    epp = next(s for s in objects(name, "Service") if s["metadata"]["name"] == f"{name}-epp")
    assert sorted(p["port"] for p in epp["spec"]["ports"]) == [80, 9002, 9090]
    for _name, template in pod_templates(name):
        if "llm-d.ai/role" in template["metadata"]["labels"]:
            assert template["metadata"]["labels"]["llm-d.ai/guide"] == name


def test_istio_gateway_service_has_status_and_http_ports():
    service = next(s for s in objects("inference-scheduling", "Service")
                   if s["metadata"]["name"] == "infra-inference-scheduling-inference-gateway-istio")
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in service["spec"]["ports"]] == [15021, 80]


def test_httproutes_point_at_a_pool_of_their_scenario_in_its_api_group():
    for name in LLM_D:
        pools = {(p["apiVersion"].split("/")[0], p["metadata"]["name"]) for p in objects(name, "InferencePool")}
        for route in objects(name, "HTTPRoute"):
            for rule in route["spec"]["rules"]:
                for ref in rule["backendRefs"]:
                    assert (ref["group"], ref["name"]) in pools, (name, ref)


def test_both_inference_pool_api_groups_are_covered():
    groups = {p["apiVersion"] for n in LLM_D for p in objects(n, "InferencePool")}
    assert groups == {"inference.networking.k8s.io/v1", "inference.networking.x-k8s.io/v1alpha2"}


def test_two_gateways_is_the_seeds_listing():
    names = sorted(s["metadata"]["name"] for s in objects("two-gateways", "Service")
                   if GATEWAY_SERVICE_REGEX.match(s["metadata"]["name"]))
    assert names == ["infra-inference-scheduling-inference-gateway-istio", "infra-sim-inference-gateway"]


def test_no_gateway_has_model_servers_only():
    kinds = {o["kind"] for o in load("no-gateway").objects}
    assert kinds == {"Namespace", "Deployment"}
