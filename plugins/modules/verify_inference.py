#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: verify_inference
short_description: Run the inference checks of a verification against one llm-d endpoint
version_added: 0.1.0
description:
  - Runs, in one process and in this order, the checks the M(llmd.verify.verify) role makes of an endpoint
    and returns one check record for each (RV(checks)), as M(llmd.verify.verify_report) reads them.
  - V(models) lists the served models and waits until the endpoint is ready, as M(llmd.verify.models_info)
    does; V(completions) and V(chat) send one request each and V(stream) one streamed completion, timed, as
    M(llmd.verify.inference_check) does. Each request carries a fresh random seed.
  - A failed check does not stop the next ones. The module fails when a check it was not told is optional
    (O(optional_checks)) failed; an optional check that fails is recorded as skipped.
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.http_client
  - llmd.verify.http_client.api_proxy
  - llmd.verify.attributes
  - llmd.verify.attributes.in_controller
  - llmd.verify.attributes.info_module
options:
  checks:
    description:
      - The checks to run, in this order whatever the order given.
    type: list
    elements: str
    choices: [models, completions, chat, stream]
    default: [models, completions, chat, stream]
  optional_checks:
    description:
      - Checks that may fail without failing the verification (a guide whose model server does not serve
        an API yet); their failure is recorded as V(skipped).
    type: list
    elements: str
    default: []
  model:
    description:
      - Model to ask. Defaults to the first model C(/v1/models) lists.
    type: str
  prompt:
    description:
      - Prompt of the completions and of the chat's one user message.
    type: str
    default: How are you today?
  max_tokens:
    description:
      - Most tokens to generate in each request.
    type: int
    default: 16
  wait_timeout:
    description:
      - Seconds the V(models) check keeps retrying while the endpoint is not ready yet. V(0) tries once.
    type: float
    default: 60
  expected_models:
    description:
      - Model ids (or LoRA adapter names) the V(models) check requires.
    type: list
    elements: str
    default: []
requirements:
  - requests
  - kubernetes (for O(transport=api_proxy))
seealso:
  - module: llmd.verify.models_info
  - module: llmd.verify.inference_check
  - module: llmd.verify.verify_report
"""

EXAMPLES = r"""
- name: Check an endpoint the way the verify role does
  llmd.verify.verify_inference:
    endpoint: http://127.0.0.1:8000
  register: inference

- name: Only the models and one streamed completion, through the API server proxy
  llmd.verify.verify_inference:
    transport: api_proxy
    namespace: llm-d
    service: optimized-baseline-epp
    checks: [models, stream]
"""

RETURN = r"""
checks:
  description:
    - One record per check run (C(name), C(status) V(passed), V(failed) or V(skipped), C(time) in seconds,
      C(message), C(cause), C(details)); C(details) holds what M(llmd.verify.models_info) or
      M(llmd.verify.inference_check) return, or their failure.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: models, status: passed, time: 0.011, message: "Qwen/Qwen3-0.6B after 1 attempt(s)", cause: "", details: {}}
    - {name: stream, status: passed, time: 0.52, message: "TTFT 217.0 ms, ITL p50 20.4 ms, 30.4 tokens/s, finish_reason length",
       cause: "", details: {}}
models:
  description: The model ids C(/v1/models) listed.
  returned: always
  type: list
  elements: str
  sample: [Qwen/Qwen3-0.6B]
model:
  description: The model the requests asked for.
  returned: when a request was sent
  type: str
ttft_ms:
  description: Time to first token of the V(stream) check, in milliseconds; null without it or through the API server proxy.
  returned: always
  type: float
"""

from ansible_collections.llmd.verify.plugins.module_utils._checks import excused, inference_record, models_check
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._module import http_module, run_module
from ansible_collections.llmd.verify.plugins.module_utils._openai import check_inference, wait_for_models

CHECKS = ("models", "completions", "chat", "stream")
# The request of each inference check: the API and whether it streams.
REQUESTS = {"completions": ("completions", False), "chat": ("chat", False), "stream": ("completions", True)}


def request_params(name, model, params):
    api, stream = REQUESTS[name]
    prompt = params["prompt"]
    return {"api": api, "model": model, "stream": stream, "max_tokens": params["max_tokens"], "seed": "auto",
            "prompt": prompt if api == "completions" else None,
            "messages": [{"role": "user", "content": prompt}] if api == "chat" else None}


def run_checks(transport, params):
    """Every check asked for, in CHECKS' order; the records, the models and the TTFT."""
    wanted = [name for name in CHECKS if name in params["checks"]]
    records, models, model, ttft_ms = [], [], params.get("model"), None
    unlisted = None  # why no model is known, when /v1/models failed and none was given
    if "models" in wanted:
        try:
            listed = wait_for_models(transport, params["wait_timeout"], params["expected_models"])
        except LlmdError as error:
            records.append(models_check(None, error))
            models = list(error.details.get("ids") or [])  # listed, but an expected model was missing
            unlisted = error
        else:
            models = listed["ids"]
            records.append(models_check(listed))
    model = model or (models[0] if models else None)
    for name in wanted[1:] if "models" in wanted else wanted:
        if model is None and unlisted is not None:
            # Asking /v1/models again for each check would only wait for the same failure three times more.
            records.append(inference_record(name, None, LlmdError(
                "not sent: no model to ask, since the models check failed (%s)" % unlisted.msg, **unlisted.details)))
            continue
        try:
            result = check_inference(transport, request_params(name, model, params))
        except LlmdError as error:
            records.append(inference_record(name, None, error))
            continue
        model = model or result.get("model")
        records.append(inference_record(name, result))
        if name == "stream":
            ttft_ms = (result.get("timings") or {}).get("ttft_ms")
    records = [excused(check) if check["name"] in params["optional_checks"] else check for check in records]
    result = {"checks": records, "models": models, "model": model, "ttft_ms": ttft_ms}
    failed = [check for check in records if check["status"] == "failed"]
    if failed:
        raise LlmdError("%d of %d inference checks failed: %s" % (
            len(failed), len(records), "; ".join("%s: %s" % (c["name"], c["message"]) for c in failed)), **result)
    return result


DEFINITION = http_module(dict(
    checks=dict(type="list", elements="str", choices=list(CHECKS), default=list(CHECKS)),
    optional_checks=dict(type="list", elements="str", default=[]),
    model=dict(type="str"),
    prompt=dict(type="str", default="How are you today?"),
    max_tokens=dict(type="int", default=16, no_log=False),
    wait_timeout=dict(type="float", default=60),
    expected_models=dict(type="list", elements="str", default=[]),
), run_checks)


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
