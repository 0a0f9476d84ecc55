"""Status controllers for what has no real controller here: the Gateway classes the sandbox runs (istio,
kgateway, agentgateway), its IngressClass, the OpenShift router, and load balancers.

Each writes status only for what it owns, as real controllers do: a Gateway whose GatewayClass names a
controller nobody runs keeps the status the CRD defaults (Accepted Unknown, Pending), an Ingress of another
class and a Service with another `loadBalancerClass` keep whatever status they have. They are clients of
the API server (a watch cache, status subresource writes), level-triggered: every change marks the world
dirty and one pass reconciles all of it; writes that change nothing are not sent.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Callable

import aiohttp

from .kube import (ENDPOINT_SLICES, GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES, INGRESSES, POOLS, POOLS_ALPHA, ROUTES,
                   SERVICES, Cache, Kube, KubeError, Reconciler)

log = logging.getLogger(__name__)

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
ROUTER_CANONICAL_HOSTNAME = "router-default.apps.sandbox.llm-d.local"
# The GatewayClass controllers the sandbox runs, by controllerName, and the InferencePool groups each
# supports as a backendRef.
CONTROLLERS = {
    "istio.io/gateway-controller": ("inference.networking.k8s.io", "inference.networking.x-k8s.io"),
    "kgateway.dev/kgateway": ("inference.networking.k8s.io", "inference.networking.x-k8s.io"),
    "agentgateway.dev/agentgateway": ("inference.networking.k8s.io",),
}
INGRESS_CONTROLLER = "traefik.io/ingress-controller"
INGRESS_CLASSES = ("traefik",)  # IngressClass names the sandbox's ingress controller serves
POOL_RESOURCES = (POOLS, POOLS_ALPHA)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(previous: list | None, kind: str, ok: bool, reason: str, message: str = "",
              generation: int | None = None) -> dict:
    """A metav1.Condition, keeping lastTransitionTime while the status does not change."""
    status = "True" if ok else "False"
    old = next((c for c in previous or [] if c.get("type") == kind), None)
    cond = {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == status else now_rfc3339()}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


class StatusControllers(Reconciler):
    def __init__(self, kube: Kube, cache: Cache, addresses: Callable[[str], dict | None]):
        """addresses("Kind/namespace/name") -> the load-balancer ingress entry the data plane bound for that
        object ({"ip": ...} or {"hostname": ...}), None while unbound."""
        super().__init__(cache)
        self.kube, self.addresses = kube, addresses
        self._sent: dict[tuple, str] = {}

    async def reconcile_once(self) -> None:
        try:
            await self.reconcile()
        except (KubeError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.debug("reconcile: %s", exc)
            await asyncio.sleep(0.2)
            self.poke()

    async def reconcile(self) -> None:
        for service in self.cache.list(SERVICES):
            await self.service_status(service)
        for gateway_class in self.cache.list(GATEWAY_CLASSES):
            if gateway_class["spec"].get("controllerName") in CONTROLLERS:
                await self.set_status(GATEWAY_CLASSES, gateway_class, {"conditions": [condition(
                    (gateway_class.get("status") or {}).get("conditions"), "Accepted", True, "Accepted",
                    "Handled by " + gateway_class["spec"]["controllerName"], gateway_class["metadata"]["generation"])]})
        for gateway in self.cache.list(GATEWAYS):
            if self.controller_of(gateway):
                await self.gateway_status(gateway)
        for route in self.cache.list(HTTP_ROUTES):
            await self.httproute_status(route)
        for res in POOL_RESOURCES:
            for pool in self.cache.list(res):
                await self.pool_status(res, pool)
        for ingress in self.cache.list(INGRESSES):
            if ingress["spec"].get("ingressClassName") in INGRESS_CLASSES:
                entry = self.addresses(f"Ingress/{ingress['metadata']['namespace']}/{ingress['metadata']['name']}")
                await self.set_status(INGRESSES, ingress, {"loadBalancer": {"ingress": [entry]} if entry else {}})
        for route in self.cache.list(ROUTES):
            await self.route_status(route)

    async def set_status(self, res, obj: dict, status: dict) -> None:
        meta = obj["metadata"]
        key = (res.plural, meta.get("namespace", ""), meta["name"])
        wanted = json.dumps(status, sort_keys=True)
        current = json.dumps(_without_times(obj.get("status") or {}), sort_keys=True)
        if current == json.dumps(_without_times(status), sort_keys=True) or self._sent.get(key) == wanted:
            return
        try:
            await self.kube.patch(res, meta.get("namespace"), meta["name"], {"status": status}, subresource="status")
            self._sent[key] = wanted
        except KubeError as exc:
            if exc.code != 404:  # deleted meanwhile: nothing to report on
                raise

    # ---- load balancers --------------------------------------------------------------------------

    async def service_status(self, service: dict) -> None:
        spec = service["spec"]
        if spec.get("type") != "LoadBalancer" or spec.get("loadBalancerClass"):
            return  # another load-balancer implementation's Service: not ours to write
        entry = self.addresses(f"Service/{service['metadata']['namespace']}/{service['metadata']['name']}")
        status = {"loadBalancer": {"ingress": [dict(entry, ipMode="VIP") if "ip" in entry else entry]} if entry else {}}
        await self.set_status(SERVICES, service, status)

    # ---- gateways and routes ---------------------------------------------------------------------

    def controller_of(self, gateway: dict) -> str:
        """The controllerName of the Gateway's class, if the sandbox runs that controller."""
        gateway_class = self.cache.get(GATEWAY_CLASSES, None, gateway["spec"].get("gatewayClassName", ""))
        name = (gateway_class or {}).get("spec", {}).get("controllerName", "")
        return name if name in CONTROLLERS else ""

    def gateway_service(self, gateway: dict) -> dict | None:
        namespace, name = gateway["metadata"]["namespace"], gateway["metadata"]["name"]
        services = self.cache.list(SERVICES, namespace, {GATEWAY_NAME_LABEL: name})
        return services[0] if services else None

    def has_ready_endpoint(self, service: dict) -> bool:
        meta = service["metadata"]
        slices = self.cache.list(ENDPOINT_SLICES, meta["namespace"], {"kubernetes.io/service-name": meta["name"]})
        return any((e.get("conditions") or {}).get("ready") for s in slices for e in s.get("endpoints") or [])

    async def gateway_status(self, gateway: dict) -> None:
        meta, spec = gateway["metadata"], gateway["spec"]
        previous = gateway.get("status") or {}
        istio = self.controller_of(gateway) == "istio.io/gateway-controller"
        service = self.gateway_service(gateway)
        addresses = []
        if service is not None:
            svc_meta, svc_spec = service["metadata"], service["spec"]
            lb = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if lb:
                addresses = [{"type": "IPAddress", "value": e["ip"]} if "ip" in e
                             else {"type": "Hostname", "value": e["hostname"]} for e in lb]
            elif istio and svc_spec.get("type") != "LoadBalancer":  # Istio reports the Service's DNS name
                addresses = [{"type": "Hostname",
                              "value": f"{svc_meta['name']}.{svc_meta['namespace']}.svc.cluster.local"}]
            elif svc_spec.get("type") != "LoadBalancer":
                addresses = [{"type": "IPAddress", "value": svc_spec.get("clusterIP")}]
        # Istio: Programmed means the Service has an address; kgateway/agentgateway also want a ready proxy.
        programmed = bool(addresses) and (istio or (service is not None and self.has_ready_endpoint(service)))
        routes = [r for r in self.cache.list(HTTP_ROUTES, meta["namespace"])
                  if any(ref.get("name") == meta["name"] for ref in r["spec"].get("parentRefs") or [])]
        generation = meta["generation"]
        old_listeners = {item["name"]: item.get("conditions") for item in previous.get("listeners") or []}
        listeners = [{"name": listener["name"], "attachedRoutes": len(routes),
                      "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
                                         {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}],
                      "conditions": [
                          condition(old_listeners.get(listener["name"]), kind, ok, reason, "No errors found",
                                    generation)
                          for kind, ok, reason in (("Accepted", True, "Accepted"), ("Conflicted", False, "NoConflicts"),
                                                   ("Programmed", True, "Programmed"),
                                                   ("ResolvedRefs", True, "ResolvedRefs"))]}
                     for listener in spec.get("listeners") or []]
        if programmed:
            message = ("Resource programmed, assigned to service(s) "
                       f"{service['metadata']['name']}.{meta['namespace']}.svc.cluster.local:80")
        elif service is None:
            message = "Failed to assign to any requested addresses: no gateway Service"
        else:
            message = "Assigned to service(s), but failed to assign to all requested addresses: address pending"
        status = {
            "addresses": addresses,
            "conditions": [
                condition(previous.get("conditions"), "Accepted", True, "Accepted", "Resource accepted", generation),
                condition(previous.get("conditions"), "Programmed", programmed,
                          "Programmed" if programmed else "AddressNotAssigned", message, generation)],
            "listeners": listeners}
        if not addresses:
            del status["addresses"]
        await self.set_status(GATEWAYS, gateway, status)

    def pool_exists(self, namespace: str, ref: dict) -> bool:
        for res in POOL_RESOURCES:
            if ref.get("group", res.group) == res.group and self.cache.get(res, namespace, ref["name"]) is not None:
                return True
        return False

    async def httproute_status(self, route: dict) -> None:
        """Each parent Gateway whose controller the sandbox runs reports on the route; others do not."""
        meta = route["metadata"]
        previous = route.get("status", {}).get("parents") or []
        ours = []
        for parent in route["spec"].get("parentRefs") or []:
            ref = {"group": parent.get("group", "gateway.networking.k8s.io"), "kind": parent.get("kind", "Gateway"),
                   "name": parent["name"], "namespace": parent.get("namespace", meta["namespace"])}
            gateway = self.cache.get(GATEWAYS, ref["namespace"], ref["name"])
            controller = self.controller_of(gateway) if gateway else ""
            if not controller:
                continue
            resolved, reason, message = True, "ResolvedRefs", "Resolved all the Object references for the Route"
            for rule in route["spec"].get("rules") or []:
                for backend in rule.get("backendRefs") or []:
                    if backend.get("kind") != "InferencePool":
                        continue
                    if backend.get("group") not in CONTROLLERS[controller]:
                        resolved, reason = False, "InvalidKind"
                        message = f"unsupported backendRef kind {backend.get('group')}/InferencePool"
                    elif not self.pool_exists(meta["namespace"], backend):
                        resolved, reason = False, "BackendNotFound"
                        message = f"InferencePool {meta['namespace']}/{backend.get('name')} not found"
            old = next((p.get("conditions") for p in previous
                        if json.dumps(p.get("parentRef"), sort_keys=True) == json.dumps(ref, sort_keys=True)), None)
            ours.append({"parentRef": ref, "controllerName": controller, "conditions": [
                condition(old, "Accepted", True, "Accepted", "Route was valid", meta["generation"]),
                condition(old, "ResolvedRefs", resolved, reason, message, meta["generation"])]})
        if ours:
            await self.set_status(HTTP_ROUTES, route, {"parents": ours})

    async def pool_status(self, res, pool: dict) -> None:
        """What the gateway implementation reports on a pool: one entry per Gateway of ours whose HTTPRoutes
        use it (`parents` in v1, `parent` in v1alpha2); none in standalone mode."""
        meta = pool["metadata"]
        field_name = "parents" if res.version == "v1" else "parent"
        previous = (pool.get("status") or {}).get(field_name) or []
        parents = []
        for route in self.cache.list(HTTP_ROUTES, meta["namespace"]):
            uses_pool = any(ref.get("kind") == "InferencePool" and ref.get("name") == meta["name"]
                            and ref.get("group", res.group) == res.group
                            for rule in route["spec"].get("rules") or [] for ref in rule.get("backendRefs") or [])
            if not uses_pool:
                continue
            for parent in route["spec"].get("parentRefs") or []:
                gateway = self.cache.get(GATEWAYS, parent.get("namespace", meta["namespace"]), parent["name"])
                if not gateway or not self.controller_of(gateway):
                    continue
                ref = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": parent["name"],
                       "namespace": parent.get("namespace", meta["namespace"])}
                old = next((p.get("conditions") for p in previous if p.get("parentRef") == ref), None)
                entry = {"parentRef": ref, "conditions": [
                    condition(old, "Accepted", True, "Accepted", "InferencePool has been Accepted by controller",
                              meta["generation"]),
                    condition(old, "ResolvedRefs", True, "ResolvedRefs", "InferencePool references are resolved",
                              meta["generation"])]}
                if entry not in parents:
                    parents.append(entry)
        if parents:
            await self.set_status(res, pool, {field_name: parents})

    async def route_status(self, route: dict) -> None:
        """The router admits every route once it listens; the real status has no reason on Admitted."""
        if self.addresses("Router/default") is None:
            return
        previous = ((route.get("status") or {}).get("ingress") or [{}])[0].get("conditions") or []
        admitted = next((c for c in previous if c.get("type") == "Admitted" and c.get("status") == "True"),
                        {"type": "Admitted", "status": "True", "lastTransitionTime": now_rfc3339()})
        await self.set_status(ROUTES, route, {"ingress": [{
            "host": route["spec"].get("host", ""), "routerName": "default", "wildcardPolicy": "None",
            "routerCanonicalHostname": ROUTER_CANONICAL_HOSTNAME, "conditions": [admitted]}]})


def _without_times(value):
    """Status compared without lastTransitionTime (which `condition` keeps, but a fresh pass may not)."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value
