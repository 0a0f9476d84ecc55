# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The direct transport against a real HTTP(S) server on 127.0.0.1 (stdlib http.server in a thread), and the
reading of error bodies."""

from __future__ import annotations

import datetime
import http.server
import json
import socket
import ssl
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils._http import HttpTransport, TransportError, http_error, lookup_resolve, transport_error

HOST = "llm.example.test"  # no DNS record: only resolve can reach it


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/slow-headers":
            time.sleep(1.0)
        if self.path == "/stall-stream":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n")
            self.wfile.flush()
            time.sleep(1.0)
            return
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        body = json.dumps({"path": self.path, "host": self.headers.get("Host"),
                           "authorization": self.headers.get("Authorization"), "x-extra": self.headers.get("X-Extra")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the failed TLS handshakes the tests cause on purpose


@pytest.fixture
def server():
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def get_json(transport, path):
    response = transport.request("GET", path)
    try:
        return response.status, json.loads(response.read())
    finally:
        response.close()


def test_headers_key_and_base_path(server):
    port = server.server_address[1]
    transport = HttpTransport("http://127.0.0.1:%d/prefix/" % port, api_key="sk-1", headers={"X-Extra": "yes"}, timeout=5)
    status, seen = get_json(transport, "/v1/models")
    assert status == 200
    assert seen == {"path": "/prefix/v1/models", "host": "127.0.0.1:%d" % port, "authorization": "Bearer sk-1", "x-extra": "yes"}


def test_resolve_connects_to_the_address_with_the_host_name(server):
    port = server.server_address[1]
    transport = HttpTransport("http://%s:%d" % (HOST, port), resolve={HOST: "127.0.0.1"}, timeout=5)
    status, seen = get_json(transport, "/v1/models")
    assert (status, seen["host"]) == (200, "%s:%d" % (HOST, port))
    # Without resolve the name does not resolve at all.
    with pytest.raises(TransportError) as caught:
        HttpTransport("http://%s:%d" % (HOST, port), timeout=5).request("GET", "/v1/models")
    assert caught.value.phase == "connect" and not caught.value.not_ready


def test_lookup_resolve_keys():
    assert lookup_resolve({"A.example:443": "10.0.0.1"}, "a.example", 443) == "10.0.0.1"
    assert lookup_resolve({"a.example:443": "10.0.0.1"}, "a.example", 80) is None
    assert lookup_resolve({"a.example": "[::1]"}, "a.example", 80) == "::1"


def test_connection_refused_means_not_ready():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as caught:
        HttpTransport("http://127.0.0.1:%d" % port, timeout=2).request("GET", "/v1/models")
    assert caught.value.not_ready and caught.value.phase == "connect"


def test_an_exception_chain_that_loops_is_read_without_hanging():
    first, second = OSError("first"), OSError("second")
    first.reason, second.reason = second, first  # urllib3 chains by reason; nothing stops one from looping
    error = transport_error(first, "http://x", 1)
    assert error.msg in ("http://x: first", "http://x: second") and error.phase == "connect"
    refused = ConnectionRefusedError("[Errno 111] Connection refused")
    wrapped = OSError("Max retries exceeded")
    wrapped.reason = "not an exception"  # urllib3 leaves a string there at times: the cause is still read
    wrapped.__cause__ = refused
    assert transport_error(wrapped, "http://x", 1).not_ready


def test_timeouts_name_their_phase(server):
    transport = HttpTransport("http://127.0.0.1:%d" % server.server_address[1], timeout=0.3)
    with pytest.raises(TransportError) as caught:
        transport.request("GET", "/slow-headers")
    assert caught.value.phase == "first byte"
    response = transport.request("GET", "/stall-stream")
    with pytest.raises(TransportError) as caught:
        response.read()
    response.close()
    assert caught.value.phase == "stream" and "5 bytes received" in caught.value.msg


class ClosingServer:
    """Raw HTTP on 127.0.0.1: answers each connection's first `answered` requests with keep-alive, then closes it
    on the next one without a word (a port-forward whose pod was replaced); closes every connection at once after
    `answered` connections when always_close."""

    def __init__(self, answered=1, always_close=False):
        self.answered, self.always_close, self.requests = answered, always_close, []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn):
        with conn, conn.makefile("rb") as reader:
            for served in range(self.answered + 1):
                request = reader.readline()
                while reader.readline() not in (b"\r\n", b""):
                    pass
                self.requests.append(request)
                if self.always_close or served == self.answered:
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    def close(self):
        self.sock.close()


def test_a_kept_alive_connection_closed_before_an_answer_is_sent_again_on_a_fresh_one():
    server = ClosingServer(answered=1)
    try:
        transport = HttpTransport(server.url, timeout=2)
        for _request in range(2):
            response = transport.request("GET", "/v1/models")
            assert response.status == 200 and response.read() == b"{}"
            response.close()
        # the second request went on the kept-alive connection, which closed; then on a new one
        assert len(server.requests) == 3
    finally:
        server.close()


def test_a_connection_closed_before_an_answer_twice_says_so():
    server = ClosingServer(always_close=True)
    try:
        with pytest.raises(TransportError) as caught:
            HttpTransport(server.url, timeout=2).request("POST", "/v1/completions", {"prompt": "hi"})
        assert caught.value.phase == "first byte" and not caught.value.not_ready
        assert "the connection was closed before any answer" in caught.value.msg
        assert len(server.requests) == 2  # once more, not again and again
    finally:
        server.close()


def test_a_truncated_body_is_marked_not_raised(server):
    transport = HttpTransport("http://127.0.0.1:%d" % server.server_address[1], timeout=5)
    response = transport.request("GET", "/truncated")
    assert response.read() == b"0123456789"
    response.close()
    assert "ended before the body was complete" in response.truncated


def test_bad_endpoints_are_refused_early():
    for endpoint in (None, "ftp://x", "http://"):
        with pytest.raises(Exception) as caught:
            HttpTransport(endpoint)
        assert "endpoint" in str(caught.value)


# ---- TLS: resolve keeps the name for SNI and certificate checks ----------------------------------------

@pytest.fixture
def tls_server(tmp_path):
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test ca")).issuer_name(name("test ca")).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name(HOST)).issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(2).not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    server_names = []
    context.sni_callback = lambda sock, server_name, ctx: server_names.append(server_name)
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd, str(tmp_path / "ca.pem"), server_names
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_tls_resolve_sends_the_name_as_sni_and_verifies_it(tls_server):
    httpd, ca_path, server_names = tls_server
    port = httpd.server_address[1]
    transport = HttpTransport("https://%s:%d" % (HOST, port), resolve={HOST: "127.0.0.1"}, ca_path=ca_path, timeout=5)
    status, seen = get_json(transport, "/v1/models")
    assert (status, seen["host"]) == (200, "%s:%d" % (HOST, port))
    assert server_names == [HOST]
    # The certificate does not name 127.0.0.1: without resolve, verification fails, naming TLS.
    with pytest.raises(TransportError, match="TLS failed"):
        HttpTransport("https://127.0.0.1:%d" % port, ca_path=ca_path, timeout=5).request("GET", "/v1/models")
    status, _seen = get_json(HttpTransport("https://127.0.0.1:%d" % port, validate_certs=False, timeout=5), "/v1/models")
    assert status == 200


# ---- error bodies, whatever their shape ----------------------------------------------------------------

def test_current_and_flat_vllm_errors_read_alike():
    current = json.dumps({"error": {"message": "The model `x` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}})
    flat = json.dumps({"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "param": "model", "code": 404})
    for body in (current, flat):
        error = http_error(404, body.encode())
        assert error == {"status": 404, "message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404, "param": "model"}


def test_kubernetes_status_and_html_bodies():
    status = http_error(503, json.dumps({"kind": "Status", "message": 'no endpoints available for service "gw"',
                                         "reason": "ServiceUnavailable", "code": 503}).encode())
    assert status["message"] == 'no endpoints available for service "gw"' and status["type"] == "ServiceUnavailable"
    html = http_error(502, b"<html><body>" + b"x" * 2000 + b"</body></html>")
    assert html["body"].startswith("<html>") and len(html["body"]) == 500
    assert http_error(500, b"")["message"] == "empty body"


@given(st.binary(max_size=300), st.integers(100, 599))
def test_http_error_never_raises(body, status):
    error = http_error(status, body)
    assert error["status"] == status
