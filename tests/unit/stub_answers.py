# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real bodies and statuses of the llm-d stack, and apps that answer with them, for the stub_server
fixture (tests/unit/conftest.py): an app is app(request) -> (status, headers, body).

    server = stub_server(Replies(EPP_NO_PODS_GET, MODELS))   # one answer per request
    ...server.url...
    api = FakeApiServer(); api.add_service(...); api.backends[("services", "epp", "http")] = Replies(...)
    server = stub_server(api)

The bodies are those of FACTS.md section 4 (the EPP, Envoy, the routing sidecar, the API server proxy).
FakeApiServer resolves proxy ports as the API server's ResourceLocation does (a Service port number becomes
its name; no port matches only an unnamed port) and does not pass the caller's Authorization header on.
"""

from __future__ import annotations

import json
import re

import yaml

# ---- the real answers ----------------------------------------------------------------------------

# Recorded from GAIE's EPP behind the standalone chart's Envoy (tests/sandbox/llmd_sandbox/components/README.md)
# and, for the older wording, FACTS.md.
EPP_NO_PODS_GET = (500, {"content-type": "text/plain"}, b"inference error: Internal - no pods available in datastore")
EPP_NO_PODS_GET_OLDER = (500, {"content-type": "text/plain"}, b"inference gateway: Internal - no pods available in datastore")
EPP_NO_CANDIDATES_POST = (503, {"content-type": "text/plain"},
                          b"inference error: ServiceUnavailable - failed to find endpoint candidates for serving the request")
EPP_NO_CANDIDATES_POST_OLDER = (503, {"content-type": "text/plain"}, b"failed to find candidate pods")
ENVOY_UPSTREAM_GONE = (503, {"content-type": "text/plain"},
                       b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure")
EPP_METRICS_TOKEN_UNCHECKED = (500, {"content-type": "text/plain; charset=utf-8"}, b"Authentication failed\n")
ENVOY_NO_HEALTHY_UPSTREAM = (503, {"content-type": "text/plain"}, b"no healthy upstream")
SIDECAR_DECODE_NOT_READY = (503, {"content-type": "application/json"}, json.dumps({
    "object": "error", "message": "The decode node is not ready. Please try again later.", "type": "ServiceUnavailable",
    "param": "", "code": 503}).encode())
SIDECAR_OLD_EMPTY_502 = (502, {}, b"")
PLAIN_500 = (500, {"content-type": "text/plain"}, b"upstream failed: something broke")
MODELS = (200, {"content-type": "application/json"}, json.dumps({"object": "list", "data": [
    {"id": "random", "object": "model", "created": 1, "owned_by": "vllm", "root": "random", "parent": None}]}).encode())
UNAUTHORIZED_METRICS = (401, {"content-type": "text/plain; charset=utf-8"}, b"Unauthorized\n")
VLLM_METRICS = (200, {"content-type": "text/plain; version=0.0.4"},
                b"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"random\"} 0.0\n")


# The Service of a standalone EPP in today's guides: ext-proc, metrics, and HTTP to its Envoy sidecar.
EPP_PORTS = [{"name": "grpc-ext-proc", "port": 9002, "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
             {"name": "http-metrics", "port": 9090, "protocol": "TCP"},
             {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8081}]
# A Service list, and an Istio gateway's ClusterIP Service with no Gateway API and no Routes around it.
SERVICES = {"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
            "items": [{"metadata": {"name": "gw", "namespace": "llm-d"}, "spec": {"clusterIP": "10.96.0.1"}}]}
ISTIO_GATEWAY_SERVICES = {"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": [
    {"metadata": {"name": "infra-inference-scheduling-inference-gateway-istio", "namespace": "llm-d"},
     "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.9", "selector": {"app": "gw"},
              "ports": [{"name": "status-port", "port": 15021, "protocol": "TCP"},
                        {"name": "http", "port": 80, "protocol": "TCP"}]}}]}
NOT_FOUND = (404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": "the server could not find it"})


def status(code, reason, message):
    """A Kubernetes Status object as the API server sends it."""
    return (code, {"content-type": "application/json"}, json.dumps({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
        "reason": reason, "code": code}).encode())


def completion(headers=None):
    body = json.dumps({"id": "cmpl-1", "object": "text_completion", "model": "random",
                       "choices": [{"index": 0, "text": "hi", "logprobs": None, "finish_reason": "length"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()
    return (200, dict({"content-type": "application/json"}, **(headers or {})), body)


class Replies:
    """A backend that answers each request with the next of its answers, repeating the last one."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.seen = []

    def __call__(self, request):
        self.seen.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer


# ---- a Kubernetes API server's objects and proxy ---------------------------------------------------

_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<kind>services|pods)(?:/(?P<target>[^/]+)(?P<proxy>/proxy(?P<rest>/.*)?)?)?$")


class FakeApiServer:
    """GET of Services and Pods, and their proxy, as the API server answers them.

    objects: {(kind, name): wire JSON}; ready: {service name: bool} (its endpoints); backends:
    {(kind, name, endpoint port name or pod port number): app}. anonymous: {token: False} means a request
    without a bearer token is system:anonymous and forbidden (403), as with anonymous auth on.
    """

    def __init__(self, namespace="llm-d"):
        self.namespace = namespace
        self.objects, self.ready, self.backends = {}, {}, {}
        self.forbid_anonymous = False

    def add_service(self, name, ports, ready=True):
        self.objects[("services", name)] = {"kind": "Service", "apiVersion": "v1",
                                            "metadata": {"name": name, "namespace": self.namespace},
                                            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": ports}}
        self.ready[name] = ready

    def add_pod(self, name, containers, init_containers=()):
        self.objects[("pods", name)] = {"kind": "Pod", "apiVersion": "v1",
                                        "metadata": {"name": name, "namespace": self.namespace,
                                                     "labels": {"llm-d.ai/role": "decode"}},
                                        "spec": {"containers": list(containers), "initContainers": list(init_containers)},
                                        "status": {"podIP": "10.244.0.7"}}

    def __call__(self, request):
        path = request["path"].split("?")[0]
        match = _PATH.match(path)
        if match is None or match.group("ns") != self.namespace:
            return status(404, "NotFound", "the server could not find the requested resource")
        kind, target = match.group("kind"), match.group("target")
        if self.forbid_anonymous and not request["headers"].get("authorization"):
            return status(403, "Forbidden", '%s "%s" is forbidden: User "system:anonymous" cannot get resource "%s" in '
                                            'API group "" in the namespace "%s"' % (kind, target, kind, self.namespace))
        if target is None:
            items = [obj for (k, _n), obj in sorted(self.objects.items()) if k == kind]
            return (200, {"content-type": "application/json"},
                    {"kind": "ServiceList" if kind == "services" else "PodList", "apiVersion": "v1",
                     "metadata": {"resourceVersion": "1"}, "items": items})
        if match.group("proxy") is None:
            obj = self.objects.get((kind, target))
            if obj is None:
                return status(404, "NotFound", '%s "%s" not found' % (kind, target))
            return (200, {"content-type": "application/json"}, obj)
        parts = target.split(":")
        if parts[0] in ("http", "https") and len(parts) > 1:
            parts = parts[1:]
        name, port = parts[0], parts[1] if len(parts) > 1 else ""
        obj = self.objects.get((kind, name))
        if obj is None:
            return status(404, "NotFound", '%s "%s" not found' % (kind, name))
        if kind == "services":
            answer, key = self._service_location(obj, name, port)
        else:
            answer, key = self._pod_location(name, port)
        if answer is not None:
            return answer
        backend = self.backends.get(key)
        if backend is None:
            return status(503, "ServiceUnavailable", "error trying to reach service: dial tcp 10.244.0.7:%s: connect: "
                                                     "connection refused" % key[2])
        forwarded = dict(request, path=match.group("rest") or "/",
                         headers={k: v for k, v in request["headers"].items() if k != "authorization"})
        return backend(forwarded)

    def _service_location(self, service, name, port):
        """kubernetes pkg/registry/core/service/storage ResourceLocation, with the messages it answers."""
        ports = service["spec"]["ports"]
        if port.isdigit():
            found = [p for p in ports if p["port"] == int(port)]
            if not found:
                return status(503, "ServiceUnavailable", 'no service port %s found for service "%s"' % (port, name)), None
            port = found[0].get("name") or ""
        if not any((p.get("name") or "") == port for p in ports):
            if port == "" and len(ports) > 1:
                return status(503, "ServiceUnavailable", 'no service port "" found for service "%s"' % name), None
            return status(503, "ServiceUnavailable", 'no endpoints available for service "%s"' % name), None
        if not self.ready.get(name, True):
            return status(503, "ServiceUnavailable", 'no endpoints available for service "%s"' % name), None
        return None, ("services", name, port)

    @staticmethod
    def _pod_location(name, port):
        if port and not port.isdigit() and port != "http":
            return status(503, "ServiceUnavailable", "error trying to reach service: dial tcp: lookup tcp/%s: unknown port"
                          % port), None
        return None, ("pods", name, {"": "80", "http": "80"}.get(port, port))


# ---- a Kubernetes API server that answers from a table ------------------------------------------------

class Routes:
    """Answers routes[path] (query left out), else answer, each as (status, JSON body): the API server's reads."""

    def __init__(self, answer):
        self.routes, self.answer = {}, answer

    def __call__(self, request):
        code, body = self.routes.get(request["path"].split("?")[0], self.answer)
        return code, {"Content-Type": "application/json"}, body


def kubeconfig_file(tmp_path, server, user=None):
    """A kubeconfig for a stub server, its user a token unless user is given; the path to it."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server.url}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "cluster-token"} if user is None else user}]}))
    return str(path)
