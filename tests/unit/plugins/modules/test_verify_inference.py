# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""verify_inference runs whole: every check in one process, one record each, failures recorded and not fatal."""

from __future__ import annotations

import json

from ansible_collections.llmd.verify.plugins.modules import verify_inference
from ansible_collections.llmd.verify.tests.unit.stub_answers import ENVOY_NO_HEALTHY_UPSTREAM, MODELS, completion
from ansible_collections.llmd.verify.tests.unit.plugins.modules.module_runner import run_module

CHAT = (200, {"content-type": "application/json"}, json.dumps({
    "id": "chat-1", "object": "chat.completion", "model": "random",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode())


def _stream_body():
    events = [{"id": "c", "object": "text_completion", "model": "random",
               "choices": [{"index": 0, "text": word, "finish_reason": None}]} for word in ("a", "b", "c")]
    events[-1]["choices"][0]["finish_reason"] = "length"
    return "".join("data: %s\n\n" % json.dumps(event) for event in events).encode() + b"data: [DONE]\n\n"


STREAM = (200, {"content-type": "text/event-stream"}, _stream_body())


def healthy(request):
    if request["method"] == "GET":
        return MODELS
    body = json.loads(request["body"])
    if request["path"] == "/v1/chat/completions":
        return CHAT
    return STREAM if body.get("stream") else completion()


def test_every_check_in_one_run_with_a_record_each(stub_server, capsys):
    server = stub_server(healthy)
    code, result = run_module(verify_inference, {"endpoint": server.url}, capsys)
    seeds = [json.loads(r["body"]).get("seed") for r in server.requests if r["method"] == "POST"]
    assert code == 0 and not result.get("failed")
    assert [check["name"] for check in result["checks"]] == ["models", "completions", "chat", "stream"]
    assert all(check["status"] == "passed" for check in result["checks"])
    assert result["models"] == ["random"] and result["model"] == "random"
    assert result["checks"][0]["message"] == "random after 1 attempt(s)"
    assert result["checks"][1]["message"] == "HTTP 200, current, finish_reason length, 1 tokens"
    assert result["checks"][3]["message"].startswith("TTFT ") and result["ttft_ms"] is not None
    assert len(set(seeds)) == 3 and all(isinstance(seed, int) for seed in seeds)  # a fresh seed each


def test_the_checks_run_in_their_own_order_and_only_those_asked(stub_server, capsys):
    server = stub_server(healthy)
    _code, result = run_module(verify_inference, {"endpoint": server.url, "checks": ["stream", "models"]}, capsys)
    assert [check["name"] for check in result["checks"]] == ["models", "stream"]


def test_a_failed_check_is_recorded_and_the_module_fails_naming_it(stub_server, capsys):
    def no_chat(request):
        return ENVOY_NO_HEALTHY_UPSTREAM if request["path"] == "/v1/chat/completions" else healthy(request)

    server = stub_server(no_chat)
    code, result = run_module(verify_inference, {"endpoint": server.url}, capsys)
    assert code == 1 and result["failed"]
    statuses = dict((check["name"], check["status"]) for check in result["checks"])
    assert statuses == {"models": "passed", "completions": "passed", "chat": "failed", "stream": "passed"}
    chat = result["checks"][2]
    assert "503" in chat["message"] and chat["details"]["status"] == 503
    assert result["msg"].startswith("1 of 4 inference checks failed: chat: ")


def test_an_optional_check_that_fails_is_skipped_and_does_not_fail_the_module(stub_server, capsys):
    def no_chat(request):
        return ENVOY_NO_HEALTHY_UPSTREAM if request["path"] == "/v1/chat/completions" else healthy(request)

    server = stub_server(no_chat)
    code, result = run_module(verify_inference, {"endpoint": server.url, "optional_checks": ["chat"]}, capsys)
    assert code == 0
    assert result["checks"][2]["status"] == "skipped"
    assert result["checks"][2]["message"].startswith("not expected to answer yet (")


def test_an_endpoint_that_never_gets_ready_fails_every_check_with_its_answer(stub_server, capsys):
    server = stub_server(lambda request: ENVOY_NO_HEALTHY_UPSTREAM)
    code, result = run_module(verify_inference, {"endpoint": server.url, "wait_timeout": 0}, capsys)
    assert code == 1
    assert all(check["status"] == "failed" for check in result["checks"])
    assert "no healthy upstream" in result["checks"][0]["message"]
    assert all(check["message"].startswith("not sent: no model to ask, since the models check failed (")
               for check in result["checks"][1:])
    assert len(server.requests) == 1  # /v1/models once, and nothing sent that could only fail the same way
    assert result["models"] == [] and result["ttft_ms"] is None


def test_bad_options_fail_with_the_argument_spec_message(capsys):
    code, result = run_module(verify_inference, {"endpoint": "http://127.0.0.1:1", "checks": ["tokens"]}, capsys)
    assert code == 1 and "checks" in result["msg"] and "tokens" in result["msg"]
