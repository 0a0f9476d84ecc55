# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""models_info and inference_check run whole (argument spec, exit_json, fail_json) against a local server."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from ansible_collections.llmd.verify.plugins.modules import inference_check, models_info
from ansible_collections.llmd.verify.tests.unit.plugins.modules.module_runner import run_module


class OpenAI(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-inference-pod", "decode-0")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(200, {"object": "list", "data": [{"id": "random", "object": "model"}]})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if request["model"] != "random":
            self.answer(404, {"object": "error", "message": "The model `%s` does not exist." % request["model"],
                              "type": "NotFoundError", "param": "model", "code": 404})
            return
        self.answer(200, {"object": "text_completion", "model": "random", "choices": [{"index": 0, "text": "hi", "finish_reason": "length"}],
                          "usage": {"prompt_tokens": 3, "completion_tokens": request["max_tokens"], "total_tokens": 4}})


@pytest.fixture
def endpoint():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OpenAI)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def run(module, args, capsys):
    return run_module(module, args, capsys)[1]


def test_models_info(endpoint, capsys):
    result = run(models_info, {"endpoint": endpoint, "expected_models": ["random"]}, capsys)
    assert result["changed"] is False and result["ids"] == ["random"] and result["attempts"] == 1


def test_inference_check_defaults_to_the_first_model(endpoint, capsys):
    result = run(inference_check, {"endpoint": endpoint, "max_tokens": 1, "seed": "auto",
                                   "assert": ["usage.completion_tokens == `1`"]}, capsys)
    assert result["model"] == "random" and result["text"] == "hi" and result["shape"] == "current"
    assert isinstance(result["request"]["body"]["seed"], int)
    assert result["routing"] == {"x-inference-pod": "decode-0"}


def test_inference_check_reports_the_flat_error(endpoint, capsys):
    result = run(inference_check, {"endpoint": endpoint, "model": "nope"}, capsys)
    assert result["failed"] is True and result["status"] == 404
    assert result["error"]["message"] == "The model `nope` does not exist." and "NotFoundError" in result["msg"]
    assert run(inference_check, {"endpoint": endpoint, "model": "nope", "expect_status": [404]}, capsys).get("failed") is None


def test_api_proxy_needs_a_target(capsys):
    result = run(inference_check, {"transport": "api_proxy", "namespace": "llm-d"}, capsys)
    assert result["failed"] is True and "service, pod" in result["msg"]


def test_no_routing_headers_is_normal(capsys):
    """Real vLLM sends no x-inference-* headers (the simulator only with POD_NAME set): nothing fails on it."""
    from ansible_collections.llmd.verify.tests.unit.plugins.module_utils.stub_servers import MODELS, StubServer, completion

    with StubServer(lambda request: MODELS if request["method"] == "GET" else completion()) as server:
        checked = run(inference_check, {"endpoint": server.url, "max_tokens": 1, "stream": False}, capsys)
        listed = run(models_info, {"endpoint": server.url}, capsys)
    assert checked.get("failed") is None and checked["routing"] == {} and checked["text"] == "hi"
    assert listed.get("failed") is None and listed["headers"] == {}
