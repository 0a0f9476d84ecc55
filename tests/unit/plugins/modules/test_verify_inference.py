# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""verify_inference runs whole: every check in one process, one record each, failures recorded and not fatal."""

from __future__ import annotations

import json
import threading
import time

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


def _sent(server):
    """The inference requests in the order they arrived: completions, chat or stream."""
    names = []
    for request in server.requests:
        if request["method"] == "POST":
            body = json.loads(request["body"])
            names.append("stream" if body.get("stream") else "chat" if "/chat/" in request["path"] else "completions")
    return names


def test_the_others_are_sent_once_the_streams_first_token_is_in_and_before_it_ends(stub_server, capsys):
    others_in = threading.Event()
    arrived = []

    def held_stream():
        first, rest = _stream_body().split(b"\n\n", 1)
        yield first + b"\n\n"
        arrived.append(others_in.wait(10))  # the rest only once completions and chat have both arrived
        yield rest

    def app(request):
        if request["method"] == "POST" and len(_sent(server)) == 3:
            others_in.set()
        if request["method"] == "POST" and json.loads(request["body"]).get("stream"):
            return 200, {"content-type": "text/event-stream"}, held_stream()
        return healthy(request)

    server = stub_server(app)
    code, result = run_module(verify_inference, {"endpoint": server.url}, capsys)
    assert code == 0, result
    assert _sent(server)[0] == "stream" and sorted(_sent(server)[1:]) == ["chat", "completions"]
    assert arrived == [True]  # both were in flight while the stream still streamed
    assert [check["name"] for check in result["checks"]] == ["models", "completions", "chat", "stream"]
    assert all(check["status"] == "passed" for check in result["checks"])


def test_without_overlap_one_request_at_a_time_in_the_checks_order(stub_server, capsys):
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def app(request):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            time.sleep(0.05)
            return healthy(request)
        finally:
            with lock:
                in_flight[0] -= 1

    server = stub_server(app)
    code, result = run_module(verify_inference, {"endpoint": server.url, "overlap": False}, capsys)
    assert code == 0, result
    assert _sent(server) == ["completions", "chat", "stream"] and most == [1]


def test_a_stream_that_fails_before_its_first_token_still_sends_the_others(stub_server, capsys):
    def no_stream(request):
        if request["method"] == "POST" and json.loads(request["body"]).get("stream"):
            return ENVOY_NO_HEALTHY_UPSTREAM
        return healthy(request)

    server = stub_server(no_stream)
    code, result = run_module(verify_inference, {"endpoint": server.url}, capsys)
    statuses = dict((check["name"], check["status"]) for check in result["checks"])
    assert code == 1 and statuses == {"models": "passed", "completions": "passed", "chat": "passed", "stream": "failed"}
    assert result["msg"].startswith("1 of 4 inference checks failed: stream: ") and result["ttft_ms"] is None


def test_without_a_stream_check_completions_and_chat_go_together(stub_server, capsys):
    both_in = threading.Barrier(2, timeout=10)

    def app(request):
        if request["method"] == "POST":
            both_in.wait()  # breaks, failing the checks, unless the two are in flight at once
        return healthy(request)

    server = stub_server(app)
    code, result = run_module(verify_inference, {"endpoint": server.url, "checks": ["models", "chat", "completions"]},
                              capsys)
    assert code == 0, result
    assert [check["name"] for check in result["checks"]] == ["models", "completions", "chat"]


def test_without_a_model_to_ask_one_request_at_a_time_the_first_answer_naming_it(stub_server, capsys):
    server = stub_server(healthy)
    code, result = run_module(verify_inference, {"endpoint": server.url, "checks": ["completions", "chat", "stream"]},
                              capsys)
    assert code == 0, result
    assert [request["method"] for request in server.requests] == ["GET", "POST", "POST", "POST"]  # listed once
    assert _sent(server) == ["completions", "chat", "stream"] and result["model"] == "random"
    assert all(json.loads(r["body"])["model"] == "random" for r in server.requests if r["method"] == "POST")
