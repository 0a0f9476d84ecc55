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
  - Runs, in one process, the checks the M(llmd.verify.verify) role makes of an endpoint and returns one check
    record for each (RV(checks)), in the order of O(checks)' choices, as M(llmd.verify.verify_report) reads them.
  - V(models) lists the served models and waits until the endpoint is ready, as M(llmd.verify.models_info)
    does; V(completions) and V(chat) send one request each and V(stream) one streamed completion, timed, as
    M(llmd.verify.inference_check) does. Each request carries a fresh random seed. V(completions) and V(chat)
    are sent while V(stream) streams (O(overlap)).
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
      - The checks to run. V(models) goes first (the others ask the model it lists); the records come in this
        order whatever the order given.
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
  overlap:
    description:
      - Send the V(completions) and V(chat) checks while the V(stream) check's answer streams, once its first
        token is in. Its time to first token is measured with no other request of these checks in flight, and
        the checks take about one answer's time instead of one answer's time each.
      - The other answers then share the model server with the stream, as a client's requests do. V(false) sends
        one request at a time, as the seed's procedure does (to measure the stream's inter-token latency alone).
      - Without V(stream), V(completions) and V(chat) are sent together. Without a model to ask (no O(model)
        and no V(models) check), requests are sent one at a time, the first answer naming the model.
    type: bool
    default: true
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

from concurrent.futures import ThreadPoolExecutor

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
    """Every check asked for; the records (in CHECKS' order), the models and the TTFT."""
    wanted = [name for name in CHECKS if name in params["checks"]]
    records, models, model = [], [], params.get("model")
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
    sends = [name for name in wanted if name != "models"]
    if model is None and unlisted is not None:
        # Asking /v1/models again for each check would only wait for the same failure three times more.
        outcomes = dict((name, (inference_record(name, None, LlmdError(
            "not sent: no model to ask, since the models check failed (%s)" % unlisted.msg, **unlisted.details)),
            None)) for name in sends)
    elif params["overlap"] and model is not None:
        outcomes = overlapped(lambda name, hook=None: send(transport, name, model, params, hook), sends)
    else:
        outcomes = {}
        for name in sends:
            outcomes[name] = send(transport, name, model, params)
            model = model or (outcomes[name][1] or {}).get("model")  # the first answer's, when none was listed
    records.extend(outcomes[name][0] for name in sends)
    stream = outcomes.get("stream", (None, None))[1] or {}
    records = [excused(check) if check["name"] in params["optional_checks"] else check for check in records]
    result = {"checks": records, "models": models, "model": model,
              "ttft_ms": (stream.get("timings") or {}).get("ttft_ms")}
    failed = [check for check in records if check["status"] == "failed"]
    if failed:
        raise LlmdError("%d of %d inference checks failed: %s" % (
            len(failed), len(records), "; ".join("%s: %s" % (c["name"], c["message"]) for c in failed)), **result)
    return result


def send(transport, name, model, params, on_first_token=None):
    """One inference check's request: its record and its result (None when it failed)."""
    try:
        result = check_inference(transport, request_params(name, model, params), on_first_token)
    except LlmdError as error:
        return inference_record(name, None, error), None
    return inference_record(name, result), result


def overlapped(send_one, names):
    """Each name's send_one(name), the others sent once the stream check's first token is in (or once it ended
    without one): its TTFT is measured with no other request of the checks in flight, and the checks take about
    one answer's time instead of one each."""
    others = [name for name in names if name != "stream"]
    with ThreadPoolExecutor(max_workers=max(1, len(others)), thread_name_prefix="check") as pool:
        futures = {}

        def start_others():
            if not futures:
                futures.update((name, pool.submit(send_one, name)) for name in others)

        outcomes = {}
        try:
            if "stream" in names:
                outcomes["stream"] = send_one("stream", start_others)
        finally:
            start_others()
        outcomes.update((name, future.result()) for name, future in futures.items())
    return outcomes


DEFINITION = http_module(dict(
    checks=dict(type="list", elements="str", choices=list(CHECKS), default=list(CHECKS)),
    optional_checks=dict(type="list", elements="str", default=[]),
    model=dict(type="str"),
    prompt=dict(type="str", default="How are you today?"),
    max_tokens=dict(type="int", default=16, no_log=False),
    wait_timeout=dict(type="float", default=60),
    expected_models=dict(type="list", elements="str", default=[]),
    overlap=dict(type="bool", default=True),
), run_checks)


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
