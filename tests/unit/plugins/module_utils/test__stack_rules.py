# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each rule of stack_info on recorded namespaces, healthy and changed the way users break them."""

from __future__ import annotations

import pytest

from ansible_collections.llmd.verify.plugins.module_utils import _stack_rules as rules
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.tests.unit.plugins.module_utils.stack_fixtures import (
    inventory,
    named,
    previous_log,
    raw,
)

HEALTHY = ("optimized-baseline", "sim", "inference-scheduling")


def found(scenario, rule=None, mutate=None, guide=None, **opts):
    problems = rules.find_problems(inventory(scenario, mutate, guide=guide), opts)
    return [p for p in problems if rule is None or p["rule"] == rule]


def one(scenario, rule, mutate=None, **opts):
    matching = found(scenario, rule, mutate, **opts)
    assert len(matching) == 1, found(scenario, None, mutate, **opts)
    return matching[0]


@pytest.mark.parametrize("scenario", HEALTHY)
def test_healthy_scenarios_have_no_error(scenario):
    assert [p for p in found(scenario) if p["severity"] == "error"] == []


def test_every_problem_has_its_fields_and_errors_come_first():
    problems = found("crashloop", mutate=lambda r: r["pods"][0]["spec"]["containers"][0].update(args=[]))
    assert problems and all(set(p) == {"rule", "severity", "object", "message", "hint"} and p["hint"] for p in problems)
    assert [p["severity"] for p in problems] == sorted((p["severity"] for p in problems), key=rules.SEVERITIES.index)


# ---- the way in ----------------------------------------------------------------------------------------

def test_no_gateway_and_no_standalone_epp():
    def drop(r):
        r["gateways"], r["httproutes"] = [], []
    p = one("sim", "no_entrypoint", drop)
    assert p["severity"] == "error" and "no Gateway" in p["message"] and "no HTTP front" in p["message"]
    assert "llm-d-router-standalone" in p["hint"]


def test_a_namespace_with_nothing_in_it_is_named_as_such():
    def empty(r):
        for key in ("gateways", "httproutes", "pods", "services", "deployments", "ingresses", "routes",
                    "inferencepools", "inferencepools_v1alpha2"):
            if r.get(key) is not None:
                r[key] = []
    p = one("sim", "namespace_empty", empty)
    assert p["severity"] == "error" and "does not exist" in p["message"] and "llmd_namespace" in p["hint"]
    endpoint_failure = {"msg": "no gateway endpoint found in namespace nope. route: no Route ..."}
    assert rules.explaining_problem(endpoint_failure, found("sim", mutate=empty))["rule"] == "namespace_empty"
    assert found("sim", "namespace_empty") == []


def test_no_entrypoint_names_the_missing_gateway_api_as_what_it_means():
    def no_crds(r):
        r["gateways"] = r["httproutes"] = r["gatewayclasses"] = None
        r["crds"]["gateway_api"] = False
        r["deployments"] = [d for d in r["deployments"] if not d["metadata"]["name"].endswith("-epp")]
    p = one("sim", "no_entrypoint", no_crds)
    assert "Gateway API CRDs" in p["message"] and "no EPP Deployment" in p["message"]
    assert "install the Gateway API CRDs first" in p["hint"]


def test_missing_gateway_api_is_no_problem_in_standalone_mode():
    def no_crds(r):
        r["gateways"] = r["httproutes"] = r["gatewayclasses"] = r["routes"] = None
        r["crds"].update(gateway_api=False, openshift_route=False, inference_pool_v1alpha2=False)
    assert [p for p in found("optimized-baseline", mutate=no_crds) if p["severity"] != "info"] == []


def _pending(r):
    gateway = r["gateways"][0]
    gateway["spec"]["gatewayClassName"] = "nobody"
    gateway["status"] = {"conditions": [{"type": "Accepted", "status": "Unknown", "reason": "Pending",
                                         "message": "Waiting for controller"}]}
    r["httproutes"][0]["status"] = {}


def test_gateway_of_a_class_nobody_runs():
    p = one("sim", "gateway_not_accepted", _pending)
    assert p["severity"] == "error" and "GatewayClass nobody does not exist" in p["message"]
    assert found("sim", "route_not_reported", _pending) == []  # the gateway explains the silent route


def test_gateway_of_an_existing_class_whose_controller_does_not_run():
    def pending_kgateway(r):
        _pending(r)
        r["gateways"][0]["spec"]["gatewayClassName"] = "kgateway"
    p = one("sim", "gateway_not_accepted", pending_kgateway)
    assert "no controller has accepted" in p["message"] and "kgateway.dev/kgateway" in p["message"]
    assert "gateway provider" in p["hint"]


def test_gateway_accepted_but_without_an_address():
    def no_address(r):
        status = r["gateways"][0]["status"]
        status.pop("addresses")
        status["conditions"][1].update(status="False", reason="AddressNotAssigned")
    p = one("sim", "gateway_no_address", no_address)
    assert "AddressNotAssigned" in p["message"] and "EXTERNAL-IP" in p["hint"]


def test_gateway_not_programmed_is_a_warning():
    def unprogrammed(r):
        r["gateways"][0]["status"]["conditions"][1].update(status="False", reason="Invalid")
    assert one("sim", "gateway_not_programmed", unprogrammed)["severity"] == "warning"


# ---- HTTPRoutes ------------------------------------------------------------------------------------------

def _route_to(group):
    def mutate(r):
        r["httproutes"][0]["spec"]["rules"][0]["backendRefs"][0]["group"] = group
    return mutate


def test_route_to_the_other_pool_group():
    p = one("sim", "route_pool_other_group", _route_to("inference.networking.k8s.io"))
    assert "exists only in group inference.networking.x-k8s.io" in p["message"]
    assert "set backendRefs[].group to inference.networking.x-k8s.io" in p["hint"]


def test_route_to_a_missing_pool_and_to_an_uninstalled_group():
    def missing(r):
        r["httproutes"][0]["spec"]["rules"][0]["backendRefs"][0]["name"] = "nope"
    assert "does not exist" in one("sim", "route_pool_missing", missing)["message"]

    def uninstalled(r):
        _route_to("inference.networking.k8s.io")(r)
        r["inferencepools"] = None
        r["crds"]["inference_pool_v1"] = False
    assert "(whose CRD is not installed)" in one("sim", "route_pool_other_group", uninstalled)["message"]

    def uninstalled_and_missing(r):
        uninstalled(r)
        missing(r)
    assert "CRD is not installed" in one("sim", "route_pool_missing", uninstalled_and_missing)["message"]


def test_route_refs_unresolved_invalid_kind():
    def invalid(r):
        conditions = r["httproutes"][0]["status"]["parents"][0]["conditions"]
        next(c for c in conditions if c["type"] == "ResolvedRefs").update(
            status="False", reason="InvalidKind", message="unsupported backendRef kind")
    p = one("sim", "route_refs_unresolved", invalid)
    assert "InvalidKind" in p["message"] and "inference.networking.k8s.io" in p["hint"]


def test_route_not_accepted_and_not_reported():
    def refused(r):
        next(c for c in r["httproutes"][0]["status"]["parents"][0]["conditions"] if c["type"] == "Accepted").update(
            status="False", reason="NotAllowedByListeners")
    assert "NotAllowedByListeners" in one("sim", "route_not_accepted", refused)["message"]
    assert one("sim", "route_not_reported", lambda r: r["httproutes"][0].update(status={}))["severity"] == "warning"


def test_route_attached_to_a_missing_gateway():
    def elsewhere(r):
        r["httproutes"][0]["spec"]["parentRefs"][0]["name"] = "gone"
    assert "does not exist" in one("sim", "route_parent_missing", elsewhere)["message"]


@pytest.mark.parametrize("timeouts, expected", [
    ({"request": "10s"}, "timeouts.request 10s (10 s)"),
    ({"request": "0s", "backendRequest": "1m"}, "timeouts.backendRequest 1m (60 s)"),
    ({}, "provider's default (kgateway.dev/kgateway) of 15 s"),
    ({"request": "300s"}, None),
    ({"request": "0s"}, None),
])
def test_route_timeouts(timeouts, expected):
    def set_timeouts(r):
        rule = r["httproutes"][0]["spec"]["rules"][0]
        rule.pop("timeouts")
        if timeouts:
            rule["timeouts"] = timeouts
    problems = found("sim", "route_timeout_short", set_timeouts)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0]["message"] and "300s" in problems[0]["hint"]


def test_istio_default_timeout_is_off():
    def unset(r):
        r["httproutes"][0]["spec"]["rules"][0].pop("timeouts")
    assert found("inference-scheduling", "route_timeout_short", unset) == []


def test_min_route_timeout_option():
    assert found("sim", "route_timeout_short", _set_request("100s"), min_route_timeout=60) == []
    assert len(found("sim", "route_timeout_short", _set_request("100s"))) == 1


def _set_request(value):
    def mutate(r):
        r["httproutes"][0]["spec"]["rules"][0]["timeouts"]["request"] = value
    return mutate


def _openshift_route(annotations):
    def mutate(r):
        r["routes"] = [{"metadata": {"name": "gw", "annotations": annotations},
                        "spec": {"host": "gw.apps.example", "to": {"name": "infra-sim-inference-gateway"}},
                        "status": {"ingress": [{"conditions": [{"type": "Admitted", "status": "True"}]}]}}]
    return mutate


@pytest.mark.parametrize("annotations, expected", [
    ({}, "default of 30 s"), ({"haproxy.router.openshift.io/timeout": "60s"}, "(60 s), under 300 s"),
    ({"haproxy.router.openshift.io/timeout": "10m"}, None)])
def test_openshift_route_timeout(annotations, expected):
    problems = found("sim", "route_timeout_short", _openshift_route(annotations))
    assert [expected in p["message"] for p in problems] == ([True] if expected else [])
    assert all("oc annotate" in p["hint"] for p in problems)


def test_ingress_without_address_and_route_not_admitted():
    def exposed(r):
        _openshift_route({"haproxy.router.openshift.io/timeout": "10m"})(r)
        r["routes"][0]["status"] = {}
        r["ingresses"] = [{"metadata": {"name": "gw"}, "spec": {"ingressClassName": "nginx"}, "status": {}}]
    assert "class nginx" in one("sim", "ingress_no_address", exposed)["message"]
    assert one("sim", "route_not_admitted", exposed)["severity"] == "warning"


# ---- pools and the EPP ----------------------------------------------------------------------------------

def test_pool_whose_selector_matches_nothing():
    def select_nothing(r):
        r["inferencepools"][0]["spec"]["selector"]["matchLabels"] = {"app": "nothing"}
    p = one("optimized-baseline", "pool_selects_nothing", select_nothing)
    assert "app=nothing" in p["message"] and "llm-d.ai/guide=optimized-baseline" in p["hint"]


def test_pool_selector_with_the_renamed_serving_label():
    def old_label(r):
        for pod in r["pods"]:
            labels = pod["metadata"]["labels"]
            if "llm-d.ai/inferenceServing" in labels:
                labels["llm-d.ai/inference-serving"] = labels.pop("llm-d.ai/inferenceServing")
    assert "renamed the label in v0.4.5" in one("sim", "pool_selects_nothing", old_label)["hint"]


def test_pool_target_port_nobody_listens_on():
    def port(r):
        r["inferencepools"][0]["spec"]["targetPorts"] = [{"number": 9999}]
    p = one("optimized-baseline", "pool_target_port_unserved", port)
    assert "port 9999" in p["message"] and "8000, 8200" in p["message"]
    assert "set the pool's target port to 8000 (the routing-proxy sidecar's port)" in p["hint"]


def test_pool_whose_epp_service_is_missing():
    def rename(r):
        r["inferencepools_v1alpha2"][0]["spec"]["extensionRef"]["name"] = "gone-epp"
    assert "gone-epp" in one("sim", "pool_epp_missing", rename)["message"]


def test_epp_not_ready():
    def unready(r):
        named(r["deployments"], "gaie-sim-epp")["status"]["readyReplicas"] = 0
        pod = named(r["pods"], "gaie-sim-epp")
        next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] = "False"
        pod["status"]["containerStatuses"][0].update(ready=False)
    p = one("sim", "epp_not_ready", unready)
    assert "no Ready pod" in p["message"] and "container epp is not Ready" in p["message"]


def test_epp_watching_a_pool_of_the_other_group():
    def group(r):
        args = named(r["deployments"], "gaie-sim-epp")["spec"]["template"]["spec"]["containers"][0]["args"]
        args[args.index("--pool-group") + 1] = "inference.networking.k8s.io"
    p = one("sim", "epp_pool_missing", group)
    assert "exists in group inference.networking.x-k8s.io" in p["message"] and "--pool-group" in p["hint"]


def test_epp_metrics_need_a_token_unless_auth_is_off():
    assert one("optimized-baseline", "epp_metrics_need_token")["severity"] == "info"

    def auth_off(r):
        container = named(r["deployments"], "optimized-baseline-epp")["spec"]["template"]["spec"]["containers"][1]
        container["args"].append("--metrics-endpoint-auth=false")
    assert found("optimized-baseline", "epp_metrics_need_token", auth_off) == []


# ---- model servers --------------------------------------------------------------------------------------

def test_crashloop_names_the_crash_and_cuda_oom_from_the_previous_log():
    inv = inventory("crashloop")
    next(c for c in inv["model_servers"]["pods"][0]["containers"] if c["name"] == "vllm")["previous_log"] = \
        previous_log()
    (p,) = [p for p in rules.find_problems(inv, {}) if p["rule"] == "no_ready_decode"]
    assert "crash-looping" in p["message"] and "last exit 1 Error" in p["message"]
    assert "torch.OutOfMemoryError: CUDA out of memory" in p["message"]  # the telling line of its previous run
    assert "ran out of GPU memory" in p["hint"] and "--gpu-memory-utilization" in p["hint"]


def test_oomkilled_hint():
    def oom(r):
        status = named(r["pods"], "ms-crashloop")["status"]["containerStatuses"][0]
        status["lastState"]["terminated"].update(reason="OOMKilled", exitCode=137)
    assert "OOMKilled" in one("crashloop", "no_ready_decode", oom)["hint"]


def _not_ready(r, **container_status):
    for pod in r["pods"]:
        if pod["metadata"]["labels"].get("llm-d.ai/role") == "decode":
            next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] = "False"
            for status in pod["status"]["containerStatuses"]:
                status.update(ready=False, **container_status)


def test_decode_pods_running_but_not_ready_are_still_loading():
    p = one("optimized-baseline", "no_ready_decode", _not_ready)
    assert "running but not Ready (readiness probe httpGet /health:8200)" in p["message"]
    assert "routing-proxy sidecar answers 502/503" in p["message"] and "wait for the model to load" in p["hint"]


def test_decode_pod_that_cannot_pull_its_image():
    p = one("optimized-baseline", "no_ready_decode", lambda r: _not_ready(
        r, state={"waiting": {"reason": "ImagePullBackOff"}}))
    assert "cannot pull image vllm/vllm-openai" in p["message"] and "pull secret" in p["hint"]


def test_decode_pod_not_scheduled():
    def unschedulable(r):
        _not_ready(r)
        for pod in r["pods"]:
            if pod["metadata"]["labels"].get("llm-d.ai/role") == "decode":
                next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled").update(
                    status="False", reason="Unschedulable", message="0/1 nodes are available: Insufficient nvidia.com/gpu")
    p = one("optimized-baseline", "no_ready_decode", unschedulable)
    assert "Insufficient nvidia.com/gpu" in p["message"] and "GPUs" in p["hint"]


def test_one_of_two_decode_pods_not_ready_is_a_warning():
    def first(r):
        pod = named(r["pods"], "optimized-baseline-decode")
        next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] = "False"
        pod["status"]["containerStatuses"][0]["ready"] = False
    p = one("optimized-baseline", "pod_not_ready", first)
    assert p["severity"] == "warning" and "(1 of 2 are)" in p["message"]


def test_no_ready_prefill_pod():
    def prefill_down(r):
        pod = named(r["pods"], "ms-sim-llm-d-modelservice-prefill")
        next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] = "False"
    assert one("sim", "no_ready_prefill", prefill_down)["severity"] == "error"


def test_no_model_server_pods_at_all():
    def gone(r):
        r["pods"] = [p for p in r["pods"] if not p["metadata"]["name"].startswith("optimized-baseline-decode")]
    assert one("optimized-baseline", "no_decode_pods", gone)["severity"] == "error"


def test_routing_sidecar_expected_and_unexpected():
    assert found("optimized-baseline", "routing_sidecar_missing", expect_routing_sidecar=True) == []
    assert len(found("optimized-baseline", "routing_sidecar_unexpected", expect_routing_sidecar=False)) == 2

    def no_sidecar(r):
        for pod in r["pods"]:
            pod["spec"].pop("initContainers", None)
    assert len(found("optimized-baseline", "routing_sidecar_missing", no_sidecar, expect_routing_sidecar=True)) == 2
    assert found("optimized-baseline", "routing_sidecar_missing", no_sidecar) == []  # not asked


def test_routing_sidecar_pointing_at_the_wrong_vllm_port():
    def wrong(r):
        for pod in r["pods"]:
            for container in pod["spec"].get("initContainers") or []:
                container["args"] = ["--port=8000", "--vllm-port=8300"]
    problems = found("optimized-baseline", "routing_sidecar_port_mismatch", wrong)
    assert len(problems) == 2 and "forwards to vLLM on port 8300, but vLLM listens on 8200" in problems[0]["message"]


def test_served_model_that_differs_from_the_expected_one():
    p = one("optimized-baseline", "model_not_served", model="Qwen/Qwen3-0.6B")
    assert "they serve Qwen/Qwen3-32B" in p["message"] and "Qwen/Qwen3-32B" in p["hint"]
    assert found("optimized-baseline", "model_not_served", model="Qwen/Qwen3-32B") == []


# ---- reads refused --------------------------------------------------------------------------------------

def test_refused_read_is_a_warning_and_unread_pods_conclude_nothing():
    def refuse(r):
        r["pods"] = None
        r["refused"] = [{"read": "pods", "verb": "list", "resource": "pods", "namespace": "llm-d-sim", "status": 403,
                         "message": "forbidden", "hint": "grant"}]
    problems = found("sim", mutate=refuse)
    assert [p["rule"] for p in problems if p["severity"] != "info"] == ["read_refused"]
    assert "grant 'list' on 'pods'" in problems[0]["hint"]


# ---- the entry point -------------------------------------------------------------------------------------

def test_stack_info_reads_describes_and_judges():
    logs = []
    result = rules.stack_info(None, {"namespace": "llm-d-crashloop", "previous_log_lines": 3},
                              read=lambda client, ns: raw("crashloop"),
                              previous_logs=lambda client, inv, lines: logs.append(lines))
    assert logs == [3] and result["mode"] == "gateway" and result["summary"]["error"] == 1
    assert result["problems"][0]["rule"] == "no_ready_decode" and result["inventory"]["namespace"] == "llm-d-crashloop"


def test_stack_info_refuses_a_bad_namespace():
    with pytest.raises(LlmdError):
        rules.stack_info(None, {"namespace": "Not_A_Namespace"}, read=None)


# ---- which problem explains a failed check ---------------------------------------------------------------

CRASHLOOP_PROBLEMS = rules.find_problems(inventory("crashloop"), {"model": "Qwen/Qwen3-0.6B"})


@pytest.mark.parametrize("result, rule", [
    ({"status": 503, "error": {"message": "no healthy upstream"}}, "no_ready_decode"),
    ({"status": 500, "error": {"message": "inference gateway: Internal - no pods available in datastore"}},
     "no_ready_decode"),
    ({"status": 502, "error": {"body": ""}}, "no_ready_decode"),
    ({"status": 404, "error": {"message": "The model `Qwen/Qwen3-0.6B` does not exist.", "type": "NotFoundError"}},
     "model_not_served"),
    ({"status": 401, "msg": "reading the EPP's metrics"}, "epp_metrics_need_token"),
    ({"status": 404, "error": {"message": "404 page not found"}}, None),  # no route problem in this namespace
    ({"status": 200, "msg": "the answer has no choices"}, None),
    ("not a result", None),
])
def test_explaining_problem(result, rule):
    found = rules.explaining_problem(result, CRASHLOOP_PROBLEMS)
    assert (found or {}).get("rule") == rule


def test_a_short_route_timeout_explains_a_504():
    problems = found("sim", mutate=_set_request("10s"))
    assert rules.explaining_problem({"status": 504}, problems)["rule"] == "route_timeout_short"
    assert rules.explaining_problem({"phase": "connect", "msg": "connection refused"}, problems) is None
