# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures every unit test shares: one stub HTTP(S) server on 127.0.0.1 (stub_server), the stand-ins built on
it (k8s_api, cluster, epp_api, https, pod_logs_api), and isolation from this machine's Kubernetes configuration
(isolated). The answers and apps they serve are in stub_answers.py and fake_pod_logs_api.py."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import ssl
import threading

import pytest

from ansible_collections.llmd.verify.tests.unit.stub_answers import (
    EPP_PORTS,
    ISTIO_GATEWAY_SERVICES,
    MODELS,
    NOT_FOUND,
    SERVICES,
    VLLM_METRICS,
    FakeApiServer,
    Replies,
    Routes,
    completion,
)


# ---- the server ------------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = {"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                   "header_lines": list(self.headers.items()), "body": self.rfile.read(length) if length else b""}
        self.server.requests.append(request)
        code, headers, body = self.server.app(request)
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        if isinstance(body, (bytes, dict, list)):
            body = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", "chunked")  # any other iterable of bytes: a stream, chunk by chunk
        self.end_headers()
        try:
            for chunk in body:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client cut the stream, as a follow window does

    do_GET = do_POST = _serve


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # TLS handshakes refused on purpose


class StubServer:
    """app(request) -> (status, headers, body) served on 127.0.0.1, over TLS when given a server context.

    request: method, path (with the query), headers (lower-case names), header_lines (as sent, repeats kept),
    body. body: bytes, a dict or list (sent as JSON), or an iterable of bytes (sent chunked as it comes).
    """

    def __init__(self, app, tls=None):
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.app, self.httpd.requests = app, []
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def requests(self):
        return self.httpd.requests

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def self_signed_tls(tmp_path):
    """A server TLS context with a self-signed certificate for 127.0.0.1 (no CA anywhere trusts it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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


# ---- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture
def stub_server():
    """stub_server(app, tls=None): a StubServer serving app, started now and stopped when the test ends."""
    servers = []

    def start(app, tls=None):
        servers.append(StubServer(app, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No kubeconfig, service account or cached client from the machine or another test."""
    from ansible_collections.llmd.verify.plugins.module_utils import _k8s_client

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(_k8s_client, "_clients", {})


@pytest.fixture
def k8s_api(stub_server):
    """A Kubernetes API server answering reads from its routes, else its answer (a Service list); url, requests."""
    api = Routes((200, SERVICES))
    server = stub_server(api)
    api.url, api.requests = server.url, server.requests
    return api


@pytest.fixture
def cluster(k8s_api):
    """A cluster with a ClusterIP Istio gateway Service, no Gateway API and no Routes."""
    k8s_api.routes.update({
        "/api/v1/namespaces/llm-d/services": (200, ISTIO_GATEWAY_SERVICES),
        "/apis/networking.k8s.io/v1/namespaces/llm-d/ingresses": (200, {
            "kind": "IngressList", "apiVersion": "networking.k8s.io/v1", "metadata": {"resourceVersion": "1"},
            "items": []}),
    })
    k8s_api.answer = NOT_FOUND
    return k8s_api


@pytest.fixture
def epp_api(stub_server):
    """An API server with a standalone EPP's Service whose HTTP port answers the model list; fake: its FakeApiServer."""
    fake = FakeApiServer()
    fake.add_service("optimized-baseline-epp", EPP_PORTS)
    fake.backends[("services", "optimized-baseline-epp", "http")] = Replies(MODELS)
    server = stub_server(fake)
    server.fake = fake
    return server


def _openai_and_metrics(request):
    if request["path"].startswith("/metrics"):
        return VLLM_METRICS
    return MODELS if request["method"] == "GET" else completion()


@pytest.fixture
def https(stub_server, tmp_path, monkeypatch):
    """The URL of an OpenAI endpoint and /metrics over HTTPS with a self-signed certificate (tmp_path/self.pem)."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    return stub_server(_openai_and_metrics, tls=self_signed_tls(tmp_path)).url


@pytest.fixture
def pod_logs_api(stub_server):
    """pod_logs_api(pods, logs, **options): a started FakePodLogsApi (see fake_pod_logs_api.py)."""
    from ansible_collections.llmd.verify.tests.unit.fake_pod_logs_api import FakePodLogsApi

    def start(pods, logs, **options):
        fake = FakePodLogsApi(pods, logs, **options)
        fake.url = stub_server(fake).url
        return fake

    return start
