"""The sandbox's Kubernetes API server: discovery, CRUD on the store, logs, proxy and port-forward, with RBAC."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import yaml
from aiohttp import web

from . import kubeproto, openapi, podlogs, portforward, proxy
from .auth import Authz, Request, User
from .resources import Resource, find_resource, groups, resources_in
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .store import ApiError, Store, status_object
from .tables import TABLE_CONTENT_TYPE, to_table

log = logging.getLogger(__name__)
ACCESS_LOG = logging.getLogger(__name__ + ".access")  # quiet unless the caller turns on INFO

PodConnect = Callable[[str, str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
           "gitTreeState": "clean", "buildDate": "2025-04-22T16:02:27Z", "goVersion": "go1.23.6",
           "compiler": "gc", "platform": "linux/amd64"}
# Reachable without credentials, as the real server's system:public-info-viewer role allows.
PUBLIC_PATHS = ("/version", "/healthz", "/readyz", "/livez")
NAMESPACE_SUBRESOURCES = ("status", "finalize")
PATCH_TYPES = {"application/merge-patch+json": "merge", "application/strategic-merge-patch+json": "strategic",
               "application/json-patch+json": "json", "application/apply-patch+yaml": "apply"}
# Custom resources (CRDs in a real cluster) do not take strategic merge patches.
CUSTOM_GROUPS = ("gateway.networking.k8s.io", "inference.networking.k8s.io", "inference.networking.x-k8s.io")
CONNECT_VERBS = {"GET": "get", "HEAD": "get", "OPTIONS": "get", "POST": "create", "PUT": "update",
                 "PATCH": "patch", "DELETE": "delete"}
SUBRESOURCE_KINDS = {"log": ("Pod", ("get",)), "portforward": ("PodPortForwardOptions", ("create", "get")),
                     "proxy": (None, ("create", "delete", "get", "patch", "update")),
                     "status": (None, ("get", "patch", "update"))}
DEFAULT_WATCH_SECONDS = 1800
PODS = find_resource("", "v1", "pods")

STORE = web.AppKey("store", Store)
AUTHZ = web.AppKey("authz", Authz)
LOG_ROOT = web.AppKey("log_root", Path)
POD_CONNECT = web.AppKey("pod_connect", object)
PROXY_SESSION = web.AppKey("proxy_session", aiohttp.ClientSession)


def json_response(body: dict, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(status=status, body=json.dumps(body, separators=(",", ":")).encode(),
                        headers={"Content-Type": content_type})


def not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


# ---- the application -------------------------------------------------------------------------------------

def make_app(store: Store, *, authz: Authz, log_root: str | Path, pod_connect: PodConnect | None = None
             ) -> web.Application:
    """pod_connect(namespace, pod, port) -> (reader, writer) is what port-forwards connect to; by default a TCP
    connection to the pod's status.podIP."""
    app = web.Application(middlewares=[_access_log, _errors], client_max_size=64 * 1024 * 1024)
    app[STORE], app[AUTHZ], app[LOG_ROOT] = store, authz, Path(log_root)
    app[POD_CONNECT] = pod_connect or _store_pod_connect(store)
    app.cleanup_ctx.append(_proxy_session)
    app.router.add_route("*", "/{path:.*}", _dispatch)
    return app


async def start(app: web.Application, *, host: str = "127.0.0.1", port: int = 0,
                ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """Serves app on host:port (0 = a free port); returns the runner (await runner.cleanup() to stop) and port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    return runner, sock.getsockname()[1]


def _store_pod_connect(store: Store) -> PodConnect:
    async def connect(namespace: str, name: str, port: int):
        pod_ip = store.get(PODS, namespace, name).get("status", {}).get("podIP")
        if not pod_ip:
            raise ConnectionRefusedError(f"pod {name} has no IP yet")
        return await asyncio.open_connection(pod_ip, port)
    return connect


async def _proxy_session(app: web.Application):
    async with aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, connect=10),
                                     connector=aiohttp.TCPConnector(force_close=True)) as session:
        app[PROXY_SESSION] = session
        yield


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.status(), exc.code)
    except (web.HTTPException, asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # a sandbox bug: answer as the real server would, and keep the traceback in the log
        log.exception("internal error on %s %s", request.method, request.path)
        return json_response(status_object(500, "InternalError", f"Internal error occurred: {exc}"), 500)


@web.middleware
async def _access_log(request: web.Request, handler):
    response = await handler(request)
    ACCESS_LOG.info("%s %s?%s -> %s", request.method, request.path, request.query_string, response.status)
    return response


# ---- routing -----------------------------------------------------------------------------------------------

async def _dispatch(request: web.Request) -> web.StreamResponse:
    path = request.path.rstrip("/") or "/"
    user = _authenticate(request, path)
    if path == "/version":
        return json_response(VERSION)
    if path.split("/")[1] in ("healthz", "readyz", "livez"):
        return web.Response(text="ok")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise not_found()
    if parts[:2] == ["openapi", "v3"]:
        return _openapi_v3(request, parts[2:])
    if parts[:2] == ["api", "v1"]:
        return await _resource_or_discovery(request, user, "", "v1", 2)
    if parts == ["api"] or parts == ["apis"]:
        return _discovery(request, _api_versions(request) if parts == ["api"] else _group_list())
    if parts[0] == "apis" and len(parts) >= 3:
        return await _resource_or_discovery(request, user, parts[1], parts[2], 3)
    if parts[0] == "apis" and len(parts) == 2:
        group = next((g for g in _group_list()["groups"] if g["name"] == parts[1]), None)
        if group:
            return _discovery(request, dict(group, kind="APIGroup", apiVersion="v1"))
    raise not_found()


def _openapi_v3(request: web.Request, gv_parts: list[str]) -> web.Response:
    if not gv_parts:
        return _discovery(request, openapi.root_document())
    if gv_parts[0] == "api" and len(gv_parts) == 2:
        document = openapi.group_version_document("", gv_parts[1])
    elif gv_parts[0] == "apis" and len(gv_parts) == 3:
        document = openapi.group_version_document(gv_parts[1], gv_parts[2])
    else:
        document = None
    if document is None:
        raise not_found()
    return _discovery(request, document)


def _authenticate(request: web.Request, path: str) -> User | None:
    header = request.headers.get("Authorization")
    user = request.app[AUTHZ].authenticate(header)
    if user is None and (header or not path.startswith(PUBLIC_PATHS)):
        raise ApiError(401, "Unauthorized", "Unauthorized")
    return user


def _accepts(request: web.Request, table: bool = False) -> bool:
    """Does the Accept header take plain JSON (or, with table=True, a Table)? Aggregated discovery
    (`as=APIGroupDiscoveryList`) and protobuf are not offered: clients then fall back to plain JSON."""
    accept = request.headers.get("Accept", "")
    if not accept.strip():
        return True
    for entry in accept.split(","):
        media, *params = [p.strip() for p in entry.split(";")]
        as_param = next((p.split("=", 1)[1] for p in params if p.startswith("as=")), None)
        if media in ("application/json", "application/*", "*/*") and (as_param is None
                                                                      or (table and as_param == "Table")):
            return True
    return False


def _wants_table(request: web.Request) -> bool:
    """Table first in the Accept header (kubectl get), as the real content negotiation would pick it."""
    first = request.headers.get("Accept", "").split(",")[0]
    return "as=Table" in first and "g=meta.k8s.io" in first


def _discovery(request: web.Request, body: dict) -> web.Response:
    if request.method != "GET":
        raise method_not_allowed()
    if not _accepts(request):
        raise ApiError(406, "NotAcceptable", "only the following media types are accepted: application/json, "
                       "application/yaml, application/vnd.kubernetes.protobuf")
    return json_response(body)


def _api_versions(request: web.Request) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]}


def _group_list() -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g.name, "versions": [{"groupVersion": f"{g.name}/{v}", "version": v} for v in g.versions],
         "preferredVersion": {"groupVersion": f"{g.name}/{g.versions[0]}", "version": g.versions[0]}}
        for g in groups()]}


def _resource_list(group: str, version: str) -> dict:
    entries = []
    for res in resources_in(group, version):
        entry = {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced, "kind": res.kind,
                 "verbs": list(res.verbs)}
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        if res.categories:
            entry["categories"] = list(res.categories)
        entries.append(entry)
        for sub in res.subresources:
            kind, verbs = SUBRESOURCE_KINDS[sub]
            if sub == "proxy":
                kind = f"{res.kind}ProxyOptions"
            entries.append({"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced,
                            "kind": kind or res.kind, "verbs": list(verbs)})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": entries}


@dataclass(frozen=True)
class Target:
    """What a resource URL names, as the real RequestInfo parses it."""

    res: Resource
    namespace: str | None
    name: str | None
    subresource: str | None
    rest: str  # the raw path after `proxy` (proxy only)


def _parse_target(request: web.Request, group: str, version: str, skip: int) -> Target | None:
    """None for the group-version root (discovery)."""
    raw_path = request.raw_path.split("?", 1)[0]
    raw_parts = [p for p in raw_path.split("/") if p][skip:]
    if not raw_parts:
        return None
    namespace = None
    if raw_parts[0] == "namespaces" and len(raw_parts) > 2 and raw_parts[2] not in NAMESPACE_SUBRESOURCES:
        namespace, raw_parts = unquote(raw_parts[1]), raw_parts[2:]
    res = find_resource(group, version, unquote(raw_parts[0]))
    if res is None or (namespace and not res.namespaced):
        raise not_found()
    name = unquote(raw_parts[1]) if len(raw_parts) > 1 else None
    sub = unquote(raw_parts[2]) if len(raw_parts) > 2 else None
    rest = "/" + "/".join(raw_parts[3:]) if len(raw_parts) > 3 else ""
    if rest and raw_path.endswith("/"):
        rest += "/"
    if ((sub and sub not in res.subresources) or (rest and sub != "proxy")
            or (name and res.namespaced and namespace is None)):
        raise not_found()
    return Target(res, namespace, name, sub, rest)


def _verb(request: web.Request, target: Target) -> str:
    """The RBAC verb of a request, as the real RequestInfo resolver names it."""
    if target.subresource == "portforward":
        return "create"  # what kubectl's RBAC needs for both the WebSocket (GET) and SPDY (POST) flavours
    if target.subresource == "proxy":
        verbs = CONNECT_VERBS
    elif target.subresource == "log":
        verbs = {"GET": "get"}
    elif target.subresource == "status":
        verbs = {"GET": "get", "PUT": "update", "PATCH": "patch"}
    elif target.name:
        verbs = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    else:
        verbs = {"GET": "watch" if _is_watch(request) else "list", "POST": "create", "DELETE": "deletecollection"}
    if request.method not in verbs or (not target.subresource and verbs[request.method] not in target.res.verbs):
        raise method_not_allowed()
    return verbs[request.method]


def _is_watch(request: web.Request) -> bool:
    return request.query.get("watch", "false").lower() in ("true", "1")


async def _resource_or_discovery(request: web.Request, user: User | None, group: str, version: str,
                                 skip: int) -> web.StreamResponse:
    if not resources_in(group, version):
        raise not_found()
    target = _parse_target(request, group, version, skip)
    if target is None:
        return _discovery(request, _resource_list(group, version))
    verb = _verb(request, target)
    authz = request.app[AUTHZ]
    question = Request.for_resource(verb, target.res, target.subresource, target.namespace, target.name)
    if not authz.allowed(user, question):
        raise ApiError(403, "Forbidden", question.forbidden_message(user),
                       {"name": target.name, "group": target.res.group, "kind": target.res.plural}
                       if target.name else {"group": target.res.group, "kind": target.res.plural})
    if target.res.kind == "SelfSubjectAccessReview":
        return await _access_review(request, user, authz)
    handler = _SUBRESOURCE_HANDLERS[target.subresource] if target.subresource else _VERB_HANDLERS[verb]
    return await handler(request, target)


# ---- verbs on objects ----------------------------------------------------------------------------------------

async def _read_body(request: web.Request, yaml_allowed: bool = False) -> object:
    raw = await request.read()
    if request.content_type == kubeproto.PROTOBUF:
        try:
            return kubeproto.decode_access_review(raw)
        except kubeproto.ProtobufError as exc:
            raise ApiError(415, "UnsupportedMediaType", f"the sandbox cannot decode this protobuf body: {exc}")
    try:
        if yaml_allowed or "yaml" in request.content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise ApiError.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def _check_body(target: Target, body: object) -> dict:
    if not isinstance(body, dict):
        raise ApiError.bad_request("the body of the request was not a JSON object")
    res = target.res
    if body.get("apiVersion", res.api_version) != res.api_version or body.get("kind", res.kind) != res.kind:
        raise ApiError.bad_request(f"the API version in the data ({body.get('apiVersion')}) does not match the "
                                   f"expected API version ({res.api_version})")
    meta = body.setdefault("metadata", {})
    if res.namespaced and target.namespace:
        if meta.get("namespace") and meta["namespace"] != target.namespace:
            raise ApiError.bad_request("the namespace of the provided object does not match the namespace sent "
                                       "on the request")
        meta["namespace"] = target.namespace
    if target.name and meta.get("name") and meta["name"] != target.name:
        raise ApiError.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                   f"({target.name})")
    if target.name:
        meta["name"] = target.name
    return body


def _list_body(target: Target, items: list[dict], resource_version: str, continue_token: str | None) -> dict:
    metadata = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {"kind": f"{target.res.kind}List", "apiVersion": target.res.api_version, "metadata": metadata,
            "items": items}


def _page(request: web.Request, items: list[dict]) -> tuple[list[dict], str | None]:
    """limit/continue: the token holds the key of the last object returned (objects are sorted by key)."""
    start = 0
    if token := request.query.get("continue"):
        try:
            last = json.loads(base64.urlsafe_b64decode(token.encode()))
        except (ValueError, binascii.Error):
            raise ApiError.bad_request("continue key is not valid: illegal base64 data") from None
        start = next((i for i, obj in enumerate(items) if _sort_key(obj) > tuple(last)), len(items))
    limit = int(request.query.get("limit") or 0)
    page = items[start:start + limit] if limit > 0 else items[start:]
    if limit > 0 and start + limit < len(items):
        return page, base64.urlsafe_b64encode(json.dumps(_sort_key(page[-1])).encode()).decode()
    return page, None


def _sort_key(obj: dict) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _object_response(request: web.Request, target: Target, obj: dict, status: int = 200) -> web.Response:
    if _wants_table(request):
        return json_response(to_table(target.res, [obj], obj["metadata"]["resourceVersion"],
                                      request.query.get("includeObject", "Metadata")), status, TABLE_CONTENT_TYPE)
    return json_response(obj, status)


async def _list(request: web.Request, target: Target) -> web.StreamResponse:
    store = request.app[STORE]
    items, resource_version = store.list(target.res, target.namespace, request.query.get("labelSelector"),
                                         request.query.get("fieldSelector"))
    items, continue_token = _page(request, items)
    if _wants_table(request):
        return json_response(to_table(target.res, items, resource_version, request.query.get("includeObject",
                                                                                             "Metadata"),
                                      continue_token), content_type=TABLE_CONTENT_TYPE)
    if not _accepts(request, table=True):
        raise ApiError(406, "NotAcceptable", "only the following media types are accepted: application/json")
    return json_response(_list_body(target, items, resource_version, continue_token))


async def _watch(request: web.Request, target: Target) -> web.StreamResponse:
    """Events as JSON lines: the current objects first (unless a resourceVersion is given), then changes,
    until timeoutSeconds."""
    store = request.app[STORE]
    try:
        labels_match = parse_label_selector(request.query.get("labelSelector"))
        fields_match = parse_field_selector(request.query.get("fieldSelector"), target.res.kind)
    except SelectorError as exc:
        raise ApiError.bad_request(str(exc)) from exc
    table = _wants_table(request)
    events: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()

    def matches(obj: dict) -> bool:
        return ((obj["apiVersion"], obj["kind"]) == (target.res.api_version, target.res.kind)
                and (not target.namespace or obj["metadata"].get("namespace") == target.namespace)
                and labels_match(obj["metadata"].get("labels") or {}) and fields_match(obj))

    def on_change(event: str, obj: dict) -> None:
        if matches(obj):
            events.put_nowait((event, obj))

    store.subscribe(on_change)
    try:
        if request.query.get("resourceVersion", "0") in ("", "0"):
            for obj in store.list(target.res, target.namespace)[0]:
                on_change("ADDED", obj)
        response = web.StreamResponse(headers={"Content-Type": TABLE_CONTENT_TYPE if table else "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + int(request.query.get("timeoutSeconds") or
                                                           DEFAULT_WATCH_SECONDS)
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                event, obj = await asyncio.wait_for(events.get(), left)
            except TimeoutError:
                break
            if table:
                obj = to_table(target.res, [obj], obj["metadata"]["resourceVersion"],
                               request.query.get("includeObject", "Metadata"))
            await response.write(json.dumps({"type": event, "object": obj}, separators=(",", ":")).encode() + b"\n")
        await response.write_eof()
        return response
    finally:
        store.unsubscribe(on_change)


async def _get(request: web.Request, target: Target) -> web.Response:
    return _object_response(request, target, request.app[STORE].get(target.res, target.namespace, target.name))


async def _create(request: web.Request, target: Target) -> web.Response:
    if target.res.namespaced and not target.namespace:
        raise not_found()
    body = _check_body(target, await _read_body(request))
    return _object_response(request, target, request.app[STORE].create(body, target.res), 201)


async def _replace(request: web.Request, target: Target) -> web.Response:
    body = _check_body(target, await _read_body(request))
    return _object_response(request, target, request.app[STORE].replace(body, target.res))


async def _patch(request: web.Request, target: Target) -> web.Response:
    patch_type = PATCH_TYPES.get(request.content_type)
    if patch_type is None or (patch_type == "strategic" and target.res.group in CUSTOM_GROUPS):
        accepted = [t for t, kind in PATCH_TYPES.items() if kind != "strategic" or target.res.group not in CUSTOM_GROUPS]
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                       f"media types include: {', '.join(accepted)}")
    body = await _read_body(request, yaml_allowed=patch_type == "apply")
    if patch_type == "apply":
        body = _check_body(target, body)
    obj = request.app[STORE].patch(target.res, target.namespace, target.name, body, patch_type, target.subresource)
    return _object_response(request, target, obj)


async def _delete_options(request: web.Request) -> str:
    options = await _read_body(request) if request.can_read_body else {}
    return request.query.get("propagationPolicy") or (options or {}).get("propagationPolicy") or "Background"


async def _delete(request: web.Request, target: Target) -> web.Response:
    # The deleted object comes back (the typed Python client parses the answer as the resource's type).
    return json_response(request.app[STORE].delete(target.res, target.namespace, target.name,
                                                   await _delete_options(request)))


async def _delete_collection(request: web.Request, target: Target) -> web.Response:
    store = request.app[STORE]
    propagation = await _delete_options(request)
    items, _resource_version = store.list(target.res, target.namespace, request.query.get("labelSelector"),
                                          request.query.get("fieldSelector"))
    deleted = [store.delete(target.res, obj["metadata"].get("namespace"), obj["metadata"]["name"], propagation)
               for obj in items]
    return json_response(_list_body(target, deleted, store.resource_version, None))


async def _status(request: web.Request, target: Target) -> web.Response:
    store = request.app[STORE]
    if request.method == "GET":
        return await _get(request, target)
    if request.method == "PUT":
        body = _check_body(target, await _read_body(request))
        obj = store.update_status(target.res, target.namespace, target.name, body.get("status") or {})
        return _object_response(request, target, obj)
    if request.method == "PATCH":
        return await _patch(request, target)
    raise method_not_allowed()


async def _log(request: web.Request, target: Target) -> web.StreamResponse:
    return await podlogs.serve_log(request, request.app[STORE], request.app[LOG_ROOT], target.namespace, target.name)


async def _proxy(request: web.Request, target: Target) -> web.StreamResponse:
    store = request.app[STORE]
    if target.res is PODS:
        upstream, kind = proxy.pod_target(store, target.namespace, target.name), "pod"
    else:
        upstream, kind = proxy.service_target(store, target.namespace, target.name), "service"
    return await proxy.forward(request, request.app[PROXY_SESSION], upstream, target.rest, kind)


async def _portforward(request: web.Request, target: Target) -> web.StreamResponse:
    pod = request.app[STORE].get(target.res, target.namespace, target.name)  # 404 before any upgrade
    pod_connect = request.app[POD_CONNECT]
    return await portforward.handle(request, lambda port: pod_connect(target.namespace, target.name, port),
                                    uid=pod["metadata"]["uid"])


async def _access_review(request: web.Request, user: User, authz: Authz) -> web.Response:
    if request.method != "POST":
        raise method_not_allowed()
    body = await _read_body(request)
    spec = (body or {}).get("spec") or {}
    attrs = spec.get("resourceAttributes")
    if attrs:
        question = Request(attrs.get("verb", ""), attrs.get("group", ""), attrs.get("resource", ""),
                           attrs.get("subresource") or None, attrs.get("namespace") or None, attrs.get("name") or None)
        allowed = authz.allowed(user, question)
    else:  # non-resource URLs: discovery and health for everyone authenticated, the rest for admin
        path = (spec.get("nonResourceAttributes") or {}).get("path", "")
        allowed = user.role == "admin" or path.startswith(("/api", "/version", "/healthz", "/readyz", "/livez"))
    review = dict(body, apiVersion="authorization.k8s.io/v1", kind="SelfSubjectAccessReview",
                  status={"allowed": allowed})
    review.setdefault("metadata", {})["creationTimestamp"] = None
    return json_response(review, 201)


_VERB_HANDLERS = {"list": _list, "watch": _watch, "get": _get, "create": _create, "update": _replace,
                  "patch": _patch, "delete": _delete, "deletecollection": _delete_collection}
_SUBRESOURCE_HANDLERS = {"status": _status, "log": _log, "proxy": _proxy, "portforward": _portforward}
