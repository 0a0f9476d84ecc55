"""The controllers: Deployment -> ReplicaSet -> Pods (replacing deleted pods), Endpoints from Ready pods, and the
status that gateway, ingress and router controllers write (with the addresses the network layer bound).

Level-triggered like the real ones: every store change marks the world dirty and one pass reconciles all of it.
Writes that change nothing do not notify, so the passes settle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable

from .resources import find_resource
from .store import ApiError, Store, now_rfc3339

log = logging.getLogger(__name__)

DEPLOYMENTS = find_resource("apps", "v1", "deployments")
REPLICASETS = find_resource("apps", "v1", "replicasets")
PODS = find_resource("", "v1", "pods")
SERVICES = find_resource("", "v1", "services")
ENDPOINTS = find_resource("", "v1", "endpoints")
GATEWAYS = find_resource("gateway.networking.k8s.io", "v1", "gateways")
GATEWAY_CLASSES = find_resource("gateway.networking.k8s.io", "v1", "gatewayclasses")
HTTPROUTES = find_resource("gateway.networking.k8s.io", "v1", "httproutes")
POOLS = (find_resource("inference.networking.k8s.io", "v1", "inferencepools"),
         find_resource("inference.networking.x-k8s.io", "v1alpha2", "inferencepools"))
INGRESSES = find_resource("networking.k8s.io", "v1", "ingresses")
ROUTES = find_resource("route.openshift.io", "v1", "routes")

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
ROUTER_CANONICAL_HOSTNAME = "router-default.apps.sandbox.llm-d.local"
# What each GatewayClass's controller calls itself in HTTPRoute status.
CONTROLLER_NAMES = {"istio": "istio.io/gateway-controller", "kgateway": "kgateway.dev/kgateway",
                    "agentgateway": "agentgateway.dev/agentgateway"}
# k8s.io/apimachinery/pkg/util/rand: the alphabet of generated names and pod-template-hash.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATED_NAME_BASE = 58  # 63 minus the 5 random characters


def safe_encode(text: str) -> str:
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


def pod_template_hash(template: dict) -> str:
    """FNV-32a of the pod template, safe-encoded from its decimal digits, as the Deployment controller does."""
    value = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True).encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return safe_encode(str(value))


def generated_name(base: str) -> str:
    """names.SimpleNameGenerator: the base cut to 58 characters plus 5 random ones."""
    return base[:MAX_GENERATED_NAME_BASE] + "".join(random.choices(SAFE_ALPHABET, k=5))


def owner_reference(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def owned_by(obj: dict, owner: dict) -> bool:
    return any(ref.get("uid") == owner["metadata"]["uid"] for ref in obj["metadata"].get("ownerReferences") or [])


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def condition(previous: list | None, kind: str, ok: bool, reason: str, message: str = "",
              generation: int | None = None) -> dict:
    """A status condition that keeps its lastTransitionTime while its status does not change."""
    status = "True" if ok else "False"
    for old in previous or []:
        if old.get("type") == kind and old.get("status") == status and old.get("reason") == reason:
            return old
    cond = {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now_rfc3339()}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def resolve_target_port(pod: dict, target_port: int | str) -> int | None:
    """A Service's targetPort on one pod: a number, or the name of one of the pod's container ports."""
    if isinstance(target_port, int) or str(target_port).isdigit():
        return int(target_port)
    for container in (pod["spec"].get("initContainers") or []) + (pod["spec"].get("containers") or []):
        for port in container.get("ports") or []:
            if port.get("name") == target_port:
                return port["containerPort"]
    return None


class Controllers:
    def __init__(self, store: Store, addresses: Callable[[str], dict | None]):
        """addresses("Kind/namespace/name") -> the load-balancer ingress entry the network bound for that
        object ({"ip": ...} or {"hostname": ...}), None while unbound."""
        self.store, self.addresses = store, addresses
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self.store.subscribe(self._on_event)
        self._task = asyncio.create_task(self._run())
        self.poke()

    async def stop(self) -> None:
        if self._task is None:
            return
        self.store.unsubscribe(self._on_event)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def poke(self) -> None:
        self._dirty.set()

    def _on_event(self, event: str, obj: dict) -> None:
        self._dirty.set()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                self.reconcile()
            except ApiError as exc:  # raced with a delete: the next pass sees the new world
                log.debug("reconcile: %s", exc.message)

    def reconcile(self) -> None:
        for deployment in self.store.list(DEPLOYMENTS)[0]:
            self.deployment(deployment)
        for replicaset in self.store.list(REPLICASETS)[0]:
            self.replicaset(replicaset)
        for service in self.store.list(SERVICES)[0]:
            self.endpoints(service)
            self.service_status(service)
        for gateway_class in self.store.list(GATEWAY_CLASSES)[0]:
            self.set_status(GATEWAY_CLASSES, gateway_class, {"conditions": [condition(
                gateway_class.get("status", {}).get("conditions"), "Accepted", True, "Accepted",
                "Handled by " + gateway_class["spec"].get("controllerName", ""),
                gateway_class["metadata"]["generation"])]})
        for gateway in self.store.list(GATEWAYS)[0]:
            self.gateway_status(gateway)
        for route in self.store.list(HTTPROUTES)[0]:
            self.httproute_status(route)
        for res in POOLS:
            for pool in self.store.list(res)[0]:
                self.pool_status(res, pool)
        for ingress in self.store.list(INGRESSES)[0]:
            entry = self.addresses(f"Ingress/{ingress['metadata']['namespace']}/{ingress['metadata']['name']}")
            self.set_status(INGRESSES, ingress, {"loadBalancer": {"ingress": [entry]} if entry else {}})
        for route in self.store.list(ROUTES)[0]:
            self.route_status(route)

    def set_status(self, res, obj: dict, status: dict) -> None:
        if obj.get("status") != status:
            self.store.update_status(res, obj["metadata"].get("namespace"), obj["metadata"]["name"], status)

    # ---- workloads -------------------------------------------------------------------------------

    def deployment(self, deployment: dict) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        template_hash = pod_template_hash(spec["template"])
        name = f"{meta['name']}-{template_hash}"
        replicasets = [rs for rs in self.store.list(REPLICASETS, meta["namespace"])[0] if owned_by(rs, deployment)]
        if not any(rs["metadata"]["name"] == name for rs in replicasets):
            template = json.loads(json.dumps(spec["template"]))
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = template_hash
            selector = json.loads(json.dumps(spec["selector"]))
            selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
            replicas = spec.get("replicas", 1)
            self.store.create({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": meta["namespace"],
                             "labels": template["metadata"]["labels"],
                             "annotations": {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                             "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                                             "deployment.kubernetes.io/revision": "1"},
                             "ownerReferences": [owner_reference(deployment)]},
                "spec": {"replicas": replicas, "selector": selector, "template": template}})
            return
        counts = {key: sum(rs.get("status", {}).get(key, 0) for rs in replicasets)
                  for key in ("replicas", "readyReplicas", "availableReplicas")}
        wanted = spec.get("replicas", 1)
        previous = deployment.get("status", {}).get("conditions")
        available = counts["availableReplicas"] >= wanted
        status = {"observedGeneration": meta["generation"], "replicas": counts["replicas"],
                  "updatedReplicas": counts["replicas"], "readyReplicas": counts["readyReplicas"],
                  "availableReplicas": counts["availableReplicas"],
                  "conditions": [
                      condition(previous, "Available", available,
                                "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                                "Deployment has minimum availability." if available
                                else "Deployment does not have minimum availability."),
                      condition(previous, "Progressing", True,
                                "NewReplicaSetAvailable" if available else "ReplicaSetUpdated",
                                f'ReplicaSet "{name}" has successfully progressed.' if available
                                else f'ReplicaSet "{name}" is progressing.')]}
        if wanted - counts["availableReplicas"] > 0:
            status["unavailableReplicas"] = wanted - counts["availableReplicas"]
        for key in ("readyReplicas", "availableReplicas"):
            if not status[key]:
                del status[key]
        self.set_status(DEPLOYMENTS, deployment, status)

    def replicaset(self, replicaset: dict) -> None:
        meta, spec = replicaset["metadata"], replicaset["spec"]
        pods = [p for p in self.store.list(PODS, meta["namespace"])[0] if owned_by(p, replicaset)]
        wanted = spec.get("replicas", 1)
        for _missing in range(wanted - len(pods)):
            pods.append(self.create_pod(replicaset))
        for extra in pods[wanted:]:
            self.store.delete(PODS, meta["namespace"], extra["metadata"]["name"])
        pods = pods[:wanted]
        ready = sum(1 for p in pods if is_ready(p))
        status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "observedGeneration": meta["generation"]}
        if ready:
            status.update(readyReplicas=ready, availableReplicas=ready)
        self.set_status(REPLICASETS, replicaset, status)

    def create_pod(self, replicaset: dict) -> dict:
        template = replicaset["spec"]["template"]
        spec = json.loads(json.dumps(template["spec"]))
        for key, value in (("restartPolicy", "Always"), ("terminationGracePeriodSeconds", 30),
                           ("dnsPolicy", "ClusterFirst"), ("schedulerName", "default-scheduler"),
                           ("serviceAccountName", "default"), ("enableServiceLinks", True)):
            spec.setdefault(key, value)
        metadata = {"name": generated_name(replicaset["metadata"]["name"] + "-"),
                    "generateName": replicaset["metadata"]["name"] + "-",
                    "namespace": replicaset["metadata"]["namespace"],
                    "labels": dict(template.get("metadata", {}).get("labels") or {}),
                    "ownerReferences": [owner_reference(replicaset)]}
        if template.get("metadata", {}).get("annotations"):
            metadata["annotations"] = dict(template["metadata"]["annotations"])
        return self.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})

    # ---- services --------------------------------------------------------------------------------

    def endpoints(self, service: dict) -> None:
        meta, spec = service["metadata"], service["spec"]
        if not spec.get("selector"):
            return
        pods = [p for p in self.store.list(PODS, meta["namespace"], label_selector=spec["selector"])[0]
                if p.get("status", {}).get("podIP")]
        subsets = []
        for port in spec.get("ports") or []:
            entry = {"port": None, "protocol": port.get("protocol", "TCP")}
            for key in ("name", "appProtocol"):
                if key in port:
                    entry[key] = port[key]
            ready, not_ready = [], []
            for pod in pods:
                target = resolve_target_port(pod, port.get("targetPort", port["port"]))
                if target is None:
                    continue
                entry["port"] = target
                address = {"ip": pod["status"]["podIP"], "nodeName": pod["spec"].get("nodeName", ""),
                           "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"],
                                         "namespace": meta["namespace"], "uid": pod["metadata"]["uid"]}}
                (ready if is_ready(pod) else not_ready).append(address)
            if entry["port"] is None:
                continue
            subset = {"ports": [entry]}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            merged = next((s for s in subsets if s.get("addresses") == subset.get("addresses")
                           and s.get("notReadyAddresses") == subset.get("notReadyAddresses")), None)
            if merged:
                merged["ports"].append(entry)
            else:
                subsets.append(subset)
        body = {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                             "labels": dict(meta.get("labels") or {})}}
        if subsets:
            body["subsets"] = subsets
        try:
            current = self.store.get(ENDPOINTS, meta["namespace"], meta["name"])
        except ApiError:
            self.store.create(body)
            return
        if {k: current.get(k) for k in ("subsets",)} != {k: body.get(k) for k in ("subsets",)} or \
                current["metadata"].get("labels") != body["metadata"]["labels"]:
            current["metadata"]["labels"] = body["metadata"]["labels"]
            current.pop("subsets", None)
            current.update({k: v for k, v in body.items() if k == "subsets"})
            self.store.replace(current)

    def service_status(self, service: dict) -> None:
        status: dict = {"loadBalancer": {}}
        if service["spec"].get("type") == "LoadBalancer":
            entry = self.addresses(f"Service/{service['metadata']['namespace']}/{service['metadata']['name']}")
            if entry:
                status["loadBalancer"]["ingress"] = [dict(entry, ipMode="VIP") if "ip" in entry else entry]
        self.set_status(SERVICES, service, status)

    # ---- gateways and routes ---------------------------------------------------------------------

    def gateway_service(self, gateway: dict) -> dict | None:
        namespace, name = gateway["metadata"]["namespace"], gateway["metadata"]["name"]
        services = self.store.list(SERVICES, namespace, label_selector={GATEWAY_NAME_LABEL: name})[0]
        return services[0] if services else None

    def gateway_status(self, gateway: dict) -> None:
        meta, spec = gateway["metadata"], gateway["spec"]
        previous = gateway.get("status", {})
        service = self.gateway_service(gateway)
        addresses = []
        if service is not None:
            svc_meta, svc_spec = service["metadata"], service["spec"]
            lb = service.get("status", {}).get("loadBalancer", {}).get("ingress") or []
            if lb:
                addresses = [{"type": "IPAddress", "value": e["ip"]} if "ip" in e
                             else {"type": "Hostname", "value": e["hostname"]} for e in lb]
            elif spec.get("gatewayClassName") == "istio":  # Istio reports the Service's DNS name
                addresses = [{"type": "Hostname",
                              "value": f"{svc_meta['name']}.{svc_meta['namespace']}.svc.cluster.local"}]
            elif svc_spec.get("type") != "LoadBalancer":
                addresses = [{"type": "IPAddress", "value": svc_spec.get("clusterIP")}]
        programmed = bool(addresses) and service is not None and self.has_ready_endpoint(service)
        routes = [r for r in self.store.list(HTTPROUTES, meta["namespace"])[0]
                  if any(ref.get("name") == meta["name"] for ref in r["spec"].get("parentRefs") or [])]
        generation = meta["generation"]
        old_listeners = {item["name"]: item.get("conditions") for item in previous.get("listeners") or []}
        listeners = [{"name": listener["name"], "attachedRoutes": len(routes),
                      "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
                                         {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}],
                      "conditions": [
                          condition(old_listeners.get(listener["name"]), "Accepted", True, "Accepted",
                                    "No errors found", generation),
                          condition(old_listeners.get(listener["name"]), "Conflicted", False, "NoConflicts",
                                    "No errors found", generation),
                          condition(old_listeners.get(listener["name"]), "Programmed", True, "Programmed",
                                    "No errors found", generation),
                          condition(old_listeners.get(listener["name"]), "ResolvedRefs", True, "ResolvedRefs",
                                    "No errors found", generation)]}
                     for listener in spec.get("listeners") or []]
        status = {
            "addresses": addresses,
            "conditions": [
                condition(previous.get("conditions"), "Accepted", True, "Accepted", "Resource accepted", generation),
                condition(previous.get("conditions"), "Programmed", programmed,
                          "Programmed" if programmed else "AddressNotAssigned",
                          "Resource programmed, assigned to service(s) "
                          f"{service['metadata']['name']}.{meta['namespace']}.svc.cluster.local:80"
                          if programmed else "Assigned to service(s), but no ready data plane", generation)],
            "listeners": listeners}
        if not addresses:
            del status["addresses"]
        self.set_status(GATEWAYS, gateway, status)

    def has_ready_endpoint(self, service: dict) -> bool:
        try:
            endpoints = self.store.get(ENDPOINTS, service["metadata"]["namespace"], service["metadata"]["name"])
        except ApiError:
            return False
        return any(s.get("addresses") for s in endpoints.get("subsets") or [])

    def httproute_status(self, route: dict) -> None:
        meta = route["metadata"]
        previous = {json.dumps(p.get("parentRef"), sort_keys=True): p.get("conditions")
                    for p in route.get("status", {}).get("parents") or []}
        resolved, message = True, "Resolved all the Object references for the Route"
        for rule in route["spec"].get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                if ref.get("kind") == "InferencePool" and not self.pool_exists(meta["namespace"], ref):
                    resolved, message = False, f"InferencePool {meta['namespace']}/{ref.get('name')} not found"
        parents = []
        for parent in route["spec"].get("parentRefs") or []:
            ref = {"group": parent.get("group", "gateway.networking.k8s.io"),
                   "kind": parent.get("kind", "Gateway"), "name": parent["name"],
                   "namespace": parent.get("namespace", meta["namespace"])}
            class_name = self.gateway_class_of(ref["namespace"], ref["name"])
            old = previous.get(json.dumps(ref, sort_keys=True))
            parents.append({"parentRef": ref,
                            "controllerName": CONTROLLER_NAMES.get(class_name, f"{class_name}.sandbox/controller"),
                            "conditions": [
                                condition(old, "Accepted", True, "Accepted", "Route was valid", meta["generation"]),
                                condition(old, "ResolvedRefs", resolved, "ResolvedRefs" if resolved
                                          else "BackendNotFound", message, meta["generation"])]})
        self.set_status(HTTPROUTES, route, {"parents": parents})

    def pool_exists(self, namespace: str, ref: dict) -> bool:
        for res in POOLS:
            if ref.get("group", res.group) != res.group:
                continue
            try:
                self.store.get(res, namespace, ref["name"])
                return True
            except ApiError:
                pass
        return False

    def pool_status(self, res, pool: dict) -> None:
        """What the gateway implementation reports on a pool: one entry per Gateway whose HTTPRoutes use it
        (`parents` in v1, `parent` in v1alpha2); none in standalone mode."""
        meta = pool["metadata"]
        field_name = "parents" if res.version == "v1" else "parent"
        previous = {json.dumps(p.get("parentRef"), sort_keys=True): p.get("conditions")
                    for p in pool.get("status", {}).get(field_name) or []}
        parents = []
        for route in self.store.list(HTTPROUTES, meta["namespace"])[0]:
            uses_pool = any(ref.get("kind") == "InferencePool" and ref.get("name") == meta["name"]
                            and ref.get("group", res.group) == res.group
                            for rule in route["spec"].get("rules") or [] for ref in rule.get("backendRefs") or [])
            if not uses_pool:
                continue
            for parent in route["spec"].get("parentRefs") or []:
                ref = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": parent["name"],
                       "namespace": parent.get("namespace", meta["namespace"])}
                old = previous.get(json.dumps(ref, sort_keys=True))
                entry = {"parentRef": ref, "conditions": [
                    condition(old, "Accepted", True, "Accepted", "", meta["generation"]),
                    condition(old, "ResolvedRefs", True, "ResolvedRefs", "", meta["generation"])]}
                if entry not in parents:
                    parents.append(entry)
        if parents or pool.get("status"):
            self.set_status(res, pool, {field_name: parents})

    def gateway_class_of(self, namespace: str, name: str) -> str:
        try:
            return self.store.get(GATEWAYS, namespace, name)["spec"].get("gatewayClassName", "")
        except ApiError:
            return ""

    def route_status(self, route: dict) -> None:
        """The router admits every route once it listens; the real status has no reason on Admitted."""
        if self.addresses("Router/default") is None:
            return
        previous = (route.get("status", {}).get("ingress") or [{}])[0].get("conditions") or []
        admitted = next((c for c in previous if c.get("type") == "Admitted" and c.get("status") == "True"),
                        {"type": "Admitted", "status": "True", "lastTransitionTime": now_rfc3339()})
        self.set_status(ROUTES, route, {"ingress": [{
            "host": route["spec"].get("host", ""), "routerName": "default", "wildcardPolicy": "None",
            "routerCanonicalHostname": ROUTER_CANONICAL_HOSTNAME, "conditions": [admitted]}]})
