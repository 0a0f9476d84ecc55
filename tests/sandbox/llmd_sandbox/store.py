"""The in-memory object store: what etcd, the API server's defaulting and the garbage collector do for us."""

from __future__ import annotations

import copy
import datetime
import ipaddress
import logging
import random
import re
import string
import uuid
from collections.abc import Callable, Mapping

import jsonpatch

from .resources import RESOURCES, Resource, resource_for
from .selectors import SelectorError, parse_field_selector, parse_label_selector

log = logging.getLogger(__name__)

Subscriber = Callable[[str, dict], None]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_RULES = {  # kind -> (regex, max length, the real validation message)
    "Namespace": (_DNS1123_LABEL, 63,
                  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                  "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
    "Service": (_DNS1035_LABEL, 63,
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
}
_SUBDOMAIN_RULE = (_DNS1123_SUBDOMAIN, 253,
                   "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                   "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")

# Strategic merge patch: list fields merged by a key (patchMergeKey in the Kubernetes types), others replaced.
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "imagePullSecrets": "name", "conditions": "type",
    "ownerReferences": "uid", "addresses": "type", "hostAliases": "ip", "containerStatuses": "name",
    "initContainerStatuses": "name",
}
_MERGED_PRIMITIVE_LISTS = {"finalizers"}
_WITHOUT_GENERATION = {"Namespace", "Node", "Service", "Endpoints"}  # their registries do not track one


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error the API answers as a `kind: Status` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        return status_object(self.code, self.reason, self.message, self.details)

    @classmethod
    def not_found(cls, res: Resource, name: str) -> ApiError:
        return cls(404, "NotFound", f'{res.qualified_name} "{name}" not found',
                   {"name": name, "group": res.group, "kind": res.plural})

    @classmethod
    def namespace_not_found(cls, namespace: str) -> ApiError:
        return cls(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})

    @classmethod
    def invalid(cls, kind: str, name: str, field: str, cause: str, value: str | None = None) -> ApiError:
        detail = f'Invalid value: "{value}": {cause}' if value is not None else cause
        return cls(422, "Invalid", f'{kind} "{name}" is invalid: {field}: {detail}',
                   {"name": name, "kind": kind, "causes": [{
                       "reason": "FieldValueInvalid" if value is not None else "FieldValueRequired",
                       "message": detail, "field": field}]})

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)


def status_object(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": message, "reason": reason, "code": code}
    if details:
        status["details"] = details
    return status


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _list_merge_key(field: str, items: list) -> str | None:
    if field == "ports":  # container ports are keyed by containerPort, Service ports by port
        return "containerPort" if any("containerPort" in i for i in items if isinstance(i, dict)) else "port"
    return _MERGE_KEYS.get(field)


def strategic_merge_patch(target: object, patch: object) -> object:
    """Kubernetes strategic merge patch, for what kubectl apply/patch send: keyed lists and the $ directives."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return merge_patch(target, patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target)
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field, []) if v not in value]
        elif key == "$retainKeys":
            result = {k: v for k, v in result.items() if k in value or k in patch}
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value, orders.get(key))
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(field: str, current: list, patch: list, order: list | None) -> list:
    if field in _MERGED_PRIMITIVE_LISTS:
        return current + [v for v in patch if v not in current]
    merge_key = _list_merge_key(field, current + patch)
    if not merge_key or not all(isinstance(i, dict) for i in current + patch):
        return copy.deepcopy([i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "delete")])
    merged = {item.get(merge_key): copy.deepcopy(item) for item in current}
    for item in patch:
        key = item.get(merge_key)
        if item.get("$patch") == "delete":
            merged.pop(key, None)
        elif key in merged:
            merged[key] = strategic_merge_patch(merged[key], item)
        else:
            merged[key] = {k: v for k, v in item.items() if k != "$patch"}
    if order:
        ranks = {entry.get(merge_key): i for i, entry in enumerate(order)}
        return sorted(merged.values(), key=lambda item: ranks.get(item.get(merge_key), len(ranks)))
    return list(merged.values())


def apply_patch(target: dict, patch: object, patch_type: str) -> dict:
    """patch_type: "merge", "strategic", "json" or "apply" (server-side apply, treated as a merge)."""
    try:
        if patch_type == "json":
            return jsonpatch.apply_patch(target, patch)
        if patch_type == "strategic":
            return strategic_merge_patch(target, patch)
        if patch_type in ("merge", "apply"):
            return merge_patch(target, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}")
    raise ApiError(415, "UnsupportedMediaType", f"the patch type {patch_type!r} is not supported")


class Store:
    """Objects by resource, namespace and name, with resourceVersions and change notifications.

    Not thread-safe: call it from the event loop that serves the API (subscribers such as watches run there)."""

    def __init__(self) -> None:
        self._objects: dict[Resource, dict[tuple[str, str], dict]] = {res: {} for res in RESOURCES}
        self._revision = 0
        self._subscribers: list[Subscriber] = []

    # ---- reading ---------------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        return str(self._revision)

    def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        obj = self._objects[res].get(_key(res, namespace, name))
        if obj is None:
            raise ApiError.not_found(res, name)
        return copy.deepcopy(obj)

    def list(self, res: Resource, namespace: str | None = None,
             label_selector: str | Mapping[str, str] | None = None,
             field_selector: str | None = None) -> tuple[list[dict], str]:
        try:
            labels_match = parse_label_selector(label_selector)
            fields_match = parse_field_selector(field_selector, res.kind)
        except SelectorError as exc:
            raise ApiError.bad_request(str(exc)) from exc
        items = [copy.deepcopy(obj) for (ns, _name), obj in sorted(self._objects[res].items())
                 if (not namespace or ns == namespace)
                 and labels_match(obj["metadata"].get("labels") or {}) and fields_match(obj)]
        return items, self.resource_version

    # ---- writing ---------------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> None:
        """callback(event_type, obj) runs synchronously after every change, with a copy of the object."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Subscriber) -> None:
        self._subscribers.remove(callback)

    def create(self, obj: dict, res: Resource | None = None) -> dict:
        res = res or self._resource_of(obj)
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        self._validate_name(res, meta.get("name"))
        if res.namespaced:
            meta["namespace"] = meta.get("namespace") or "default"
            if ("", meta["namespace"]) not in self._objects[_NAMESPACES]:
                raise ApiError.namespace_not_found(meta["namespace"])
        else:
            meta.pop("namespace", None)
        key = (meta.get("namespace", ""), meta["name"])
        if key in self._objects[res]:
            raise ApiError(409, "AlreadyExists", f'{res.qualified_name} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": res.group, "kind": res.plural})
        for field in ("resourceVersion", "deletionTimestamp"):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
        if res.kind not in _WITHOUT_GENERATION:
            meta["generation"] = 1
        self._default(res, obj)
        return self._save(res, key, obj, "ADDED")

    def replace(self, obj: dict, res: Resource | None = None) -> dict:
        """PUT: a new spec; the status is kept (it has its own subresource)."""
        res = res or self._resource_of(obj)
        old = self._current(res, obj.get("metadata", {}))
        new = copy.deepcopy(obj)
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        self._check_version(res, old, new)
        if "status" in old or "status" in new:
            new["status"] = old.get("status", {})
        return self._update(res, old, new)

    def patch(self, res: Resource, namespace: str | None, name: str, patch: object, patch_type: str,
              subresource: str | None = None) -> dict:
        key = _key(res, namespace, name)
        if patch_type == "apply" and key not in self._objects[res]:
            body = copy.deepcopy(patch)
            body.setdefault("metadata", {}).update(name=name, **({"namespace": namespace} if res.namespaced else {}))
            return self.create(body, res)
        old = self.get(res, namespace, name)
        new = apply_patch(old, patch, patch_type)
        if not isinstance(new, dict):
            raise ApiError.bad_request("the patch did not produce an object")
        if subresource == "status":
            new = dict(old, status=new.get("status", {}))
        elif "status" in old:
            new["status"] = old["status"]
        self._check_version(res, old, new)
        return self._update(res, old, new)

    def update_status(self, res: Resource, namespace: str | None, name: str, status: dict) -> dict:
        old = self.get(res, namespace, name)
        return self._update(res, old, dict(old, status=copy.deepcopy(status)))

    def delete(self, res: Resource, namespace: str | None, name: str, propagation: str = "Background") -> dict:
        """Removes at once; dependents (ownerReferences, a namespace's objects) go too unless orphaned."""
        obj = self.get(res, namespace, name)
        del self._objects[res][_key(res, namespace, name)]
        self._revision += 1
        obj["metadata"]["resourceVersion"] = self.resource_version
        obj["metadata"]["deletionTimestamp"] = now_rfc3339()
        self._notify("DELETED", obj)
        if res is _NAMESPACES:
            for other in RESOURCES:
                for ns, dep_name in [k for k in self._objects[other] if other.namespaced and k[0] == name]:
                    self.delete(other, ns, dep_name, propagation)
        self._collect_dependents(obj["metadata"]["uid"], propagation)
        return obj

    # ---- internals -------------------------------------------------------------------------------

    def _collect_dependents(self, owner_uid: str, propagation: str) -> None:
        for res in RESOURCES:
            for (ns, name), obj in list(self._objects[res].items()):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(ref.get("uid") == owner_uid for ref in refs):
                    continue
                if propagation == "Orphan":
                    orphan = copy.deepcopy(obj)
                    orphan["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                    self._update(res, obj, orphan)
                elif (ns, name) in self._objects[res]:
                    self.delete(res, ns, name, propagation)

    @staticmethod
    def _resource_of(obj: dict) -> Resource:
        res = resource_for(obj.get("apiVersion", ""), obj.get("kind", ""))
        if res is None:
            raise ApiError.bad_request(f'no kind "{obj.get("kind")}" is registered for version '
                                       f'"{obj.get("apiVersion")}"')
        return res

    def _current(self, res: Resource, meta: dict) -> dict:
        if not meta.get("name"):
            raise ApiError.invalid(res.kind, "", "metadata.name", "Required value: name is required")
        return self.get(res, meta.get("namespace") or "default", meta["name"])

    @staticmethod
    def _validate_name(res: Resource, name: str | None) -> None:
        if not name:
            raise ApiError.invalid(res.kind, "", "metadata.name",
                                   "Required value: name or generateName is required")
        pattern, max_len, message = _NAME_RULES.get(res.kind, _SUBDOMAIN_RULE)
        if len(name) > max_len:
            raise ApiError.invalid(res.kind, name, "metadata.name", f"must be no more than {max_len} characters",
                                   name)
        if not pattern.match(name):
            raise ApiError.invalid(res.kind, name, "metadata.name", message, name)

    @staticmethod
    def _check_version(res: Resource, old: dict, new: dict) -> None:
        wanted = new.get("metadata", {}).get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            name = old["metadata"]["name"]
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified_name} "{name}": '
                           "the object has been modified; please apply your changes to the latest version and "
                           "try again",
                           {"name": name, "group": res.group, "kind": res.plural})

    def _update(self, res: Resource, old: dict, new: dict) -> dict:
        meta = new.setdefault("metadata", {})
        for field in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        if new == old:  # a no-op write changes nothing, not even the resourceVersion
            return old
        if "generation" in meta and _spec_of(new) != _spec_of(old):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        return self._save(res, (meta.get("namespace", ""), meta["name"]), new, "MODIFIED")

    def _save(self, res: Resource, key: tuple[str, str], obj: dict, event: str) -> dict:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = self.resource_version
        self._objects[res][key] = obj
        self._notify(event, obj)
        return copy.deepcopy(obj)

    def _notify(self, event: str, obj: dict) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event, copy.deepcopy(obj))
            except Exception:  # a failing watcher must not fail the write that notified it; it is logged
                log.exception("store subscriber %r failed on %s", callback, event)

    def _default(self, res: Resource, obj: dict) -> None:
        """The defaults the real API server fills in on create, for the fields clients read back."""
        if res.kind == "Namespace":
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        elif res.kind == "Service":
            self._default_service(obj.setdefault("spec", {}))
        elif res.kind in ("Deployment", "ReplicaSet"):
            obj.setdefault("spec", {}).setdefault("replicas", 1)
        elif res.kind == "Pod":
            obj.setdefault("status", {"phase": "Pending"})

    def _default_service(self, spec: dict) -> None:
        spec.setdefault("type", "ClusterIP")
        if spec["type"] != "ExternalName" and "clusterIP" not in spec:
            used = {s["spec"].get("clusterIP") for s in self._objects[_SERVICES].values()}
            spec["clusterIP"] = _free_cluster_ip(used)
        if "clusterIP" in spec:
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        used_node_ports = {p.get("nodePort") for s in self._objects[_SERVICES].values()
                           for p in s["spec"].get("ports", [])}
        for port in spec.get("ports", []):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer") and "nodePort" not in port:
                port["nodePort"] = random.choice([p for p in range(30000, 32768) if p not in used_node_ports])
                used_node_ports.add(port["nodePort"])
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")


def _key(res: Resource, namespace: str | None, name: str) -> tuple[str, str]:
    return ((namespace or "") if res.namespaced else "", name)


def _spec_of(obj: dict) -> dict:
    """Everything a generation counts: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _free_cluster_ip(used: set) -> str:
    while True:
        ip = str(ipaddress.IPv4Address("10.96.0.0") + random.randrange(10, 65000))
        if ip not in used:
            return ip


_NAMESPACES = next(r for r in RESOURCES if r.kind == "Namespace")
_SERVICES = next(r for r in RESOURCES if r.kind == "Service")
