#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: inference_check
short_description: Send one completions or chat request to an llm-d endpoint and check the answer
version_added: 0.1.0
description:
  - Sends one C(POST /v1/completions) or C(POST /v1/chat/completions) request and checks the answer (the HTTP
    status, the shape of the response, and optional JMESPath assertions).
  - With O(stream=true) it measures, on a monotonic clock, the time to first token, the inter-token latency
    (mean, p50, p99), the total time and the tokens per second.
  - A completion answered in the chat shape (C(choices[].message), as older simulators did and llm-d's docs
    show) passes, reported as RV(shape=legacy).
  - Every failure returns the HTTP status and the server's message, type and code (both vLLM error shapes);
    a body that is not JSON (an HTML page from a proxy) is returned as its first 500 characters; a timeout
    names its phase (connect, first byte, stream).
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.http_client
  - llmd.verify.http_client.api_proxy
  - llmd.verify.attributes
  - llmd.verify.attributes.in_controller
  - llmd.verify.attributes.info_module
options:
  api:
    description:
      - Which API to call.
    type: str
    choices: [completions, chat]
    default: completions
  model:
    description:
      - Model to ask. Defaults to the first model C(/v1/models) lists.
    type: str
  prompt:
    description:
      - Prompt of a completion. With O(api=chat) and no O(messages), it is sent as one user message.
      - Defaults to V(How are you today?).
    type: str
  messages:
    description:
      - Chat messages (C(role), C(content)) for O(api=chat).
    type: list
    elements: dict
  max_tokens:
    description:
      - Most tokens to generate, sent as an integer. V(1) mimics a time-to-first-token test.
    type: int
    default: 16
  seed:
    description:
      - Sampling seed, sent as an integer so that each request is unique to the model server's cache.
      - V(auto) makes a fresh random seed for each request. Unset sends no seed.
    type: raw
  temperature:
    description:
      - Sampling temperature.
    type: float
  extra_body:
    description:
      - More fields of the request body, merged over the ones above; a V(null) value removes a field
        (for example C(stream_options), which streaming requests carry by default).
    type: dict
    default: {}
  stream:
    description:
      - Ask for a streamed answer (server-sent events) and time its tokens.
    type: bool
    default: false
  expect_status:
    description:
      - HTTP statuses that count as success, for example V([404]) to check that an unknown model is refused.
    type: list
    elements: int
    default: [200]
  assert:
    description:
      - JMESPath expressions that must hold (give a value other than V(false), V(null) or empty) on the result
        of this module, for example V(finish_reason == 'length'), V(usage.completion_tokens == `1`) or
        V(timings.ttft_ms < `500`).
    type: list
    elements: str
    default: []
requirements:
  - requests
  - jmespath (for O(assert))
  - kubernetes (for O(transport=api_proxy))
notes:
  - Tokens are timed per streamed event as it arrives; vLLM sends one token per event.
  - Through O(transport=api_proxy) only C(timings.total_ms) and C(timings.first_byte_ms) are given, with
    C(timings.coarse=true), since the API server's proxy adds a hop and may relay a stream in 200 ms batches.
seealso:
  - module: llmd.verify.models_info
"""

EXAMPLES = r"""
- name: One token, unique seed, like the seed's TTFT trick
  llmd.verify.inference_check:
    endpoint: http://127.0.0.1:8000
    max_tokens: 1
    seed: auto
    assert:
      - finish_reason == 'length'

- name: Stream a chat answer and time it
  llmd.verify.inference_check:
    endpoint: "{{ gateway.endpoint }}"
    api: chat
    messages:
      - role: user
        content: Say hello
    max_tokens: 32
    stream: true
    assert:
      - timings.ttft_ms < `2000`
  register: chat

- name: An unknown model must be refused with 404
  llmd.verify.inference_check:
    endpoint: http://127.0.0.1:8000
    model: no-such-model
    expect_status: [404]

- name: Check one decode pod through the Kubernetes API server
  llmd.verify.inference_check:
    transport: api_proxy
    namespace: llm-d
    pod: ms-pd-llm-d-modelservice-decode-7c9f8d-abcde
    port: "8000"
"""

RETURN = r"""
status:
  description: HTTP status of the answer.
  returned: when an answer came
  type: int
  sample: 200
api:
  description: The API called.
  returned: when an answer came
  type: str
  sample: completions
model:
  description: The model asked.
  returned: when an answer came
  type: str
  sample: random
shape:
  description: >-
    V(current) for the API's own response shape, V(legacy) for a completion answered in the chat shape,
    V(invalid) otherwise.
  returned: when the answer was 200
  type: str
  sample: current
text:
  description: The generated text (assembled from the stream when streaming).
  returned: when the answer was 200
  type: str
finish_reason:
  description: Why generation stopped (V(stop), V(length), ...).
  returned: when the answer was 200
  type: str
  sample: length
usage:
  description: Token counts the server reported (C(prompt_tokens), C(completion_tokens), C(total_tokens)).
  returned: when the server sent them
  type: dict
timings:
  description:
    - Times in milliseconds from just before the request was sent, on a monotonic clock (C(time.perf_counter)).
    - C(first_byte_ms) (response headers in), C(ttft_ms) (first token), C(itl_mean_ms), C(itl_p50_ms),
      C(itl_p99_ms) (between streamed tokens), C(total_ms), C(tokens), C(tokens_per_second) (tokens over the
      total time), C(coarse) (true through the API server proxy, where C(ttft_ms) and C(itl_*) are null) and
      C(note).
    - Without O(stream), C(ttft_ms) and C(itl_*) are null.
  returned: when an answer came
  type: dict
  sample: {"first_byte_ms": 1.2, "ttft_ms": 52.4, "itl_mean_ms": 10.1, "itl_p50_ms": 10.0, "itl_p99_ms": 11.3,
           "total_ms": 204.9, "tokens": 16, "tokens_per_second": 78.1, "coarse": false}
routing:
  description:
    - The response headers that tell where the request went (C(x-inference-pod), C(x-inference-namespace),
      C(x-inference-port), C(x-gateway-destination-endpoint)), when something on the way sends them.
    - Often empty, and that is normal; no check fails on it. Real vLLM sends none of them, the llm-d inference
      simulator sends C(x-inference-pod) and C(x-inference-port) only when C(POD_NAME) is set (and
      C(x-inference-namespace) with C(POD_NAMESPACE)), and the routing sidecar does not add them. Where the
      request went is then told by the EPP's or gateway's response headers if they add any, or not at all (the
      EPP's logs and the pods' metrics, M(llmd.verify.metrics_info), still tell).
  returned: when an answer came
  type: dict
  sample: {"x-inference-pod": "decode-0", "x-gateway-destination-endpoint": "10.0.0.12:8000", "x-request-id": "a1b2"}
headers:
  description: All response headers, names in lower case.
  returned: when an answer came
  type: dict
response:
  description: The JSON answer (not for streams).
  returned: when the answer was 200 and JSON
  type: dict
events:
  description: Number of server-sent events received.
  returned: when streaming
  type: int
request:
  description: The path and body sent (with the seed actually used).
  returned: when an answer came
  type: dict
  sample: {"path": "/v1/completions", "body": {"model": "random", "prompt": "How are you today?", "max_tokens": 1, "seed": 1234}}
target:
  description: Where the request was sent.
  returned: when an answer came
  type: str
transport:
  description: The transport used.
  returned: when an answer came
  type: str
error:
  description: The server's error (C(status), C(message), C(type), C(code), C(param); C(body) when it was not JSON).
  returned: when the answer was not 200
  type: dict
  sample: {"status": 404, "message": "The model `nope` does not exist.", "type": "NotFoundError", "code": 404, "param": null}
problems:
  description: What is wrong with a 200 answer (shape, malformed events, truncated stream).
  returned: failure on the answer's content
  type: list
  elements: str
failed_assertions:
  description: The O(assert) expressions that did not hold, with the value each gave.
  returned: failure on O(assert)
  type: list
  elements: str
phase:
  description: The phase that failed when no complete answer came (V(connect), V(first byte), V(stream)).
  returned: failure without a complete answer
  type: str
"""

from ansible_collections.llmd.verify.plugins.module_utils._module import http_module, run_module
from ansible_collections.llmd.verify.plugins.module_utils._openai import check_inference


DEFINITION = http_module(dict(
    api=dict(type="str", default="completions", choices=["completions", "chat"]),
    model=dict(type="str"),
    prompt=dict(type="str"),
    messages=dict(type="list", elements="dict"),
    max_tokens=dict(type="int", default=16, no_log=False),
    seed=dict(type="raw"),
    temperature=dict(type="float"),
    extra_body=dict(type="dict", default={}),
    stream=dict(type="bool", default=False),
    expect_status=dict(type="list", elements="int", default=[200]),
    # "assert" is only a dict key here, as in ansible.builtin.assert's "that".
    **{"assert": dict(type="list", elements="str", default=[])}
), check_inference, mutually_exclusive=[("prompt", "messages")])


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
