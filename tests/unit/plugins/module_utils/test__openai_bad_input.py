# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input for the readers of HTTP answers (_openai, _http): whatever a server sends, an LlmdError or a result.

Answers are generated whole (status, content type, body, how the body is cut into reads) and read by the same
functions the modules call: list_models, wait_for_models and check_inference, streamed or not.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._http import TransportError, decode_json, describe_error, http_error
from ansible_collections.llmd.verify.plugins.module_utils._k8s_status import kubernetes_hint
from ansible_collections.llmd.verify.plugins.module_utils._openai import (
    check_inference,
    list_models,
    not_ready_reason,
    wait_for_models,
)
from ansible_collections.llmd.verify.tests.unit.plugins.bad_input import (
    BYTES,
    DEEP_JSON,
    JSON,
    PROPERTIES,
    TEXT,
    assert_clear_error,
    assert_clear_message,
)


class Answer:
    """An _http.Response as check_inference reads it: headers in, the body in the given reads."""

    def __init__(self, status, content_type, pieces, truncated=None):
        self.status, self.pieces, self.truncated = status, pieces, truncated
        self.headers = {"content-type": content_type} if content_type else {}
        self.target = "http://127.0.0.1:8000/v1/completions"
        self.started, self.headers_at = 100.0, 100.01

    def chunks(self):
        for index, piece in enumerate(self.pieces):
            yield 100.02 + index / 1000.0, piece

    def read(self):
        return b"".join(self.pieces)

    def close(self):
        pass


class Transport:
    target = "http://127.0.0.1:8000"
    kind = "direct"
    coarse_timing = False

    def __init__(self, answers):
        self.answers = list(answers)

    def request(self, method, path, body=None):
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _cut(data, cuts):
    """data cut at the given offsets, as a server's writes might arrive."""
    points = sorted({0, len(data)} | {cut % (len(data) + 1) for cut in cuts})
    return [data[start:end] for start, end in zip(points, points[1:])] or [b""]


JSON_BODIES = JSON.map(lambda value: json.dumps(value).encode())
SSE_BODIES = st.lists(JSON.map(lambda value: "data: %s\n\n" % json.dumps(value)) | st.just("data: [DONE]\n\n") | TEXT,
                      max_size=6).map(lambda events: "".join(events).encode("utf-8", "surrogatepass"))
# Answers with thousands of entries or events, each of which may be wrong in the same way.
MANY = st.integers(0, 3000)
LONG_LISTS = (st.tuples(JSON, MANY).map(lambda many: json.dumps({"object": "list", "data": [many[0]] * many[1]}).encode())
              | st.tuples(st.text(max_size=30), MANY).map(lambda many: json.dumps(
                  {"object": "list", "data": [{"id": "%s-%d" % (many[0], index)} for index in range(many[1])]}).encode()))
LONG_STREAMS = st.tuples(JSON.map(lambda value: "data: %s\n\n" % json.dumps(value)), MANY).map(
    lambda many: (many[0] * many[1] + "data: [DONE]\n\n").encode("utf-8", "surrogatepass"))
BODIES = BYTES | JSON_BODIES | SSE_BODIES | LONG_LISTS | LONG_STREAMS | st.just(DEEP_JSON)
STATUSES = st.sampled_from([200, 200, 200, 400, 401, 403, 404, 429, 500, 502, 503, 504]) | st.integers(100, 599)
ANSWERS = st.builds(Answer, STATUSES, st.sampled_from(["application/json", "text/event-stream", "text/html", None]),
                    st.tuples(BODIES, st.lists(st.integers(0, 400), max_size=4)).map(lambda cut: _cut(*cut)),
                    st.none() | st.just("the connection ended before the body was complete (reset)"))


@PROPERTIES
@given(STATUSES, BODIES)
def test_error_bodies_are_read_into_clear_lines(status, body):
    error = http_error(status, body)
    assert_clear_message(describe_error(error), body)
    assert not_ready_reason(status, body) is None or isinstance(not_ready_reason(status, body), str)
    hint = kubernetes_hint(status, body)
    assert hint is None or isinstance(hint, str)


@PROPERTIES
@given(ANSWERS)
def test_any_models_answer_is_a_result_or_a_clear_error(answer):
    try:
        result = list_models(Transport([answer]))
    except LlmdError as err:
        assert not isinstance(err, TransportError)
        assert_clear_error(err, answer.read())
        return
    assert result["ids"] and all(isinstance(model, str) for model in result["ids"])


@PROPERTIES
@given(ANSWERS)
def test_waiting_for_models_on_any_answer_ends_with_a_result_or_a_clear_error(answer):
    clock = [0.0]
    try:
        wait_for_models(Transport([answer]), 2, ["random"], sleep=lambda seconds: clock.__setitem__(0, clock[0] + seconds),
                        clock=lambda: clock[0])
    except LlmdError as err:
        assert_clear_error(err, answer.read())


@PROPERTIES
@given(ANSWERS, st.sampled_from(["completions", "chat"]), st.booleans())
def test_any_inference_answer_is_a_result_or_a_clear_error(answer, api, stream):
    params = {"api": api, "model": "random", "prompt": None, "messages": None, "max_tokens": 4, "seed": None,
              "temperature": None, "extra_body": {}, "stream": stream, "expect_status": [200], "assert": ["text"]}
    try:
        result = check_inference(Transport([answer]), params)
    except LlmdError as err:
        assert_clear_error(err, answer.read())
        return
    assert result["status"] == 200 and isinstance(result["text"], str)


def test_json_nested_deeper_than_the_recursion_limit_is_not_json_not_a_recursion_error():
    assert decode_json(DEEP_JSON)[0] is None
    assert decode_json(DEEP_JSON)[1].startswith("not JSON")
    assert http_error(500, DEEP_JSON)["message"] == "[" * 200


def test_a_server_message_of_a_megabyte_is_cut_to_an_excerpt():
    body = json.dumps({"error": {"message": "x" * 1000000, "type": "BadRequestError"}}).encode()
    line = describe_error(http_error(400, body))
    assert len(line) < 600 and line.startswith("HTTP 400: xxx") and line.endswith("(BadRequestError)")


def test_thousands_of_wrong_events_or_models_name_the_first_few_and_count_the_rest():
    params = {"api": "completions", "model": "random", "prompt": None, "messages": None, "max_tokens": 4, "seed": None,
              "temperature": None, "extra_body": {}, "stream": True, "expect_status": [200], "assert": []}
    with pytest.raises(LlmdError) as caught:
        check_inference(Transport([Answer(200, "text/event-stream", [b"data: x\n\n" * 1000 + b"data: [DONE]\n\n"])]), params)
    assert caught.value.msg.endswith("; event 3 is not JSON (Expecting value: line 1 column 1 (char 0)) (and 997 more)")
    served = json.dumps({"data": [{"id": "m%d" % index} for index in range(3000)]}).encode()
    with pytest.raises(LlmdError) as caught:
        wait_for_models(Transport([Answer(200, "application/json", [served])]), 0, ["random"])
    assert caught.value.msg.endswith("expected models not served: random; served: %s (and 2980 more)"
                                     % ", ".join("m%d" % index for index in range(20)))
    huge_object = json.dumps({"object": "x" * 100000, "choices": [{"text": "a"}]}).encode()
    with pytest.raises(LlmdError, match=r"object is 'x{99}, expected 'text_completion'$"):
        check_inference(Transport([Answer(200, "application/json", [huge_object])]), dict(params, stream=False))
