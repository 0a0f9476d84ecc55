# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The api_proxy transport: the real kubernetes ApiClient against a stand-in API server on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from ansible_collections.llmd.verify.plugins.module_utils._api_proxy import ApiProxyTransport, proxy_path
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._openai import check_inference

kubernetes = pytest.importorskip("kubernetes")

SEEN = []


class ApiServer(http.server.BaseHTTPRequestHandler):
    """Answers proxied completions as a model server would, streamed in chunks, and records the request."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        service = json.dumps({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "optimized-baseline-epp"},
                              "spec": {"ports": [{"name": "grpc-ext-proc", "port": 9002, "appProtocol": "http2"},
                                                 {"name": "http-metrics", "port": 9090},
                                                 {"name": "http", "port": 80, "targetPort": 8081}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(service)))
        self.end_headers()
        self.wfile.write(service)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SEEN.append({"path": self.path, "authorization": self.headers.get("Authorization"), "body": body})
        if self.path.startswith("/api/v1/namespaces/llm-d/services/missing"):
            status = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                 "message": 'services "missing" not found', "code": 404}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(status)))
            self.end_headers()
            self.wfile.write(status)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-inference-pod", "decode-1")
        self.end_headers()
        for text in ("Hi", " there"):
            event = b"data: " + json.dumps({"object": "text_completion", "choices": [{"text": text, "finish_reason": None}]}).encode() + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        done = b"data: [DONE]\n\n"
        self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))


@pytest.fixture
def api_client():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    configuration = kubernetes.client.Configuration()
    configuration.host = "http://127.0.0.1:%d" % httpd.server_address[1]
    configuration.api_key = {"authorization": "Bearer cluster-token"}
    SEEN.clear()
    with kubernetes.client.ApiClient(configuration) as client:
        yield client
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_proxy_paths():
    assert proxy_path("llm-d", "services", "gw", "80", path="/v1/models") == "/api/v1/namespaces/llm-d/services/gw:80/proxy/v1/models"
    assert proxy_path("ns", "pods", "p", 8200, "https", "metrics") == "/api/v1/namespaces/ns/pods/https:p:8200/proxy/metrics"
    assert proxy_path("ns", "services", "epp", None, path="/") == "/api/v1/namespaces/ns/services/epp/proxy/"
    with pytest.raises(LlmdError):
        proxy_path("ns", "deployments", "x")


def test_a_streamed_completion_through_the_proxy(api_client):
    transport = ApiProxyTransport(api_client, "llm-d", "services", "optimized-baseline-epp", "80", timeout=5)
    result = check_inference(transport, {"api": "completions", "model": "random", "max_tokens": 2, "stream": True,
                                         "prompt": "x"})
    assert result["text"] == "Hi there" and result["routing"] == {"x-inference-pod": "decode-1"}
    # Port 80 is asked for by its name, which is what the API server proxy matches.
    assert SEEN == [{"path": "/api/v1/namespaces/llm-d/services/optimized-baseline-epp:http/proxy/v1/completions",
                     "authorization": "Bearer cluster-token",
                     "body": {"model": "random", "max_tokens": 2, "prompt": "x", "stream": True,
                              "stream_options": {"include_usage": True}}}]
    # Coarse: the API server batches streams, so no TTFT or inter-token latency is claimed.
    timings = result["timings"]
    assert timings["coarse"] is True and timings["ttft_ms"] is None and timings["itl_p99_ms"] is None
    assert timings["total_ms"] > 0 and "200 ms" in timings["note"]


def test_a_kubernetes_status_is_reported_as_the_error(api_client):
    transport = ApiProxyTransport(api_client, "llm-d", "services", "missing", "80", timeout=5)
    with pytest.raises(LlmdError) as caught:
        check_inference(transport, {"api": "completions", "model": "random", "max_tokens": 1, "prompt": "x"})
    assert caught.value.details["status"] == 404
    assert caught.value.details["error"]["message"] == 'services "missing" not found'
    assert caught.value.details["error"]["type"] == "NotFound"
