# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read an llm-d namespace once and describe it: the inventory that stack_info returns and its rules judge.

    raw = read_objects(api_client, namespace)        # one list per kind (in parallel), discovery first
    inventory = build_inventory(raw, namespace)      # pure: wire JSON -> the documented inventory
    add_previous_logs(api_client, inventory)         # the last lines of crash-looping model servers
    problems = find_problems(inventory, opts)        # _stack_rules.py: pure rules over the inventory

Reads: ``GET /apis`` (which CRDs are served: a kind whose group/version is not served is not read at all),
then one list per kind in the namespace (pods, Services, Deployments, Gateways, HTTPRoutes, both
InferencePool versions, Ingresses, OpenShift Routes) and the cluster's GatewayClasses. A read the credentials
may not make (403) is recorded in ``refused`` and its kind is left unknown (None, not an empty list), so no
rule concludes anything from it; the other reads carry on. Pure helpers here are shared with the rules.
"""

from __future__ import annotations

import re
import shlex
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.llmd.verify.plugins.module_utils._endpoint import (
    EPP_SERVICE_PATTERN,
    GATEWAY_NAME_LABEL,
    ROUTE_TIMEOUT_ANNOTATION,
    gateway_addresses,
    ingress_backends,
    lb_address,
    name_of,
    route_admitted,
    route_timeout_seconds,
)
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import K8sNotFound, k8s_get
from ansible_collections.llmd.verify.plugins.module_utils._service_ports import choose_http_port, container_ports

POOL_GROUP = "inference.networking.k8s.io"
POOL_GROUP_ALPHA = "inference.networking.x-k8s.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"
ROLE_LABEL = "llm-d.ai/role"
GUIDE_LABEL = "llm-d.ai/guide"
DEFAULT_VLLM_PORT = 8000
MAX_WORKERS = 6

# key: (API group, version, plural, namespaced, CRD family the key belongs to or None for built-in kinds)
READS = {
    "pods": ("", "v1", "pods", True, None),
    "services": ("", "v1", "services", True, None),
    "deployments": ("apps", "v1", "deployments", True, None),
    "ingresses": ("networking.k8s.io", "v1", "ingresses", True, None),
    "gatewayclasses": (GATEWAY_GROUP, "v1", "gatewayclasses", False, "gateway_api"),
    "gateways": (GATEWAY_GROUP, "v1", "gateways", True, "gateway_api"),
    "httproutes": (GATEWAY_GROUP, "v1", "httproutes", True, "gateway_api"),
    "inferencepools": (POOL_GROUP, "v1", "inferencepools", True, "inference_pool_v1"),
    "inferencepools_v1alpha2": (POOL_GROUP_ALPHA, "v1alpha2", "inferencepools", True, "inference_pool_v1alpha2"),
    "routes": ("route.openshift.io", "v1", "routes", True, "openshift_route"),
}
CRD_FAMILIES = {"gateway_api": (GATEWAY_GROUP, "v1"), "inference_pool_v1": (POOL_GROUP, "v1"),
                "inference_pool_v1alpha2": (POOL_GROUP_ALPHA, "v1alpha2"), "openshift_route": ("route.openshift.io", "v1")}

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------

def _path(group, version, plural, namespaced):
    base = "/api/%s" % version if not group else "/apis/%s/%s" % (group, version)
    return base + ("/namespaces/{namespace}/%s" % plural if namespaced else "/%s" % plural)


def served_groups(apis):
    """{(group, version)} that an APIGroupList (GET /apis) says the server serves."""
    return {(group.get("name"), version.get("version")) for group in (apis or {}).get("groups") or []
            for version in group.get("versions") or []}


def _read_one(api_client, key, namespace):
    group, version, plural, namespaced, _family = READS[key]
    resource = "%s.%s" % (plural, group) if group else plural
    try:
        return {"items": k8s_get(api_client, _path(group, version, plural, namespaced), verb="list", resource=resource,
                                 namespace=namespace if namespaced else None)["items"]}
    except K8sNotFound:
        return {"not_installed": True}
    except LlmdError as err:
        if err.details.get("status") in (401,) or err.details.get("anonymous") or not err.details.get("status"):
            raise  # bad credentials or an unreachable server: nothing can be read, say it once
        return {"refused": {"read": key, "verb": "list", "resource": resource,
                            "namespace": namespace if namespaced else None, "status": err.details.get("status"),
                            "message": err.msg, "hint": err.hint}}


def read_objects(api_client, namespace, executor=ThreadPoolExecutor):
    """The wire JSON of every kind the inventory needs: {key: [objects] | None, "crds": {...}, "refused": [...]}.

    A kind is None when it could not be read (refused, or its CRD is not installed); "crds" says which CRD
    families are served (None when discovery itself was refused and a kind's list answered neither way).
    """
    refused = []
    try:
        served = served_groups(k8s_get(api_client, "/apis", verb="get", resource="API discovery (/apis)"))
    except LlmdError as err:
        if err.details.get("status") not in (403,) or err.details.get("anonymous"):
            raise
        served = None
        refused.append({"read": "discovery", "verb": "get", "resource": "/apis", "namespace": None, "status": 403,
                        "message": err.msg, "hint": err.hint})
    crds = {family: (None if served is None else gv in served) for family, gv in CRD_FAMILIES.items()}
    keys = [key for key, spec in READS.items() if spec[4] is None or crds[spec[4]] is not False]
    with executor(max_workers=MAX_WORKERS) as pool:
        answers = dict(zip(keys, pool.map(lambda key: _read_one(api_client, key, namespace), keys)))
    raw = {key: None for key in READS}
    for key, answer in answers.items():
        family = READS[key][4]
        if "items" in answer:
            raw[key] = answer["items"]
            if family and crds[family] is None:
                crds[family] = True
        elif answer.get("not_installed") and family:
            crds[family] = False
        elif answer.get("refused"):
            refused.append(answer["refused"])
    raw.update(crds=crds, refused=refused)
    return raw


def read_previous_log(api_client, namespace, pod, container, lines):
    """The last lines of a container's previous run (a crash loop's last words), or [] when there is none."""
    try:
        response = k8s_get(api_client, "/api/v1/namespaces/{namespace}/pods/{name}/log",
                           [("container", container), ("previous", True), ("tailLines", lines)], verb="get",
                           resource="pods/log", namespace=namespace, name=pod, stream=True)
    except LlmdError:  # 400 (no previous run), 403: the rest of the diagnosis stands without it
        return []
    try:
        text = response.read().decode("utf-8", errors="replace")
    finally:
        response.release_conn()
    return [line for line in text.splitlines() if line.strip()][-lines:]


def add_previous_logs(api_client, inventory, lines=20, max_pods=3, read=read_previous_log):
    """Fill model_servers.pods[].containers[].previous_log for the first crash-looping model containers."""
    if lines <= 0:
        return inventory
    done = 0
    for pod in inventory["model_servers"]["pods"] + [p for e in inventory["epp"] for p in e["pods"]]:
        for container in pod["containers"]:
            if done < max_pods and container.get("crash_looping"):
                container["previous_log"] = read(api_client, inventory["namespace"], pod["name"], container["name"], lines)
                done += 1
    return inventory


# ---------------------------------------------------------------------------------------------------
# Pure helpers over wire JSON
# ---------------------------------------------------------------------------------------------------

def _meta(obj, key):
    return (obj.get("metadata") or {}).get(key) or {}


def labels_of(obj):
    return _meta(obj, "labels")


def condition(obj, kind, conditions=None):
    """{status, reason, message} of the condition of type kind (in obj's status or the given list), or None."""
    source = conditions if conditions is not None else (obj.get("status") or {}).get("conditions")
    for entry in source or []:
        if entry.get("type") == kind:
            return {"status": entry.get("status"), "reason": entry.get("reason") or None,
                    "message": entry.get("message") or None}
    return None


def gateway_duration_seconds(value):
    """A Gateway API Duration (`10s`, `1m30s`, `500ms`, `1h`; `0s` disables the timeout) in seconds, or None."""
    text = (value or "").strip()
    if not text or _DURATION_PART.sub("", text):
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


def selector_labels(pool):
    """(matchLabels, matchExpressions) of an InferencePool: v1 `selector.matchLabels`, v1alpha2 a plain map."""
    selector = (pool.get("spec") or {}).get("selector") or {}
    if "matchLabels" in selector or "matchExpressions" in selector:
        return dict(selector.get("matchLabels") or {}), list(selector.get("matchExpressions") or [])
    return dict(selector), []


def selector_matches(match_labels, expressions, labels):
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for expression in expressions:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In" and labels.get(key) not in values or operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels or operator == "DoesNotExist" and key in labels:
            return False
    return bool(match_labels or expressions)


def _tokens(container):
    """command + args as separate words (a `sh -c "vllm serve ..."` line split like a shell)."""
    words = [str(word) for word in list(container.get("command") or []) + list(container.get("args") or [])]
    if len(words) >= 3 and words[0].endswith("sh") and words[1] == "-c":
        try:
            return shlex.split(words[2])
        except ValueError:
            return words
    return words


def flag_values(words, flag):
    """Values of --flag (as `--flag v1 v2` up to the next option, or `--flag=v`); [] when absent."""
    values = []
    for index, word in enumerate(words):
        if word.startswith(flag + "="):
            values.append(word.split("=", 1)[1])
        elif word == flag:
            for value in words[index + 1:]:
                if value.startswith("-"):
                    break
                values.append(value)
    return values


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def is_sidecar(container):
    return container.get("name") == "routing-proxy" or "routing-sidecar" in (container.get("image") or "")


def is_model_server(container):
    image = container.get("image") or ""
    return container.get("name") == "vllm" or "vllm" in image or "inference-sim" in image


def served_models(container):
    """The model names a vLLM (or llm-d-inference-sim) container serves, from its command line."""
    words = _tokens(container)
    names = flag_values(words, "--served-model-name") or flag_values(words, "--model")
    if names:
        return names
    if "serve" in words and words.index("serve") + 1 < len(words):  # vllm serve MODEL
        candidate = words[words.index("serve") + 1]
        return [] if candidate.startswith("-") else [candidate]
    args = [str(arg) for arg in container.get("args") or []]
    return [args[0]] if args and not args[0].startswith("-") and not container.get("command") else []


def _container_summary(container, status, sidecar_slot):
    state = (status or {}).get("state") or {}
    last = ((status or {}).get("lastState") or {}).get("terminated") or {}
    waiting = state.get("waiting") or {}
    summary = {
        "name": container.get("name"), "image": container.get("image"), "ready": bool((status or {}).get("ready")),
        "restarts": (status or {}).get("restartCount", 0), "sidecar": sidecar_slot,
        "state": next(iter(state), None), "waiting_reason": waiting.get("reason"),
        "waiting_message": waiting.get("message"),
        "last_termination": {"reason": last.get("reason"), "exit_code": last.get("exitCode"),
                             "finished_at": last.get("finishedAt")} if last else None,
        "started_at": (state.get("running") or {}).get("startedAt"),
        "ports": [p.get("containerPort") for p in container.get("ports") or [] if p.get("containerPort")],
        "readiness_probe": _probe(container.get("readinessProbe")),
    }
    summary["crash_looping"] = waiting.get("reason") == "CrashLoopBackOff" or bool(
        last and summary["restarts"] and not summary["ready"])
    return summary


def _probe(probe):
    if not probe:
        return None
    for kind in ("httpGet", "tcpSocket", "grpc", "exec"):
        if kind in probe:
            detail = probe[kind] or {}
            return {"type": kind, "path": detail.get("path"), "port": detail.get("port")}
    return None


def pod_summary(pod):
    """What the rules need of a pod: readiness, why not, its containers, what it serves and on which ports."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = {s.get("name"): s for s in list(status.get("containerStatuses") or [])
                + list(status.get("initContainerStatuses") or [])}
    native = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    containers = [_container_summary(c, statuses.get(c.get("name")), True) for c in native] + [
        _container_summary(c, statuses.get(c.get("name")), False) for c in spec.get("containers") or []]
    sidecar = next((c for c in list(spec.get("containers") or []) + native if is_sidecar(c)), None)
    server = next((c for c in spec.get("containers") or [] if is_model_server(c) and not is_sidecar(c)), None)
    vllm_port = None
    if server is not None:
        vllm_port = _int((flag_values(_tokens(server), "--port") or [None])[0]) or DEFAULT_VLLM_PORT
    listening = {p.get("containerPort") for p in container_ports(pod) if p.get("containerPort")}
    sidecar_info = None
    if sidecar is not None:
        words = _tokens(sidecar)
        sidecar_info = {"container": sidecar.get("name"), "image": sidecar.get("image"),
                        "port": _int((flag_values(words, "--port") or [None])[0]),
                        "vllm_port": _int((flag_values(words, "--vllm-port") or [None])[0])}
        listening.add(sidecar_info["port"])
    listening.add(vllm_port)
    listening.discard(None)
    return {
        "name": name_of(pod), "labels": labels_of(pod), "role": labels_of(pod).get(ROLE_LABEL),
        "phase": status.get("phase"), "ready": (condition(pod, "Ready") or {}).get("status") == "True",
        "scheduled": condition(pod, "PodScheduled"), "pod_ip": status.get("podIP"),
        "deleting": bool(_meta(pod, "deletionTimestamp")), "start_time": status.get("startTime"),
        "restarts": sum(c["restarts"] or 0 for c in containers), "containers": containers,
        "model_container": server.get("name") if server is not None else None,
        "served_models": served_models(server) if server is not None else [],
        "vllm_port": vllm_port, "routing_sidecar": sidecar_info, "listening_ports": sorted(listening),
    }


def _pool_summary(pool, group, version, pods):
    spec = pool.get("spec") or {}
    match_labels, expressions = selector_labels(pool)
    if version == "v1":
        ports = [_int(p.get("number")) for p in spec.get("targetPorts") or []]
        ref = spec.get("endpointPickerRef") or {}
        port = _int((ref.get("port") or {}).get("number"))
        parents = (pool.get("status") or {}).get("parents") or []
    else:
        ports = [_int(spec.get("targetPortNumber"))]
        ref = spec.get("extensionRef") or {}
        port = _int(ref.get("portNumber"))
        parents = (pool.get("status") or {}).get("parent") or []
    selected = [p for p in pods if selector_matches(match_labels, expressions, labels_of(p))]
    return {
        "name": name_of(pool), "group": group, "version": version, "api_version": "%s/%s" % (group, version),
        "selector": match_labels, "match_expressions": expressions, "target_ports": [p for p in ports if p],
        "endpoint_picker": {"name": ref.get("name"), "kind": ref.get("kind") or "Service", "port": port,
                            "failure_mode": ref.get("failureMode")} if ref else None,
        "parents": [{"gateway": (p.get("parentRef") or {}).get("name"),
                     "accepted": condition(None, "Accepted", p.get("conditions") or []),
                     "resolved_refs": condition(None, "ResolvedRefs", p.get("conditions") or [])} for p in parents],
        "pods": sorted(name_of(p) for p in selected),
        "ready_pods": sorted(name_of(p) for p in selected if (condition(p, "Ready") or {}).get("status") == "True"),
    }


def _is_epp(deployment):
    for container in ((((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
                      or []):
        image = container.get("image") or ""
        if container.get("name") == "epp" or "--pool-name" in _tokens(container) or re.search(
                r"/epp:|endpoint-picker|inference-scheduler|llm-d-router", image):
            return True
    return False


def _template_containers(deployment):
    return ((((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [])


def _selects(service, pod):
    selector = (service.get("spec") or {}).get("selector") or {}
    return bool(selector) and all(labels_of(pod).get(k) == v for k, v in selector.items())


def _deployment_selects(deployment, pod):
    selector = (deployment.get("spec") or {}).get("selector") or {}
    return selector_matches(selector.get("matchLabels") or {}, selector.get("matchExpressions") or [], labels_of(pod))


def _epp_summary(deployment, pods, services):
    containers = _template_containers(deployment)
    epp = next((c for c in containers if c.get("name") == "epp" or "--pool-name" in _tokens(c)), containers[0])
    words = _tokens(epp)
    envoy = next((c for c in containers if c is not epp and "envoy" in ((c.get("image") or "") + c.get("name", ""))),
                 None)
    own_pods = [p for p in pods if _deployment_selects(deployment, p)]
    own_services = [s for s in services if own_pods and any(_selects(s, p) for p in own_pods)
                    or not own_pods and re.search(EPP_SERVICE_PATTERN, name_of(s))
                    and name_of(s).startswith(name_of(deployment))]
    service = min(own_services, key=lambda s: (not re.search(EPP_SERVICE_PATTERN, name_of(s)), name_of(s)), default=None)
    http, scheme, _skipped = choose_http_port((service.get("spec") or {}).get("ports") or []) if service else (None,) * 3
    status = deployment.get("status") or {}
    auth = (flag_values(words, "--metrics-endpoint-auth") or ["true"])[0].lower() not in ("false", "0")
    return {
        "name": name_of(deployment), "image": epp.get("image"),
        "replicas": (deployment.get("spec") or {}).get("replicas", 1), "ready_replicas": status.get("readyReplicas", 0),
        "pool": (flag_values(words, "--pool-name") or [None])[0],
        "pool_group": (flag_values(words, "--pool-group") or [POOL_GROUP])[0],
        "service": name_of(service) if service else None,
        "service_ports": [{"name": p.get("name"), "port": p.get("port"), "target_port": p.get("targetPort")}
                          for p in (service.get("spec") or {}).get("ports") or []] if service else [],
        # Standalone: its Service fronts HTTP (today's chart: Envoy beside the EPP; GAIE's older one: --http-port).
        "standalone": http is not None,
        "http_port": http.get("port") if http else None,
        "envoy_container": envoy.get("name") if envoy is not None else None,
        "metrics_auth": auth, "pods": [pod_summary(p) for p in own_pods],
    }


def _gateway_summary(gateway, classes, services):
    spec = gateway.get("spec") or {}
    class_name = spec.get("gatewayClassName")
    gateway_class = (classes or {}).get(class_name)
    own = [s for s in services if labels_of(s).get(GATEWAY_NAME_LABEL) == name_of(gateway)
           or name_of(s) in (name_of(gateway), "%s-%s" % (name_of(gateway), class_name))]
    return {
        "name": name_of(gateway), "class": class_name,
        "class_found": None if classes is None else gateway_class is not None,
        "controller": ((gateway_class or {}).get("spec") or {}).get("controllerName"),
        "class_accepted": condition(gateway_class, "Accepted") if gateway_class else None,
        "accepted": condition(gateway, "Accepted"), "programmed": condition(gateway, "Programmed"),
        "listeners": [{"name": item.get("name"), "port": item.get("port"), "protocol": item.get("protocol"),
                       "hostname": item.get("hostname")} for item in spec.get("listeners") or []],
        "addresses": gateway_addresses(gateway),
        "services": [{"name": name_of(s), "type": (s.get("spec") or {}).get("type") or "ClusterIP",
                      "address": lb_address(s)} for s in sorted(own, key=name_of)],
    }


def _route_summary(route, namespace, pools_by_group, gateways):
    spec = route.get("spec") or {}
    backends, timeouts = [], []
    for index, rule in enumerate(spec.get("rules") or []):
        for ref in rule.get("backendRefs") or []:
            entry = {"rule": index, "group": ref.get("group", ""), "kind": ref.get("kind") or "Service",
                     "name": ref.get("name"), "port": ref.get("port")}
            if entry["kind"] == "InferencePool":
                found = pools_by_group.get(entry["group"])
                entry["resolves"] = None if found is None else entry["name"] in found
                entry["found_in_groups"] = sorted(g for g, names in pools_by_group.items()
                                                  if names is not None and entry["name"] in names)
            backends.append(entry)
        configured = rule.get("timeouts") or {}
        timeouts.append({"rule": index, "request": configured.get("request"),
                         "backend_request": configured.get("backendRequest")})
    parents = []
    statuses = (route.get("status") or {}).get("parents") or []
    for ref in spec.get("parentRefs") or []:
        name, ns = ref.get("name"), ref.get("namespace") or namespace
        reported = next((s for s in statuses if (s.get("parentRef") or {}).get("name") == name
                         and ((s.get("parentRef") or {}).get("namespace") or namespace) == ns), None)
        gateway = next((g for g in gateways or [] if g["name"] == name), None) if ns == namespace else None
        parents.append({"name": name, "namespace": ns, "kind": ref.get("kind") or "Gateway",
                        "gateway_found": None if gateways is None or ns != namespace else gateway is not None,
                        "gateway_class": gateway["class"] if gateway else None,
                        "controller": (reported or {}).get("controllerName") or (gateway or {}).get("controller"),
                        "reported": reported is not None,
                        "accepted": condition(None, "Accepted", (reported or {}).get("conditions") or []),
                        "resolved_refs": condition(None, "ResolvedRefs", (reported or {}).get("conditions") or [])})
    return {"name": name_of(route), "parents": parents, "backends": backends, "timeouts": timeouts}


def _openshift_route_summary(route):
    spec = route.get("spec") or {}
    timeout = _meta(route, "annotations").get(ROUTE_TIMEOUT_ANNOTATION)
    ingresses = (route.get("status") or {}).get("ingress") or []
    return {"name": name_of(route), "host": spec.get("host"), "to": (spec.get("to") or {}).get("name"),
            "tls": (spec.get("tls") or {}).get("termination"), "admitted": any(route_admitted(i) for i in ingresses),
            "timeout": timeout, "timeout_seconds": route_timeout_seconds(timeout) if timeout is not None else None}


def _ingress_summary(ingress):
    spec = ingress.get("spec") or {}
    return {"name": name_of(ingress), "class": spec.get("ingressClassName"),
            "backends": sorted(ingress_backends(ingress)), "address": lb_address(ingress)}


def build_inventory(raw, namespace, guide=None):
    """The inventory (plain data, the module's RV(inventory)) from read_objects()' wire JSON. Pure."""
    pods = [p for p in raw.get("pods") or [] if not guide or labels_of(p).get(GUIDE_LABEL) in (None, guide)]
    services = raw.get("services") or []
    deployments = raw.get("deployments") or []
    classes = None if raw.get("gatewayclasses") is None else {name_of(c): c for c in raw["gatewayclasses"]}
    gateways = None if raw.get("gateways") is None else [_gateway_summary(g, classes, services)
                                                         for g in sorted(raw["gateways"], key=name_of)]
    pools = []
    versions = (("inferencepools", POOL_GROUP, "v1"), ("inferencepools_v1alpha2", POOL_GROUP_ALPHA, "v1alpha2"))
    for key, group, version in versions:
        pools.extend(_pool_summary(p, group, version, pods) for p in sorted(raw.get(key) or [], key=name_of))
    crds = raw.get("crds") or {}
    pools_by_group = {}  # the pool names of each group; None when unknown (refused), empty when not installed
    for key, group in (("inferencepools", POOL_GROUP), ("inferencepools_v1alpha2", POOL_GROUP_ALPHA)):
        if raw.get(key) is not None:
            pools_by_group[group] = {name_of(p) for p in raw[key]}
        else:
            pools_by_group[group] = set() if crds.get(READS[key][4]) is False else None
    epp_deployments = [d for d in deployments if _is_epp(d)]
    if guide and any(name_of(d) == "%s-epp" % guide for d in epp_deployments):
        epp_deployments = [d for d in epp_deployments if name_of(d) == "%s-epp" % guide]
    epps = [_epp_summary(d, pods, services) for d in sorted(epp_deployments, key=name_of)]
    special = {p["name"] for e in epps for p in e["pods"]} | {
        name_of(p) for p in pods for g in gateways or [] for s in g["services"]
        for svc in services if name_of(svc) == s["name"] and _selects(svc, p)}
    pooled = {name for pool in pools for name in pool["pods"]}
    servers = [pod_summary(p) for p in sorted(pods, key=name_of) if name_of(p) not in special and (
        labels_of(p).get(ROLE_LABEL) or name_of(p) in pooled
        or any(is_model_server(c) for c in (p.get("spec") or {}).get("containers") or []))]
    model_deployments = [{"name": name_of(d), "role": labels_of(d).get(ROLE_LABEL) or (
        (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL),
        "replicas": (d.get("spec") or {}).get("replicas", 1), "ready_replicas": (d.get("status") or {}).get("readyReplicas", 0)}
        for d in sorted(deployments, key=name_of) if d not in epp_deployments and any(
            is_model_server(c) for c in _template_containers(d))]
    return {
        "namespace": namespace, "guide": guide, "crds": dict(raw.get("crds") or {}),
        "refused": list(raw.get("refused") or []),
        "gateways": gateways,
        "httproutes": None if raw.get("httproutes") is None else [
            _route_summary(r, namespace, pools_by_group, gateways) for r in sorted(raw["httproutes"], key=name_of)],
        "inference_pools": None if raw.get("inferencepools") is None and raw.get("inferencepools_v1alpha2") is None
        else pools,
        "pods_read": raw.get("pods") is not None,
        "epp": epps,
        "epp_read": raw.get("deployments") is not None,
        "model_servers": {"deployments": model_deployments, "pods": servers},
        "ingresses": None if raw.get("ingresses") is None else [
            _ingress_summary(i) for i in sorted(raw["ingresses"], key=name_of)],
        "routes": None if raw.get("routes") is None else [
            _openshift_route_summary(r) for r in sorted(raw["routes"], key=name_of)],
        "services": None if raw.get("services") is None else sorted(name_of(s) for s in services),
        "mode": exposure_mode(gateways, epps),
    }


def exposure_mode(gateways, epps):
    """gateway (a Gateway exists), standalone (an EPP Service has an HTTP port), or none."""
    if gateways:
        return "gateway"
    if any(e["standalone"] for e in epps):
        return "standalone"
    return "none"
