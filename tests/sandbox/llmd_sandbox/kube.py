"""A small asyncio client of the real kube-apiserver, and a watch cache over it.

The sandbox's own parts (node agent, controllers, network) are clients of the API server like any controller:
they list and watch what they need into a `Cache`, read it synchronously, and write through `Kube`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

log = logging.getLogger(__name__)

WATCH_TIMEOUT_SECONDS = 240
RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
PODS = Resource("", "v1", "pods", "Pod")
SERVICES = Resource("", "v1", "services", "Service")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
EVENTS = Resource("", "v1", "events", "Event")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                namespaced=False)
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
INGRESS_CLASSES = Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False)
GATEWAY_CLASSES = Resource("gateway.networking.k8s.io", "v1", "gatewayclasses", "GatewayClass", namespaced=False)
GATEWAYS = Resource("gateway.networking.k8s.io", "v1", "gateways", "Gateway")
HTTP_ROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
POOLS = Resource("inference.networking.k8s.io", "v1", "inferencepools", "InferencePool")
POOLS_ALPHA = Resource("inference.networking.x-k8s.io", "v1alpha2", "inferencepools", "InferencePool")
ROUTES = Resource("route.openshift.io", "v1", "routes", "Route")

KNOWN = (NAMESPACES, NODES, PODS, SERVICES, SERVICE_ACCOUNTS, CONFIG_MAPS, SECRETS, ENDPOINT_SLICES, DEPLOYMENTS,
         LEASES, CRDS, INGRESSES, INGRESS_CLASSES, GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES, POOLS, POOLS_ALPHA, ROUTES,
         Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
         Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
         Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
         Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
         Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
         Resource("inference.networking.x-k8s.io", "v1alpha2", "inferenceobjectives", "InferenceObjective"))


def resource_for(api_version: str, kind: str) -> Resource | None:
    return next((r for r in KNOWN if r.api_version == api_version and r.kind == kind), None)


class KubeError(Exception):
    """An answer of the API server other than 2xx: its code, reason and message (from the Status object)."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message = code, reason, message


class Kube:
    """One connection pool to the API server with one bearer token."""

    def __init__(self, server: str, token: str, ca_file: str):
        self.server, self.token = server.rstrip("/"), token
        self.ssl = ssl.create_default_context(cafile=ca_file)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Kube:
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"},
                                             connector=aiohttp.TCPConnector(ssl=self.ssl, limit=32))
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.session.close()

    async def request(self, method: str, path: str, body=None, *, params: dict | None = None,
                      content_type: str = "application/json", timeout: float = 30) -> dict:
        data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        async with self.session.request(method, self.server + path, data=data, params=params, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=timeout)) as answer:
            text = await answer.text()
            if answer.status >= 300:
                raise _error(answer.status, text)
            return json.loads(text) if text else {}

    # ---- verbs -----------------------------------------------------------------------------------

    async def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        return await self.request("GET", res.path(namespace, name))

    async def list(self, res: Resource, namespace: str | None = None, **params) -> dict:
        return await self.request("GET", res.path(namespace), params=params or None)

    async def create(self, obj: dict, res: Resource | None = None) -> dict:
        res = res or resource_for(obj["apiVersion"], obj["kind"])
        return await self.request("POST", res.path(obj["metadata"].get("namespace")), obj)

    async def apply(self, obj: dict, manager: str, *, force: bool = True) -> dict:
        """Server-side apply, as `kubectl apply --server-side` sends it."""
        res = resource_for(obj["apiVersion"], obj["kind"])
        if res is None:
            raise KubeError(400, "BadRequest", f"the sandbox does not know {obj['apiVersion']}/{obj['kind']}")
        params = {"fieldManager": manager}
        if force:
            params["force"] = "true"
        return await self.request("PATCH", res.path(obj["metadata"].get("namespace"), obj["metadata"]["name"]), obj,
                                  params=params, content_type="application/apply-patch+yaml")

    async def patch(self, res: Resource, namespace: str | None, name: str, patch: dict, *, subresource: str = "",
                    patch_type: str = "merge") -> dict:
        content_type = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json",
                        "json": "application/json-patch+json"}[patch_type]
        return await self.request("PATCH", res.path(namespace, name, subresource), patch, content_type=content_type)

    async def delete(self, res: Resource, namespace: str | None, name: str, **options) -> dict:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", **options} if options else None
        return await self.request("DELETE", res.path(namespace, name), body)

    async def watch(self, res: Resource, resource_version: str, namespace: str | None = None, **params):
        """Yields (type, object) until the server ends the watch; raises KubeError(410) when the version is gone."""
        query = {"watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS), **params}
        async with self.session.get(self.server + res.path(namespace), params=query,
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=WATCH_TIMEOUT_SECONDS + 30)
                                    ) as answer:
            if answer.status >= 300:
                raise _error(answer.status, await answer.text())
            async for line in answer.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    status = event["object"]
                    raise KubeError(status.get("code", 500), status.get("reason", ""), status.get("message", ""))
                yield event["type"], event["object"]


def _error(code: int, text: str) -> KubeError:
    try:
        status = json.loads(text)
        return KubeError(code, status.get("reason", ""), status.get("message", text))
    except ValueError:
        return KubeError(code, "", text.strip()[:300])


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def matches(selector: dict | None, labels: dict | None) -> bool:
    """A `matchLabels`-style map (or a Service selector) against an object's labels; empty matches nothing."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


class Cache:
    """Informers for a few resources: list, then watch; `get`/`list` read the cache, `subscribe` hears changes.

    A resource whose CRD is not installed is an empty list (its informer retries until it is)."""

    def __init__(self, kube: Kube, resources: list[Resource], *, field_selectors: dict[Resource, str] | None = None):
        self.kube = kube
        self.objects: dict[Resource, dict[tuple[str, str], dict]] = {r: {} for r in resources}
        self.synced: dict[Resource, asyncio.Event] = {r: asyncio.Event() for r in resources}
        self.field_selectors = field_selectors or {}
        self.callbacks: list[Callable[[str, dict], None]] = []
        self.tasks: list[asyncio.Task] = []

    async def start(self, wait: bool = True) -> None:
        self.tasks = [asyncio.create_task(self._inform(r)) for r in self.objects]
        if wait:
            await asyncio.gather(*(e.wait() for e in self.synced.values()))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def subscribe(self, callback: Callable[[str, dict], None]) -> None:
        self.callbacks.append(callback)

    def unsubscribe(self, callback: Callable[[str, dict], None]) -> None:
        with contextlib.suppress(ValueError):
            self.callbacks.remove(callback)

    def get(self, res: Resource, namespace: str | None, name: str) -> dict | None:
        return self.objects[res].get((namespace or "", name))

    def list(self, res: Resource, namespace: str | None = None, selector: dict | None = None) -> list[dict]:
        items = [o for (ns, _n), o in self.objects[res].items() if namespace is None or ns == namespace]
        if selector is not None:
            items = [o for o in items if matches(selector, o["metadata"].get("labels"))]
        return items

    def _notify(self, event: str, obj: dict) -> None:
        for callback in list(self.callbacks):
            try:
                callback(event, obj)
            except Exception:  # a bug in one subscriber must not stop the informer
                log.exception("watch callback failed")

    async def _inform(self, res: Resource) -> None:
        params = {"fieldSelector": self.field_selectors[res]} if res in self.field_selectors else {}
        store = self.objects[res]
        while True:
            try:
                listed = await self.kube.list(res, **params)
                fresh = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in listed["items"]}
                for key in [k for k in store if k not in fresh]:
                    self._notify("DELETED", store.pop(key))
                for key, obj in fresh.items():
                    obj.setdefault("kind", res.kind)
                    obj.setdefault("apiVersion", res.api_version)
                    event = "MODIFIED" if key in store else "ADDED"
                    store[key] = obj
                    self._notify(event, obj)
                self.synced[res].set()
                version = listed["metadata"]["resourceVersion"]
                while True:
                    async for kind, obj in self.kube.watch(res, version, **params):
                        version = obj["metadata"].get("resourceVersion", version)
                        if kind == "BOOKMARK":
                            continue
                        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                        if kind == "DELETED":
                            store.pop(key, None)
                        else:
                            store[key] = obj
                        self._notify(kind, obj)
            except asyncio.CancelledError:
                raise
            except KubeError as exc:
                if exc.code == 404:  # the CRD is not (yet) installed: nothing of this kind exists
                    self.synced[res].set()
                elif exc.code not in (410, 429):  # 429: a CRD's storage is still initializing
                    log.warning("informer %s: %s", res.plural, exc)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.debug("informer %s: %r", res.plural, exc)
            await asyncio.sleep(RETRY_SECONDS)


class Reconciler:
    """A level-triggered controller on the cache: reconcile_once() runs after any change the cache sees, and the
    changes made while it runs coalesce into one more run."""

    def __init__(self, cache: Cache):
        self.cache = cache
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self.cache.subscribe(self._on_event)
        self._task = asyncio.create_task(self._run())
        self.poke()

    async def stop(self) -> None:
        if self._task is None:
            return
        self.cache.unsubscribe(self._on_event)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def poke(self) -> None:
        self._dirty.set()

    def _on_event(self, _event: str, _obj: dict) -> None:
        self._dirty.set()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self.reconcile_once()

    async def reconcile_once(self) -> None:
        raise NotImplementedError
