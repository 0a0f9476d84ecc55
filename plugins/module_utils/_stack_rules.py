# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is wrong with an llm-d namespace, from its inventory (_stack.build_inventory): pure rules.

stack_info() at the end is the module's one call: read (_stack), describe, then these rules.

Each rule takes the inventory and the options (model, expect_routing_sidecar, min_route_timeout) and returns
problems, ``{rule, severity, object, message, hint}``:

- ``error``: this alone stops requests from being served (a check that fails is explained by it);
- ``warning``: serving works, but something will bite (long requests cut, a controller not reporting);
- ``info``: worth knowing when reading the results (metrics that need a token).

An inventory entry that is None was not read (refused, or its CRD not installed): rules say nothing from
it. A missing CRD is never a problem of its own; rules name it where it explains what the mode in use lacks.
"""

from __future__ import annotations

from ansible_collections.llmd.verify.plugins.module_utils._diagnosis import _status, _text
from ansible_collections.llmd.verify.plugins.module_utils._endpoint import ROUTE_TIMEOUT_ANNOTATION, check_names
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._stack import (
    POOL_GROUP,
    POOL_GROUP_ALPHA,
    add_previous_logs,
    build_inventory,
    gateway_duration_seconds,
    read_objects,
)

SEVERITIES = ("error", "warning", "info")
MIN_ROUTE_TIMEOUT = 300
OPENSHIFT_DEFAULT_TIMEOUT = 30
# Route timeouts the gateway providers apply when an HTTPRoute sets none, by GatewayClass controllerName
# (None: no timeout). Envoy's route default is 15 s; Istio turns route timeouts off; GKE's backend service 30 s.
PROVIDER_DEFAULT_TIMEOUTS = {
    "kgateway.dev/kgateway": 15,
    "gateway.envoyproxy.io/gatewayclass-controller": 15,
    "aigateway.envoyproxy.io/gatewayclass-controller": 60,
    "istio.io/gateway-controller": None,
    "networking.gke.io/gateway": 30,
}
CRD_NAMES = {"gateway_api": "the Gateway API CRDs (gateway.networking.k8s.io)",
             "inference_pool_v1": "the InferencePool CRD inference.networking.k8s.io/v1",
             "inference_pool_v1alpha2": "the InferencePool CRD inference.networking.x-k8s.io/v1alpha2",
             "openshift_route": "OpenShift Routes (route.openshift.io/v1)"}
POOL_CRD = {POOL_GROUP: "inference_pool_v1", POOL_GROUP_ALPHA: "inference_pool_v1alpha2"}
SERVING_LABELS = ("llm-d.ai/inferenceServing", "llm-d.ai/inference-serving")
RBAC_HINT = "grant '%s' on '%s' to these credentials (see docs/rbac.md); the rules that need it were skipped"


def problem(rule, severity, obj, message, hint):
    return {"rule": rule, "severity": severity, "object": obj, "message": message, "hint": hint}


def _other_group(group):
    return POOL_GROUP_ALPHA if group == POOL_GROUP else POOL_GROUP


def _fmt_condition(cond):
    if not cond:
        return "no condition"
    return "%s%s%s" % (cond.get("status"), ", " + cond["reason"] if cond.get("reason") else "",
                       ": " + cond["message"] if cond.get("message") else "")


# ---------------------------------------------------------------------------------------------------
# Reads and the way in
# ---------------------------------------------------------------------------------------------------

def rule_refused_reads(inv, opts):
    return [problem("read_refused", "warning",
                    "%s%s" % (r["resource"], " in namespace %s" % r["namespace"] if r.get("namespace") else
                              " (cluster scope)"),
                    "could not %s %s: %s" % (r["verb"], r["resource"], r["message"]),
                    RBAC_HINT % (r["verb"], r["resource"])) for r in inv["refused"]]


def rule_empty_namespace(inv, opts):
    """Nothing of llm-d's at all (every read answered): a namespace that does not exist, or the wrong one."""
    if (inv["services"] != [] or not inv["pods_read"] or not inv["epp_read"] or inv["gateways"]
            or inv["model_servers"]["pods"] or inv["model_servers"]["deployments"]):
        return []
    return [problem("namespace_empty", "error", "namespace/%s" % inv["namespace"],
                    "namespace %s has no Services, Gateways, EPP or model server pods: it does not exist, or llm-d is "
                    "installed in another namespace" % inv["namespace"],
                    "check the namespace given (llmd_namespace): `kubectl get pods -A -l llm-d.ai/role=decode` shows "
                    "where the model servers run")]


def rule_no_entrypoint(inv, opts):
    """Neither a Gateway nor a standalone EPP: nothing takes requests for the pools."""
    if inv["mode"] != "none" or inv["gateways"] is None and inv["crds"].get("gateway_api") is not False:
        return []  # Gateways unread (refused): read_refused says so
    epps = inv["epp"]
    why = []
    if inv["crds"].get("gateway_api") is False:
        why.append("%s are not installed, so there can be no Gateway" % CRD_NAMES["gateway_api"])
    else:
        why.append("no Gateway in the namespace")
    if epps:
        why.append("the EPP %s has no HTTP front (its Service has no HTTP port), so it only serves a gateway's "
                   "ext-proc calls" % ", ".join(e["name"] for e in epps))
    else:
        why.append("no EPP Deployment%s" % (" (for guide %s: %s-epp)" % (inv["guide"], inv["guide"]) if inv["guide"]
                                            else ""))
    return [problem("no_entrypoint", "error", "namespace/%s" % inv["namespace"],
                    "nothing routes requests to the model servers: %s" % "; ".join(why),
                    "install the router: the llm-d-router-standalone chart (the guides' default, Service <guide>-epp "
                    "with port http 80) or llm-d-router-gateway with a Gateway API provider%s" % (
                        " (install the Gateway API CRDs first)" if inv["crds"].get("gateway_api") is False else ""))]


def rule_gateways(inv, opts):
    found = []
    for gateway in inv["gateways"] or []:
        obj = "Gateway/%s" % gateway["name"]
        accepted = gateway["accepted"] or {}
        if accepted.get("status") != "True":
            pending = accepted.get("status") in (None, "Unknown") and accepted.get("reason") in (None, "Pending")
            if gateway["class_found"] is False:
                message = "GatewayClass %s does not exist, so no controller serves Gateway %s (Accepted %s)" % (
                    gateway["class"], gateway["name"], _fmt_condition(accepted))
                hint = "set gatewayClassName to an installed class, or install the gateway provider that creates %s" % (
                    gateway["class"])
            elif pending:
                controller = " (controllerName %s)" % gateway["controller"] if gateway["controller"] else ""
                message = ("no controller has accepted Gateway %s: it keeps the default Accepted Unknown/Pending, so "
                           "nobody runs GatewayClass %s%s" % (gateway["name"], gateway["class"], controller))
                hint = ("install or start the gateway provider of class %s (istio, kgateway, agentgateway, ...), or set "
                        "gatewayClassName to a class whose controller runs here" % gateway["class"])
            else:
                message = "Gateway %s is not Accepted by its controller (%s)" % (gateway["name"], _fmt_condition(accepted))
                hint = "fix what the condition's message says, then read the gateway controller's logs"
            found.append(problem("gateway_not_accepted", "error", obj, message, hint))
            continue
        if not gateway["addresses"]:
            services = ", ".join("%s (%s)" % (s["name"], s["type"]) for s in gateway["services"]) or "none found"
            found.append(problem(
                "gateway_no_address", "error", obj,
                "Gateway %s is Accepted but has no address (status.addresses is empty; Programmed %s; gateway "
                "Services: %s)" % (gateway["name"], _fmt_condition(gateway["programmed"]), services),
                "a LoadBalancer gateway Service waits for a load balancer (cloud controller, MetalLB): check "
                "`kubectl get svc` for its EXTERNAL-IP, or expose the gateway another way (port-forward, Ingress)"))
        elif (gateway["programmed"] or {}).get("status") != "True":
            found.append(problem(
                "gateway_not_programmed", "warning", obj,
                "Gateway %s has an address but is not Programmed (%s)" % (gateway["name"],
                                                                          _fmt_condition(gateway["programmed"])),
                "the gateway's data plane may not take traffic yet: check its pods and the controller's logs"))
    return found


def rule_httproutes(inv, opts):
    found = []
    gateways = {g["name"]: g for g in inv["gateways"] or []}
    for route in inv["httproutes"] or []:
        obj = "HTTPRoute/%s" % route["name"]
        backend_problem = False
        for backend in route["backends"]:
            if backend["kind"] != "InferencePool" or backend.get("resolves") is not False:
                continue
            backend_problem = True
            group, other = backend["group"], _other_group(backend["group"])
            if other in backend["found_in_groups"]:
                found.append(problem(
                    "route_pool_other_group", "error", obj,
                    "HTTPRoute %s points at InferencePool %s in group %s%s, but that pool exists only in group %s "
                    "(the gateway reports \"InferencePool not found\" or ResolvedRefs False)" % (
                        route["name"], backend["name"], group or "(none)",
                        " (whose CRD is not installed)" if inv["crds"].get(POOL_CRD.get(group)) is False else "", other),
                    "set backendRefs[].group to %s in the HTTPRoute (or install the pool of group %s)" % (other, group)))
            elif inv["crds"].get(POOL_CRD.get(group)) is False:
                found.append(problem(
                    "route_pool_missing", "error", obj,
                    "HTTPRoute %s points at InferencePool %s of group %s, whose CRD is not installed" % (
                        route["name"], backend["name"], group),
                    "use the installed InferencePool group (%s) in backendRefs[].group, or install the CRD of %s" % (
                        other, group)))
            else:
                found.append(problem(
                    "route_pool_missing", "error", obj,
                    "HTTPRoute %s points at InferencePool %s (group %s), which does not exist" % (
                        route["name"], backend["name"], group or "(none)"),
                    "create the InferencePool (the inference extension's chart) or fix backendRefs[].name; pools here: "
                    "%s" % (", ".join(p["name"] for p in inv["inference_pools"] or []) or "none")))
        for parent in route["parents"]:
            gateway = gateways.get(parent["name"])
            if parent["gateway_found"] is False:
                found.append(problem("route_parent_missing", "error", obj,
                                     "HTTPRoute %s is attached to Gateway %s, which does not exist" % (
                                         route["name"], parent["name"]),
                                     "fix parentRefs[].name (Gateways here: %s)" % (", ".join(gateways) or "none")))
                continue
            if not parent["reported"]:
                if gateway and (gateway["accepted"] or {}).get("status") == "True":
                    found.append(problem(
                        "route_not_reported", "warning", obj,
                        "no controller has reported on HTTPRoute %s for Gateway %s yet" % (route["name"], parent["name"]),
                        "the gateway controller may not watch this namespace or this route; read its logs"))
                continue  # a Gateway nobody accepted: gateway_not_accepted explains it
            if (parent["accepted"] or {}).get("status") == "False":
                found.append(problem(
                    "route_not_accepted", "error", obj,
                    "HTTPRoute %s is not Accepted by Gateway %s (%s)" % (
                        route["name"], parent["name"], _fmt_condition(parent["accepted"])),
                    "check parentRefs (name, sectionName, port) and the Gateway listeners' allowedRoutes"))
            resolved = parent["resolved_refs"] or {}
            if resolved.get("status") == "False" and not backend_problem:
                if resolved.get("reason") == "InvalidKind":
                    hint = ("the gateway (class %s) does not support a backendRef of this group: use the InferencePool "
                            "group it supports (%s, the current API) and a pool of that group" % (
                                parent.get("gateway_class"), POOL_GROUP))
                else:
                    hint = "fix backendRefs (group, kind, name, port) to name an existing InferencePool or Service"
                found.append(problem("route_refs_unresolved", "error", obj,
                                     "HTTPRoute %s's references are not resolved by Gateway %s (ResolvedRefs %s)" % (
                                         route["name"], parent["name"], _fmt_condition(resolved)), hint))
    return found


def _route_default_timeout(route, gateways):
    for parent in route["parents"]:
        gateway = gateways.get(parent["name"]) or {}
        controller = parent.get("controller") or gateway.get("controller")
        if controller in PROVIDER_DEFAULT_TIMEOUTS and PROVIDER_DEFAULT_TIMEOUTS[controller] is not None:
            return PROVIDER_DEFAULT_TIMEOUTS[controller], controller
    return None, None


def rule_route_timeouts(inv, opts):
    minimum = opts.get("min_route_timeout") or MIN_ROUTE_TIMEOUT
    found = []
    gateways = {g["name"]: g for g in inv["gateways"] or []}
    for route in inv["httproutes"] or []:
        pooled_rules = {b["rule"] for b in route["backends"] if b["kind"] == "InferencePool"}
        for timeout in route["timeouts"]:
            if pooled_rules and timeout["rule"] not in pooled_rules:
                continue
            obj = "HTTPRoute/%s" % route["name"]
            fields = (("timeouts.request", "request"), ("timeouts.backendRequest", "backend_request"))
            values = [(field, timeout[key]) for field, key in fields if timeout[key] is not None]
            short = [(field, value, gateway_duration_seconds(value)) for field, value in values]
            short = [(f, v, s) for f, v, s in short if s is not None and 0 < s < minimum]
            if short:
                field, value, seconds = min(short, key=lambda item: item[2])
                found.append(problem(
                    "route_timeout_short", "warning", obj,
                    "HTTPRoute %s rule %d has %s %s (%g s), under %d s: longer completions and streams are cut with "
                    "a 504" % (route["name"], timeout["rule"], field, value, seconds, minimum),
                    "set %s to %ds or more (llm-d's gateway chart sets request: 300s; 0s turns the timeout off)" % (
                        field, minimum)))
            elif not values:
                default, controller = _route_default_timeout(route, gateways)
                if default is not None and default < minimum:
                    found.append(problem(
                        "route_timeout_short", "warning", obj,
                        "HTTPRoute %s rule %d sets no timeouts.request: the provider's default (%s) of %d s applies, "
                        "which cuts longer completions and streams" % (
                            route["name"], timeout["rule"], controller, default),
                        "set timeouts.request: %ds (or more) on the rule" % minimum))
    for route in inv["routes"] or []:
        obj = "Route/%s" % route["name"]
        if route["timeout"] is None:
            found.append(problem(
                "route_timeout_short", "warning", obj,
                "Route %s has no %s annotation: the OpenShift router's default of %d s applies, which cuts long or "
                "queued requests (the seed saw this distort results under load)" % (
                    route["name"], ROUTE_TIMEOUT_ANNOTATION, OPENSHIFT_DEFAULT_TIMEOUT),
                "oc annotate route %s %s=%ds" % (route["name"], ROUTE_TIMEOUT_ANNOTATION, minimum)))
        elif route["timeout_seconds"] is not None and route["timeout_seconds"] < minimum:
            found.append(problem(
                "route_timeout_short", "warning", obj,
                "Route %s has %s=%s (%g s), under %d s: long or queued requests are cut" % (
                    route["name"], ROUTE_TIMEOUT_ANNOTATION, route["timeout"], route["timeout_seconds"], minimum),
                "oc annotate --overwrite route %s %s=%ds" % (route["name"], ROUTE_TIMEOUT_ANNOTATION, minimum)))
    return found


def rule_exposure(inv, opts):
    """Ingresses and OpenShift Routes in front of the gateway that no controller has served yet."""
    found = []
    for ingress in inv["ingresses"] or []:
        if not ingress["address"]:
            found.append(problem(
                "ingress_no_address", "warning", "Ingress/%s" % ingress["name"],
                "Ingress %s (class %s) has no address: no ingress controller has served it" % (
                    ingress["name"], ingress["class"] or "default"),
                "check that an ingress controller runs for class %s (kubectl get ingressclass)" % (
                    ingress["class"] or "default")))
    for route in inv["routes"] or []:
        if not route["admitted"]:
            found.append(problem("route_not_admitted", "warning", "Route/%s" % route["name"],
                                 "Route %s is not Admitted by any router" % route["name"],
                                 "check the router's logs and that the host %s is not taken by another Route" % (
                                     route["host"])))
    return found


# ---------------------------------------------------------------------------------------------------
# Pools and the EPP
# ---------------------------------------------------------------------------------------------------

def _label_hint(pool, pods):
    for key in pool["selector"]:
        if key in SERVING_LABELS:
            other = SERVING_LABELS[1 - SERVING_LABELS.index(key)]
            if any(other in p["labels"] for p in pods):
                return ("the pods carry %s, the selector asks for %s: llm-d-modelservice renamed the label in "
                        "v0.4.5; align the pool's selector with the chart version" % (other, key))
    labels = sorted({"%s=%s" % item for p in pods for item in p["labels"].items() if item[0].startswith("llm-d.ai/")})
    return "fix the pool's selector to match the model server pods' labels (llm-d labels here: %s)" % (
        ", ".join(labels) or "none")


def rule_pools(inv, opts):
    if not inv["pods_read"]:
        return []
    found = []
    servers = inv["model_servers"]["pods"]
    by_name = {p["name"]: p for p in servers}
    services = inv["services"]
    for pool in inv["inference_pools"] or []:
        obj = "InferencePool/%s (%s)" % (pool["name"], pool["api_version"])
        if not pool["pods"]:
            selector = ", ".join("%s=%s" % item for item in sorted(pool["selector"].items())) or "empty"
            found.append(problem("pool_selects_nothing", "error", obj,
                                 "InferencePool %s's selector (%s) matches no pod in the namespace" % (
                                     pool["name"], selector),
                                 _label_hint(pool, servers)))
            continue
        selected = [by_name[name] for name in pool["pods"] if name in by_name]
        known = [p for p in selected if p["listening_ports"]]
        for port in pool["target_ports"]:
            if known and not any(port in p["listening_ports"] for p in known):
                listening = sorted({q for p in known for q in p["listening_ports"]})
                sidecar = next((p["routing_sidecar"] for p in known if p["routing_sidecar"]), None)
                better = sidecar["port"] if sidecar and sidecar.get("port") else (known[0]["vllm_port"])
                found.append(problem(
                    "pool_target_port_unserved", "error", obj,
                    "InferencePool %s sends requests to port %d, where none of its %d pods listens (they listen on %s)"
                    % (pool["name"], port, len(selected), ", ".join(str(q) for q in listening)),
                    "set the pool's target port to %s (the %s's port)" % (
                        better, "routing-proxy sidecar" if sidecar else "model server")))
        picker = pool["endpoint_picker"] or {}
        if services is not None and picker.get("name") and picker.get("kind", "Service") == "Service" \
                and picker["name"] not in services:
            found.append(problem("pool_epp_missing", "error", obj,
                                 "InferencePool %s names the endpoint picker Service %s, which does not exist" % (
                                     pool["name"], picker["name"]),
                                 "install the EPP (the router chart) or fix the pool's endpoint picker reference"))
    return found


def rule_epp(inv, opts):
    found = []
    pools = inv["inference_pools"]
    for epp in inv["epp"]:
        obj = "Deployment/%s" % epp["name"]
        if not epp["ready_replicas"]:
            reasons = "; ".join("%s: %s" % (p["name"], why_not_ready(p)[0]) for p in epp["pods"]) or "no pod"
            hints = [why_not_ready(p)[1] for p in epp["pods"]]
            found.append(problem("epp_not_ready", "error", obj,
                                 "the EPP %s has no Ready pod (%s): requests through the gateway fail (500 when it "
                                 "fails closed)" % (epp["name"], reasons),
                                 hints[0] if hints else "scale the Deployment up or read its events"))
        crd = POOL_CRD.get(epp["pool_group"])
        if epp["pool"] and inv["crds"].get(crd) is False:
            found.append(problem(
                "epp_pool_crd_missing", "error", obj,
                "the EPP %s watches InferencePool %s of group %s, but %s is not installed: it has no pod to pick" % (
                    epp["name"], epp["pool"], epp["pool_group"], CRD_NAMES[crd]),
                "install the InferencePool CRDs (gateway-api-inference-extension's manifests), or set --pool-group "
                "to the installed group"))
        elif epp["pool"] and pools is not None and inv["crds"].get(crd) is not None and not any(
                p["name"] == epp["pool"] and p["group"] == epp["pool_group"] for p in pools):
            elsewhere = [p["group"] for p in pools if p["name"] == epp["pool"]]
            found.append(problem(
                "epp_pool_missing", "error", obj,
                "the EPP %s watches InferencePool %s in group %s, which does not exist%s" % (
                    epp["name"], epp["pool"], epp["pool_group"],
                    " (it exists in group %s)" % elsewhere[0] if elsewhere else ""),
                "set the EPP's --pool-group to %s" % elsewhere[0] if elsewhere
                else "create the InferencePool or fix the EPP's --pool-name"))
        if epp["metrics_auth"]:
            found.append(problem(
                "epp_metrics_need_token", "info", obj,
                "the EPP %s serves its metrics (port 9090) only to a bearer token allowed get on /metrics "
                "(--metrics-endpoint-auth is on by default); the API server proxy passes no token, so reads through "
                "it get 401" % epp["name"],
                "give metrics_info a metrics_token: kubectl create token for a ServiceAccount bound to a ClusterRole "
                "with nonResourceURLs [/metrics], verbs [get] (docs/rbac.md), and read through a port-forward"))
    return found


# ---------------------------------------------------------------------------------------------------
# Model servers
# ---------------------------------------------------------------------------------------------------

OOM_MARKERS = ("outofmemoryerror", "cuda out of memory", "out of memory")


def why_not_ready(pod):
    """(why a pod is not Ready, what to do) from its status, its containers and a crash loop's last log lines."""
    scheduled = pod.get("scheduled") or {}
    if scheduled.get("status") == "False":
        return ("not scheduled (%s: %s)" % (scheduled.get("reason"), scheduled.get("message")),
                "the scheduler finds no node for it: free or add GPUs (nvidia.com/gpu), or lower its requests, node "
                "selector or tolerations")
    if pod.get("deleting"):
        return "being deleted", "wait for its replacement"
    containers = pod.get("containers") or []
    for container in containers:
        reason = container.get("waiting_reason")
        if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"):
            return ("container %s cannot pull image %s (%s)" % (container["name"], container["image"], reason),
                    "check the image name and tag, and the pull secret for its registry")
        if reason in ("CreateContainerConfigError", "CreateContainerError"):
            why = "container %s cannot be created (%s: %s)" % (
                container["name"], reason, container.get("waiting_message"))
            return why, "a ConfigMap, Secret or key it needs is missing: see the message"
    for container in containers:
        if container.get("crash_looping"):
            last = container.get("last_termination") or {}
            log = container.get("previous_log") or []
            text = " ".join(log).lower()
            oom_killed = last.get("reason") == "OOMKilled"
            cuda_oom = any(marker in text for marker in OOM_MARKERS)
            telling = [line for line in log if any(marker in line.lower() for marker in OOM_MARKERS)] or log
            why = "container %s is crash-looping (%d restarts, last exit %s %s%s)" % (
                container["name"], container.get("restarts") or 0, last.get("exit_code"), last.get("reason") or "",
                "; its previous run said: %s" % telling[-1][:300] if telling else "")
            if oom_killed:
                hint = ("it was OOMKilled (exit 137): raise the container's memory limit, or lower vLLM's memory use "
                        "(--max-model-len, --max-num-seqs)")
            elif cuda_oom:
                hint = ("vLLM ran out of GPU memory while loading: lower --gpu-memory-utilization or --max-model-len, "
                        "or spread the model over more GPUs (--tensor-parallel-size)")
            else:
                hint = "read its previous log: kubectl logs %s -c %s --previous" % (pod["name"], container["name"])
            return why, hint
    if pod.get("phase") == "Pending" and not any(c.get("state") == "running" for c in containers):
        return "Pending (containers not started yet)", "wait, or read the pod's events: kubectl describe pod %s" % (
            pod["name"])
    unready = [c for c in containers if not c.get("ready")]
    model = next((c for c in unready if c["name"] == pod.get("model_container")), None)
    if model is not None:
        probe = model.get("readiness_probe") or {}
        where = " (readiness probe %s %s:%s)" % (probe.get("type"), probe.get("path") or "", probe.get("port")) \
            if probe else ""
        sidecar = pod.get("routing_sidecar")
        return ("container %s is running but not Ready%s: vLLM is still loading the model%s" % (
            model["name"], where, "; the routing-proxy sidecar answers 502/503 meanwhile" if sidecar else ""),
            "wait for the model to load (large models take minutes), then read its log if it never gets Ready: "
            "kubectl logs %s -c %s" % (pod["name"], model["name"]))
    if unready:
        return ("container %s is not Ready" % ", ".join(c["name"] for c in unready),
                "read its log: kubectl logs %s -c %s" % (pod["name"], unready[0]["name"]))
    return "not Ready (%s)" % (pod.get("phase") or "no status"), "read the pod's events: kubectl describe pod %s" % (
        pod["name"])


def _role_pods(inv, role):
    servers = inv["model_servers"]["pods"]
    if role == "decode" and not any(p["role"] for p in servers):
        return servers  # no llm-d roles: every model server serves
    return [p for p in servers if p["role"] == role or role == "decode" and p["role"] == "both"]


def rule_model_servers(inv, opts):
    if not inv["pods_read"]:
        return []
    found = []
    for role in ("decode", "prefill"):
        pods = _role_pods(inv, role)
        if not pods:
            if role == "decode" and (inv["mode"] != "none" or inv["inference_pools"]):
                found.append(problem("no_decode_pods", "error", "namespace/%s" % inv["namespace"],
                                     "no model server pod in the namespace (no pod labelled llm-d.ai/role=decode, none "
                                     "selected by an InferencePool)",
                                     "install the model servers (llm-d-modelservice or the guide's kustomize) and "
                                     "check that their Deployment has replicas"))
            continue
        ready = [p for p in pods if p["ready"]]
        if not ready:
            diagnosis = [(p, why_not_ready(p)) for p in pods]
            found.append(problem(
                "no_ready_%s" % role, "error", "pods/%s" % ",".join(p["name"] for p in pods),
                "no %s pod is Ready: %s" % (role, "; ".join("%s: %s" % (p["name"], why) for p, (why, _h) in diagnosis)),
                diagnosis[0][1][1]))
            continue
        for pod in pods:
            if not pod["ready"]:
                why, hint = why_not_ready(pod)
                found.append(problem("pod_not_ready", "warning", "Pod/%s" % pod["name"],
                                     "%s pod %s is not Ready (%d of %d are): %s" % (
                                         role, pod["name"], len(ready), len(pods), why), hint))
    return found


def rule_routing_sidecar(inv, opts):
    found = []
    decode = [p for p in _role_pods(inv, "decode") if p["role"] in ("decode", "both")]
    expect = opts.get("expect_routing_sidecar")
    for pod in decode:
        sidecar = pod["routing_sidecar"]
        obj = "Pod/%s" % pod["name"]
        if expect is True and not sidecar:
            found.append(problem("routing_sidecar_missing", "error", obj,
                                 "decode pod %s has no routing-proxy sidecar, which the guide expects (P/D "
                                 "disaggregation goes through it)" % pod["name"],
                                 "enable the routing proxy in the model service's values (routing.proxy.enabled) "
                                 "and point the pool's target port at it"))
        elif expect is False and sidecar:
            found.append(problem("routing_sidecar_unexpected", "warning", obj,
                                 "decode pod %s runs a routing-proxy sidecar, which the guide does not use" % pod["name"],
                                 "disable the routing proxy in the model service's values, or expect it"))
        if sidecar and sidecar.get("vllm_port") and pod["vllm_port"] and sidecar["vllm_port"] != pod["vllm_port"]:
            found.append(problem(
                "routing_sidecar_port_mismatch", "error", obj,
                "the routing-proxy of %s forwards to vLLM on port %d, but vLLM listens on %d: the proxy waits for "
                "vLLM forever and answers 502/503" % (pod["name"], sidecar["vllm_port"], pod["vllm_port"]),
                "make the proxy's --vllm-port and vLLM's --port agree (8200 behind the proxy)"))
    return found


def rule_model_name(inv, opts):
    expected = opts.get("model")
    if not expected or not inv["pods_read"]:
        return []
    pods = inv["model_servers"]["pods"]
    served = sorted({name for p in pods for name in p["served_models"]})
    if not served or expected in served:
        return []
    return [problem("model_not_served", "error", "namespace/%s" % inv["namespace"],
                    "no model server serves model %s: they serve %s (from --served-model-name or the model argument)" % (
                        expected, ", ".join(served)),
                    "ask for one of %s (set the model option to it), or deploy %s" % (", ".join(served), expected))]


RULES = (rule_refused_reads, rule_empty_namespace, rule_no_entrypoint, rule_gateways, rule_httproutes,
         rule_route_timeouts, rule_exposure,
         rule_pools, rule_epp, rule_model_servers, rule_routing_sidecar, rule_model_name)


def find_problems(inventory, opts):
    """Every rule's problems, errors first (the order of the rules otherwise)."""
    found = [p for rule in RULES for p in rule(inventory, opts)]
    return sorted(found, key=lambda p: SEVERITIES.index(p["severity"]))


# ---------------------------------------------------------------------------------------------------
# Which problem explains a failed check (for the report; _diagnosis.likely_cause stays the fallback)
# ---------------------------------------------------------------------------------------------------

NOT_READY_RULES = ("no_decode_pods", "no_ready_decode", "pool_selects_nothing", "pool_target_port_unserved",
                   "routing_sidecar_port_mismatch", "routing_sidecar_missing", "epp_pool_missing",
                   "epp_pool_crd_missing", "pool_epp_missing", "no_ready_prefill")
ROUTING_RULES = ("route_pool_other_group", "route_pool_missing", "route_refs_unresolved", "route_not_accepted",
                 "route_parent_missing", "route_not_reported")
UNREACHABLE_RULES = ("no_entrypoint", "gateway_not_accepted", "gateway_no_address", "ingress_no_address",
                     "route_not_admitted", "gateway_not_programmed")
# (does the failed check look like this?, the rules whose problems can explain it), first match wins.
EXPLAINS = (
    (lambda s, t, p: "no gateway endpoint found" in t or "no pod matches" in t,
     ("namespace_empty", "no_entrypoint", "no_decode_pods")),
    (lambda s, t, p: "no pods available in datastore" in t or "candidate pods" in t or "no healthy upstream" in t
     or "no endpoints" in t or "decode node is not ready" in t or "failed to connect to vllm" in t
     or s == 502 and not t.strip(), NOT_READY_RULES),
    (lambda s, t, p: s == 404 and ("does not exist" in t or "notfounderror" in t), ("model_not_served",)),
    (lambda s, t, p: "inferencepool" in t and "not found" in t or s == 404, ROUTING_RULES),
    (lambda s, t, p: s == 504 or "timed out" in t and p in ("first byte", "stream"), ("route_timeout_short",)),
    (lambda s, t, p: s == 500, ("epp_not_ready",) + NOT_READY_RULES),
    (lambda s, t, p: s == 401 and "metrics" in t, ("epp_metrics_need_token",)),
    (lambda s, t, p: s is not None and s >= 500, NOT_READY_RULES + ("epp_not_ready",)),
    (lambda s, t, p: p == "connect" or "refused" in t or "timed out" in t or "resolve" in t, UNREACHABLE_RULES),
)


def _severity_rank(severity):
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def explaining_problem(result, problems):
    """The problem (of stack_info's) that explains a failed check's result, or None: "no object explains this".

    result is a check module's result (status, error, phase, msg), as _diagnosis.likely_cause reads it.
    """
    if not isinstance(result, dict):
        return None
    status, text, phase = _status(result), _text(result), result.get("phase")
    for matches, candidates in EXPLAINS:
        if matches(status, text, phase):
            for rule in candidates:
                # problems may come from the user (verify_report's): an unknown severity sorts last.
                for found in sorted(problems or [], key=lambda p: _severity_rank(p.get("severity"))):
                    if found["rule"] == rule and (found.get("severity") != "info" or rule == "epp_metrics_need_token"):
                        return found
            return None
    return None


# ---------------------------------------------------------------------------------------------------
# The module's entry point: read, describe, judge
# ---------------------------------------------------------------------------------------------------

# stack_info's own options (besides the auth options), as its DOCUMENTATION describes them.
STACK_ARG_SPEC = {
    "namespace": dict(type="str", required=True),
    "guide": dict(type="str"),
    "model": dict(type="str"),
    "expect_routing_sidecar": dict(type="bool"),
    "min_route_timeout": dict(type="int", default=MIN_ROUTE_TIMEOUT),
    "previous_log_lines": dict(type="int", default=20),
}


def stack_info(api_client, params, read=read_objects, previous_logs=add_previous_logs):
    """The result of stack_info: {mode, crds, refused, inventory, problems, summary} (LlmdError on bad input)."""
    check_names(params["namespace"], {"guide": params.get("guide")})
    if (params.get("min_route_timeout") or 0) < 0 or (params.get("previous_log_lines") or 0) < 0:
        raise LlmdError("min_route_timeout and previous_log_lines must not be negative")
    raw = read(api_client, params["namespace"])
    inventory = build_inventory(raw, params["namespace"], guide=params.get("guide"))
    previous_logs(api_client, inventory, lines=params.get("previous_log_lines") or 0)
    problems = find_problems(inventory, params)
    summary = {severity: sum(1 for p in problems if p["severity"] == severity) for severity in SEVERITIES}
    return {"mode": inventory["mode"], "crds": inventory["crds"], "refused": inventory["refused"],
            "inventory": inventory, "problems": problems, "summary": summary}
