"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for, with kubectl's columns."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from .resources import Resource

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
Cell = Callable[[dict], object]


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery duration.HumanDuration, as kubectl's AGE column shows it."""
    seconds = int(seconds)
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def _parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _since(value: str | None) -> str:
    when = _parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.UTC) - when).total_seconds())


def _age(obj: dict) -> str:
    return _since(obj["metadata"].get("creationTimestamp"))


def _condition(obj: dict, kind: str) -> str:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond.get("status", "")
    return ""


def _joined(values: list, empty: str = "<none>") -> str:
    values = [str(v) for v in values if v not in (None, "")]
    return ",".join(values) if values else empty


# ---- pods (kubectl's printPod, with native sidecars counted as containers) ---------------------------

def _sidecar_names(pod: dict) -> set[str]:
    return {c["name"] for c in pod.get("spec", {}).get("initContainers") or [] if c.get("restartPolicy") == "Always"}


def _pod_statuses(pod: dict) -> list[dict]:
    status = pod.get("status", {})
    sidecars = _sidecar_names(pod)
    return ([s for s in status.get("initContainerStatuses") or [] if s.get("name") in sidecars]
            + list(status.get("containerStatuses") or []))


def _pod_ready(pod: dict) -> str:
    total = len(pod.get("spec", {}).get("containers") or []) + len(_sidecar_names(pod))
    ready = sum(1 for s in _pod_statuses(pod) if s.get("ready"))
    return f"{ready}/{total}"


def _pod_status(pod: dict) -> str:
    status = pod.get("status", {})
    reason = status.get("reason") or status.get("phase") or "Unknown"
    sidecars = _sidecar_names(pod)
    init_statuses = [s for s in status.get("initContainerStatuses") or [] if s.get("name") not in sidecars]
    for i, init in enumerate(init_statuses):
        state = init.get("state", {})
        if state.get("terminated", {}).get("exitCode") == 0:
            continue
        if state.get("terminated"):
            reason = "Init:" + (state["terminated"].get("reason") or f"ExitCode:{state['terminated'].get('exitCode')}")
        elif state.get("waiting", {}).get("reason") not in (None, "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{len(init_statuses)}"
        break
    else:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state", {})
            if state.get("waiting", {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated"):
                term = state["terminated"]
                reason = term.get("reason") or f"ExitCode:{term.get('exitCode')}"
            elif state.get("running") and cs.get("ready"):
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running" if _condition(pod, "Ready") == "True" else "NotReady"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_restarts(pod: dict) -> str:
    statuses = _pod_statuses(pod)
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    finished = [s.get("lastState", {}).get("terminated", {}).get("finishedAt") for s in statuses]
    finished = [f for f in finished if f]
    return f"{restarts} ({_since(max(finished))} ago)" if restarts and finished else str(restarts)


# ---- services, ingresses, gateways, routes -------------------------------------------------------------

def _service_external_ip(svc: dict) -> str:
    spec = svc.get("spec", {})
    external = list(spec.get("externalIPs") or [])
    if spec.get("type") == "LoadBalancer":
        ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []
        external += [i.get("ip") or i.get("hostname") for i in ingress]
        return _joined(external, "<pending>")
    if spec.get("type") == "ExternalName":
        return spec.get("externalName", "<none>")
    return _joined(external)


def _service_ports(svc: dict) -> str:
    ports = []
    for port in svc.get("spec", {}).get("ports") or []:
        text = f"{port['port']}:{port['nodePort']}" if port.get("nodePort") else str(port["port"])
        ports.append(f"{text}/{port.get('protocol', 'TCP')}")
    return _joined(ports)


def _ingress_address(obj: dict) -> str:
    ingress = obj.get("status", {}).get("loadBalancer", {}).get("ingress") or []
    return _joined([i.get("ip") or i.get("hostname") for i in ingress], "")


def _ingress_ports(ing: dict) -> str:
    return "80, 443" if ing.get("spec", {}).get("tls") else "80"


def _endpoints(ep: dict) -> str:
    pairs = [f"{a['ip']}:{p['port']}" for subset in ep.get("subsets") or []
             for p in subset.get("ports") or [] for a in subset.get("addresses") or []]
    if len(pairs) > 3:
        return ",".join(pairs[:3]) + f" + {len(pairs) - 3} more..."
    return _joined(pairs)


def _route_termination(route: dict) -> str:
    tls = route.get("spec", {}).get("tls") or {}
    if not tls:
        return ""
    policy = tls.get("insecureEdgeTerminationPolicy")
    return f"{tls.get('termination', '')}/{policy}" if policy else tls.get("termination", "")


def _node_roles(node: dict) -> str:
    prefix = "node-role.kubernetes.io/"
    return _joined(sorted(k[len(prefix):] for k in node["metadata"].get("labels", {}) if k.startswith(prefix)))


_NAME = ("Name", "string", lambda o: o["metadata"]["name"])
_AGE = ("Age", "string", _age)
# kind -> [(column name, type, cell)]; the kinds not listed print NAME and AGE, as CRDs without columns do.
_COLUMNS: dict[str, list[tuple[str, str, Cell]]] = {
    "Pod": [_NAME, ("Ready", "string", _pod_ready), ("Status", "string", _pod_status),
            ("Restarts", "string", _pod_restarts), _AGE,
            ("IP", "string", lambda p: p.get("status", {}).get("podIP", "<none>")),
            ("Node", "string", lambda p: p.get("spec", {}).get("nodeName", "<none>"))],
    "Service": [_NAME, ("Type", "string", lambda s: s["spec"].get("type", "ClusterIP")),
                ("Cluster-IP", "string", lambda s: s["spec"].get("clusterIP") or "<none>"),
                ("External-IP", "string", _service_external_ip), ("Port(s)", "string", _service_ports), _AGE,
                ("Selector", "string", lambda s: _joined(f"{k}={v}" for k, v in
                                                         (s["spec"].get("selector") or {}).items()))],
    "Endpoints": [_NAME, ("Endpoints", "string", _endpoints), _AGE],
    "Namespace": [_NAME, ("Status", "string", lambda n: n.get("status", {}).get("phase", "")), _AGE],
    "Node": [_NAME, ("Status", "string", lambda n: "Ready" if _condition(n, "Ready") == "True" else "NotReady"),
             ("Roles", "string", _node_roles), _AGE,
             ("Version", "string", lambda n: n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""))],
    "Deployment": [_NAME, ("Ready", "string", lambda d: f"{d.get('status', {}).get('readyReplicas', 0)}/"
                                                        f"{d['spec'].get('replicas', 0)}"),
                   ("Up-to-date", "integer", lambda d: d.get("status", {}).get("updatedReplicas", 0)),
                   ("Available", "integer", lambda d: d.get("status", {}).get("availableReplicas", 0)), _AGE],
    "ReplicaSet": [_NAME, ("Desired", "integer", lambda r: r["spec"].get("replicas", 0)),
                   ("Current", "integer", lambda r: r.get("status", {}).get("replicas", 0)),
                   ("Ready", "integer", lambda r: r.get("status", {}).get("readyReplicas", 0)), _AGE],
    "Ingress": [_NAME, ("Class", "string", lambda i: i.get("spec", {}).get("ingressClassName") or "<none>"),
                ("Hosts", "string", lambda i: _joined([r.get("host") for r in i.get("spec", {}).get("rules") or []],
                                                      "*")),
                ("Address", "string", _ingress_address), ("Ports", "string", _ingress_ports), _AGE],
    "GatewayClass": [_NAME, ("Controller", "string", lambda g: g.get("spec", {}).get("controllerName", "")),
                     ("Accepted", "string", lambda g: _condition(g, "Accepted")), _AGE],
    "Gateway": [_NAME, ("Class", "string", lambda g: g.get("spec", {}).get("gatewayClassName", "")),
                ("Address", "string", lambda g: _joined([a.get("value") for a in
                                                         g.get("status", {}).get("addresses") or []], "")),
                ("Programmed", "string", lambda g: _condition(g, "Programmed")), _AGE],
    "HTTPRoute": [_NAME, ("Hostnames", "string", lambda r: _joined(r.get("spec", {}).get("hostnames") or [], "")),
                  _AGE],
    "Route": [_NAME, ("Host/Port", "string", lambda r: r.get("spec", {}).get("host", "")),
              ("Path", "string", lambda r: r.get("spec", {}).get("path", "")),
              ("Services", "string", lambda r: r.get("spec", {}).get("to", {}).get("name", "")),
              ("Port", "string", lambda r: str(r.get("spec", {}).get("port", {}).get("targetPort", "<all>"))),
              ("Termination", "string", _route_termination),
              ("Wildcard", "string", lambda r: r.get("spec", {}).get("wildcardPolicy", "None"))],
}
_WIDE_ONLY = {"IP", "Node", "Selector"}  # shown by `kubectl get -o wide` only (priority 1)


def _row_object(obj: dict, include_object: str) -> dict | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def to_table(res: Resource, items: list[dict], resource_version: str, include_object: str = "Metadata",
             continue_token: str | None = None) -> dict:
    columns = _COLUMNS.get(res.kind, [_NAME, _AGE])
    metadata = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
        "columnDefinitions": [{"name": name, "type": kind, "format": "name" if name == "Name" else "",
                               "description": "", "priority": 1 if name in _WIDE_ONLY else 0}
                              for name, kind, _cell in columns],
        "rows": [{"cells": [cell(obj) for _name, _kind, cell in columns], "object": _row_object(obj, include_object)}
                 for obj in items],
    }
