# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._http import TransportError
from ansible_collections.llmd.verify.plugins.module_utils._openai import (
    SSEParser,
    StreamAssembler,
    build_request,
    completion_from,
    evaluate_assertions,
    models_from,
    not_ready_reason,
    percentile,
    resolve_seed,
    stream_timings,
    wait_for_models,
)

# JSON values of any shape, to throw at the parsers.
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
                    max_leaves=12)
SEED_SAMPLE = {"choices": [{"finish_reason": "stop", "index": 0, "message": {"content": "Today is a nice sunny day.", "role": "assistant"}}],
               "created": 1752727735, "id": "chatcmpl-af42e9e3", "model": "random"}


def sse(*events):
    return b"".join(b"data: " + (event if isinstance(event, bytes) else json.dumps(event).encode()) + b"\n\n" for event in events)


def completion_chunk(text, finish=None):
    return {"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": finish}]}


STREAM = sse(completion_chunk("Hello"), completion_chunk(" world", "length"),
             {"object": "text_completion", "choices": [], "usage": {"completion_tokens": 2}}, b"[DONE]")


# ---- errors ------------------------------------------------------------------------------------------

def test_not_ready_reasons():
    assert not_ready_reason(503, b"no healthy upstream") == "no healthy upstream"
    assert not_ready_reason(200, b"upstream connect error: no endpoints") == "no endpoints"
    assert not_ready_reason(502, b"") == "HTTP 502 with an empty body"  # the old routing sidecar
    assert not_ready_reason(502, b"bad gateway") == "HTTP 502"
    assert not_ready_reason(404, b"") is not None  # a route not programmed yet
    assert not_ready_reason(404, b'{"kind":"Status","code":404}') is None  # no such Service: a real failure
    assert not_ready_reason(404, b'{"error":{"message":"The model `x` does not exist."}}') is None
    assert not_ready_reason(400, b"bad") is None


# ---- shapes ------------------------------------------------------------------------------------------

def test_completion_shapes():
    current = completion_from({"object": "text_completion", "choices": [{"text": "hi", "finish_reason": "length"}],
                               "usage": {"completion_tokens": 1}}, "completions")
    assert (current["shape"], current["text"], current["finish_reason"], current["problems"]) == ("current", "hi", "length", [])
    legacy = completion_from(SEED_SAMPLE, "completions")
    assert (legacy["shape"], legacy["text"], legacy["problems"]) == ("legacy", "Today is a nice sunny day.", [])
    chat = completion_from(dict(SEED_SAMPLE, object="chat.completion"), "chat")
    assert chat["shape"] == "current"
    assert completion_from({"choices": []}, "chat")["problems"] == ["the answer has no choices"]
    assert completion_from({"object": "chat.completion", "choices": [{"text": "x"}]}, "completions")["problems"]


@given(JSON, st.sampled_from(["completions", "chat"]))
def test_completion_from_never_raises(obj, api):
    result = completion_from(obj, api)
    assert result["shape"] in ("current", "legacy", "invalid")
    assert result["shape"] != "invalid" or result["problems"]


@given(JSON)
def test_models_from_never_raises(obj):
    ids, _data, problems = models_from(obj)
    assert all(isinstance(model, str) for model in ids)
    assert isinstance(problems, list)


# ---- streams -----------------------------------------------------------------------------------------

def feed_all(assembler, data, cuts):
    """Feed data cut at the given offsets, each piece one 'arrival' (its index is its time)."""
    bounds = sorted(set([0, len(data)] + [cut % (len(data) + 1) for cut in cuts]))
    for at, (start, end) in enumerate(zip(bounds, bounds[1:])):
        assembler.feed(float(at), data[start:end])


@given(st.lists(st.integers(min_value=0), max_size=40))
def test_a_stream_reads_the_same_however_it_is_cut(cuts):
    assembler = StreamAssembler("completions")
    feed_all(assembler, STREAM, cuts)
    assert assembler.text == "Hello world"
    assert assembler.finish_reason == "length" and assembler.usage == {"completion_tokens": 2}
    assert assembler.finish() == [] and assembler.shape == "current"
    assert len(assembler.token_times) == 2


def test_crlf_and_multiline_events():
    parser = SSEParser()
    events = parser.feed(1.0, b": comment\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nevent: x\rdata:[DONE]\r\r\n")
    assert [data for _at, data in events] == ['{"a":\n1}', "[DONE]"]


def test_truncated_stream_is_a_problem_not_an_exception():
    assembler = StreamAssembler("completions")
    assembler.feed(0.0, STREAM[:150])  # the first event and half of the second
    problems = assembler.finish("the connection ended before the body was complete")
    assert problems == ["the connection ended before the body was complete"]
    assert assembler.text == "Hello"


def test_chat_stream_times_content_not_the_role_chunk():
    assembler = StreamAssembler("chat")
    assembler.feed(1.0, sse({"choices": [{"delta": {"role": "assistant", "content": ""}}]}))
    assembler.feed(2.0, sse({"choices": [{"delta": {"content": "Hi"}, "finish_reason": "stop"}]}, b"[DONE]"))
    assert assembler.token_times == [2.0] and assembler.text == "Hi" and assembler.shape == "current"


def test_error_event_in_a_stream():
    assembler = StreamAssembler("completions")
    assembler.feed(0.0, sse({"error": {"message": "boom", "type": "InternalServerError", "code": 500}}))
    assert assembler.error["message"] == "boom"


@settings(max_examples=200)
@given(st.binary(max_size=400), st.sampled_from(["completions", "chat"]))
def test_stream_parsing_never_raises_on_garbage(data, api):
    assembler = StreamAssembler(api)
    assembler.feed(0.0, data)
    assert isinstance(assembler.finish(), list)


@given(st.lists(JSON, max_size=6), st.sampled_from(["completions", "chat"]))
def test_stream_parsing_never_raises_on_odd_json(events, api):
    assembler = StreamAssembler(api)
    assembler.feed(0.0, sse(*events) + b"data: [DONE]\n\n")
    assert assembler.done


# ---- timings -----------------------------------------------------------------------------------------

def test_percentile_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([float(n) for n in range(1, 101)], 99) == 99.0
    assert percentile([float(n) for n in range(1, 101)], 50) == 50.0


def test_stream_timings():
    timings = stream_timings(10.0, 10.001, [10.050, 10.060, 10.072], 10.080, 3)
    assert timings["first_byte_ms"] == 1.0
    assert timings["ttft_ms"] == 50.0
    assert timings["itl_mean_ms"] == 11.0 and timings["itl_p50_ms"] == 10.0 and timings["itl_p99_ms"] == 12.0
    assert timings["total_ms"] == 80.0 and timings["tokens_per_second"] == 37.5
    assert stream_timings(0.0, 0.0, [], 1.0, 0)["ttft_ms"] is None


# ---- requests ----------------------------------------------------------------------------------------

def test_seed_and_request_body():
    assert resolve_seed(None) is None and resolve_seed(7) == 7 and resolve_seed("42") == 42
    seeds = {resolve_seed("auto") for _attempt in range(20)}
    assert len(seeds) > 15 and all(isinstance(seed, int) and seed > 0 for seed in seeds)
    with pytest.raises(LlmdError):
        resolve_seed("soon")
    path, body = build_request({"api": "chat", "max_tokens": 1, "prompt": "hi", "seed": 3, "stream": True,
                                "extra_body": {"stream_options": None, "top_p": 0.5}}, "m")
    assert path == "/v1/chat/completions"
    assert body == {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}], "seed": 3,
                    "stream": True, "top_p": 0.5}


def test_assertions_use_jmespath_truth():
    result = {"finish_reason": "length", "usage": {"completion_tokens": 0}, "timings": {"ttft_ms": 50.0}}
    assert evaluate_assertions(["finish_reason == 'length'", "usage.completion_tokens", "timings.ttft_ms < `100`"], result) == []
    assert evaluate_assertions(["finish_reason == 'stop'", "missing"], result) == ["finish_reason == 'stop' (got false)",
                                                                                   "missing (got null)"]
    with pytest.raises(LlmdError, match="not a valid JMESPath"):
        evaluate_assertions(["[["], result)


# ---- waiting -----------------------------------------------------------------------------------------

class FakeResponse:
    def __init__(self, status, body, target="http://gw"):
        self.status, self.body, self.target = status, body, target
        self.headers = {"x-inference-pod": "decode-0"}

    def read(self):
        return self.body

    def close(self):
        pass


class FakeTransport:
    """Answers from a script: a (status, body) pair or an exception per request."""
    target = "http://gw"
    kind = "direct"
    coarse_timing = False

    def __init__(self, script):
        self.script = list(script)

    def request(self, method, path, body=None):
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return FakeResponse(*answer)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


MODELS = json.dumps({"object": "list", "data": [{"id": "random", "parent": None}, {"id": "lora", "parent": "random"}]}).encode()


def test_wait_until_ready_with_backoff():
    clock = FakeClock()
    transport = FakeTransport([TransportError("refused", phase="connect", not_ready=True), (503, b"no healthy upstream"),
                               (502, b""), (200, MODELS)])
    result = wait_for_models(transport, 30, ["lora"], sleep=clock.sleep, clock=clock)
    assert result["ids"] == ["random", "lora"] and result["attempts"] == 4
    assert result["waited_for"] == ["connection refused", "no healthy upstream", "HTTP 502 with an empty body"]
    assert result["elapsed"] == 3.5  # 0.5 + 1 + 2


def test_wait_gives_up_with_the_cause():
    clock = FakeClock()
    transport = FakeTransport([(503, b"no healthy upstream")] * 10)
    with pytest.raises(LlmdError) as caught:
        wait_for_models(transport, 3, sleep=clock.sleep, clock=clock)
    assert "no healthy upstream" in caught.value.msg and caught.value.details["not_ready"] == "no healthy upstream"
    assert caught.value.details["attempts"] == 3


def test_a_real_failure_ends_the_wait_at_once():
    transport = FakeTransport([(401, b'{"error":{"message":"bad key","type":"AuthenticationError"}}')])
    with pytest.raises(LlmdError) as caught:
        wait_for_models(transport, 30, sleep=pytest.fail)
    assert caught.value.details["attempts"] == 1 and caught.value.details["error"]["message"] == "bad key"


def test_expected_models_fail_with_what_is_served():
    with pytest.raises(LlmdError, match="expected models not served: qwen; served: random, lora"):
        wait_for_models(FakeTransport([(200, MODELS)]), 0, ["qwen"])


def test_html_200_is_reported_with_its_start():
    with pytest.raises(LlmdError) as caught:
        wait_for_models(FakeTransport([(200, b"<html>login</html>")]), 0)
    assert caught.value.details["body"] == "<html>login</html>"
