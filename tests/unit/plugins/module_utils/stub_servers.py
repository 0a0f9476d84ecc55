# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small HTTP(S) servers on 127.0.0.1 that answer with the real bodies and statuses of the llm-d stack.

    with StubServer(Replies((500, EPP_NO_PODS_GET), (200, MODELS))) as server:   # one answer per request
        ...server.url...
    api = FakeApiServer(); api.add_service(...); api.backends[("services", "epp", "http")] = Replies(...)
    with StubServer(api) as server: ...

The bodies are those of FACTS.md section 4 (the EPP, Envoy, the routing sidecar, the API server proxy).
FakeApiServer resolves proxy ports as the API server's ResourceLocation does (a Service port number becomes
its name; no port matches only an unnamed port) and does not pass the caller's Authorization header on.
"""

from __future__ import annotations

import datetime
import http.server
import json
import re
import ssl
import threading

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


# ---- the server ------------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = {"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": self.rfile.read(length) if length else b""}
        self.server.requests.append(request)
        code, headers, body = self.server.app(request)
        body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _serve


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # TLS handshakes refused on purpose


class StubServer:
    """app(request) -> (status, headers, body) served on 127.0.0.1, over TLS when given a server context."""

    def __init__(self, app, tls=None):
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.app, self.httpd.requests = app, []
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def requests(self):
        return self.httpd.requests

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def self_signed_tls(tmp_path):
    """A server TLS context with a self-signed certificate for 127.0.0.1 (no CA anywhere trusts it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(7)
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "self.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "self.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "self.pem"), str(tmp_path / "self.key"))
    return context


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
