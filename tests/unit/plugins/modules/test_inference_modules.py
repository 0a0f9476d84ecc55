# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""models_info and inference_check run whole (argument spec, exit_json, fail_json) against a local server."""

from __future__ import annotations

import json

import pytest

from ansible_collections.llmd.verify.plugins.modules import inference_check, models_info
from ansible_collections.llmd.verify.tests.unit.plugins.modules.module_runner import run_module
from ansible_collections.llmd.verify.tests.unit.stub_answers import MODELS, completion


def openai(request):
    """A model server with one model, random, that names the pod it runs in."""
    headers = {"Content-Type": "application/json", "x-inference-pod": "decode-0"}
    if request["method"] == "GET":
        return 200, headers, {"object": "list", "data": [{"id": "random", "object": "model"}]}
    body = json.loads(request["body"])
    if body["model"] != "random":
        return 404, headers, {"object": "error", "message": "The model `%s` does not exist." % body["model"],
                              "type": "NotFoundError", "param": "model", "code": 404}
    return 200, headers, {"object": "text_completion", "model": "random", "choices": [{"index": 0, "text": "hi", "finish_reason": "length"}],
                          "usage": {"prompt_tokens": 3, "completion_tokens": body["max_tokens"], "total_tokens": 4}}


@pytest.fixture
def endpoint(stub_server):
    return stub_server(openai).url


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


def test_no_routing_headers_is_normal(stub_server, capsys):
    """Real vLLM sends no x-inference-* headers (the simulator only with POD_NAME set): nothing fails on it."""
    server = stub_server(lambda request: MODELS if request["method"] == "GET" else completion())
    checked = run(inference_check, {"endpoint": server.url, "max_tokens": 1, "stream": False}, capsys)
    listed = run(models_info, {"endpoint": server.url}, capsys)
    assert checked.get("failed") is None and checked["routing"] == {} and checked["text"] == "hi"
    assert listed.get("failed") is None and listed["headers"] == {}
