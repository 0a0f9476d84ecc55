#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: models_info
short_description: List the models an llm-d endpoint serves, waiting until it is ready
version_added: 0.1.0
description:
  - Sends C(GET /v1/models) to an OpenAI-compatible endpoint (an llm-d gateway, a standalone EPP, a model server).
  - Waits until the endpoint is ready. The answers of the real stack while no model server is Ready mean
    "not ready yet", and the request is retried with backoff (0.5 s doubling up to 5 s) until O(wait_timeout).
    They are the EPP's HTTP 500 that ends in C(no pods available in datastore) (its answer to
    a C(GET)), C(failed to find endpoint candidates) (to a C(POST); C(failed to find candidate pods) in older
    builds) and an older EPP's C(InferencePoolResourceExhausted); Envoy's 503 C(no healthy upstream) and
    C(upstream connect error) (a pod counted Ready whose server does not listen yet); the routing-proxy
    sidecar's 503 C(The decode node is not ready) or 502 with an empty body; the API server proxy's 503
    C(no endpoints available for service) or a pod port refusing; a refused connection (a gateway or
    port-forward not up, a LoadBalancer or NodePort Service with no endpoints); any
    other HTTP 502, 503 and 504; a 404 that is not an API error (a route not programmed yet).
  - When the wait ends, the failure names the last of these answers (RV(not_ready)) and what it means
    (RV(meaning)).
  - Any other failure ends the wait at once, among them an HTTP 500 without one of those messages, and an
    error of the Kubernetes API server about the request itself (a port the Service does not have, C(no service
    port ... found)).
  - Returns the model ids, the raw model entries, the number of attempts and the time spent.
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.http_client
  - llmd.verify.http_client.api_proxy
  - llmd.verify.attributes
  - llmd.verify.attributes.in_controller
  - llmd.verify.attributes.info_module
options:
  wait_timeout:
    description:
      - Seconds to keep retrying while the endpoint is not ready yet. V(0) tries once.
    type: float
    default: 60
  expected_models:
    description:
      - Model ids (or LoRA adapter names) that must be served. The module fails, listing what is served
        instead, when one is missing.
    type: list
    elements: str
    default: []
requirements:
  - requests
  - kubernetes (for O(transport=api_proxy))
notes:
  - On llm-d's wide expert-parallelism guide C(/v1/models) answers as soon as one instance is up, so it proves
    little there; follow it with M(llmd.verify.inference_check).
seealso:
  - module: llmd.verify.inference_check
  - module: llmd.verify.gateway_endpoint_info
"""

EXAMPLES = r"""
- name: Wait up to 5 minutes for the gateway to serve the model
  llmd.verify.models_info:
    endpoint: http://127.0.0.1:8000
    wait_timeout: 300
    expected_models: [Qwen/Qwen3-0.6B]
  register: models

- name: Ask a standalone EPP through the Kubernetes API server, with no port-forward
  llmd.verify.models_info:
    transport: api_proxy
    namespace: llm-d
    service: optimized-baseline-epp
    port: "80"

- name: An Ingress host with no DNS record yet
  llmd.verify.models_info:
    endpoint: https://llm.example.com
    resolve:
      llm.example.com: 203.0.113.7
    ca_path: /etc/pki/llm-ca.pem
"""

RETURN = r"""
ids:
  description: The served model ids, in the server's order (base models and LoRA adapters).
  returned: success
  type: list
  elements: str
  sample: [random, my-lora]
data:
  description: The C(data) entries of the answer as the server sent them.
  returned: success
  type: list
  elements: dict
  sample: [{"id": "random", "object": "model", "owned_by": "vllm", "root": "random", "parent": null}]
attempts:
  description: Requests sent, including the one that answered.
  returned: always
  type: int
  sample: 3
elapsed:
  description: Seconds from the first attempt to the answer (or to the failure).
  returned: always
  type: float
  sample: 2.51
waited_for:
  description: The "not ready yet" answers met while waiting, in order, without repeats.
  returned: always
  type: list
  elements: str
  sample: ["connection refused", "no pods available in datastore"]
status:
  description: HTTP status of the last answer.
  returned: when an answer came
  type: int
  sample: 200
headers:
  description:
    - Response headers that tell where the request went (C(x-inference-pod), C(x-gateway-destination-endpoint), ...).
    - Often empty, which is normal (real vLLM sends none of them); nothing fails on it.
  returned: success
  type: dict
error:
  description: The server's error (C(status), C(message), C(type), C(code), C(param); C(body) when it was not JSON).
  returned: failure with an HTTP answer
  type: dict
  sample: {"status": 503, "message": "no healthy upstream", "type": null, "code": null, "param": null, "body": "no healthy upstream"}
not_ready:
  description: Why the endpoint was still not ready when the wait ended (the last "not ready yet" answer).
  returned: failure after waiting
  type: str
  sample: no pods available in datastore
meaning:
  description: What RV(not_ready) means.
  returned: failure after waiting
  type: str
  sample: "the EPP (endpoint picker) has no Ready model server pod in its datastore: the pods are not Ready yet,
    or the InferencePool selects none"
phase:
  description: The phase that failed when no HTTP answer came (V(connect), V(first byte), V(stream)).
  returned: failure without an HTTP answer
  type: str
missing:
  description: The O(expected_models) not served.
  returned: failure on O(expected_models)
  type: list
  elements: str
"""

from ansible_collections.llmd.verify.plugins.module_utils._module import http_module, run_module
from ansible_collections.llmd.verify.plugins.module_utils._openai import wait_for_models


DEFINITION = http_module(
    dict(wait_timeout=dict(type="float", default=60), expected_models=dict(type="list", elements="str", default=[])),
    lambda transport, params: wait_for_models(transport, params["wait_timeout"], params["expected_models"]))


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
