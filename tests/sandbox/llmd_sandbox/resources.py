"""The resources the sandbox's API server serves, described as its discovery documents describe them."""

from __future__ import annotations

from dataclasses import dataclass, field

READ_VERBS = ("get", "list", "watch")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ("status",)
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_name(self) -> str:
        """The resource as error messages name it: `pods`, `deployments.apps`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "Namespace", "namespaces", "namespace", namespaced=False, short_names=("ns",),
             verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    Resource("", "v1", "Node", "nodes", "node", namespaced=False, short_names=("no",),
             subresources=("status",)),
    Resource("", "v1", "Service", "services", "service", short_names=("svc",),
             subresources=("status", "proxy"), categories=("all",)),
    Resource("", "v1", "Endpoints", "endpoints", "endpoints", short_names=("ep",), subresources=()),
    Resource("", "v1", "Pod", "pods", "pod", short_names=("po",),
             subresources=("status", "log", "portforward", "proxy"), categories=("all",)),
    Resource("apps", "v1", "Deployment", "deployments", "deployment", short_names=("deploy",),
             categories=("all",)),
    Resource("apps", "v1", "ReplicaSet", "replicasets", "replicaset", short_names=("rs",),
             categories=("all",)),
    Resource("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", short_names=("ing",)),
    Resource("gateway.networking.k8s.io", "v1", "GatewayClass", "gatewayclasses", "gatewayclass",
             namespaced=False, short_names=("gc",)),
    Resource("gateway.networking.k8s.io", "v1", "Gateway", "gateways", "gateway", short_names=("gtw",)),
    Resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes", "httproute"),
    Resource("inference.networking.k8s.io", "v1", "InferencePool", "inferencepools", "inferencepool"),
    Resource("inference.networking.x-k8s.io", "v1alpha2", "InferencePool", "inferencepools", "inferencepool"),
    Resource("route.openshift.io", "v1", "Route", "routes", "route"),
    Resource("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
             "selfsubjectaccessreview", namespaced=False, verbs=("create",), subresources=()),
)


@dataclass(frozen=True)
class Group:
    name: str
    versions: tuple[str, ...] = field(default_factory=tuple)


def groups() -> list[Group]:
    """The named API groups (not the core one), in the order of RESOURCES."""
    seen: dict[str, list[str]] = {}
    for res in RESOURCES:
        if res.group and res.version not in seen.setdefault(res.group, []):
            seen[res.group].append(res.version)
    return [Group(name, tuple(versions)) for name, versions in seen.items()]


def resources_in(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def find_resource(group: str, version: str, plural: str) -> Resource | None:
    """The resource served at /api(s)/<group>/<version>/.../<plural>."""
    for res in RESOURCES:
        if (res.group, res.version, res.plural) == (group, version, plural):
            return res
    return None


def resource_for(api_version: str, kind: str) -> Resource | None:
    """The resource of an object, from its apiVersion and kind."""
    group, _sep, version = api_version.rpartition("/")
    for res in RESOURCES:
        if (res.group, res.version, res.kind) == (group, version, kind):
            return res
    return None
