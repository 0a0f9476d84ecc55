# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OpenAI-compatible API of vLLM and llm-d: read responses, errors and streams, and run the checks.

Parsing never raises, whatever the server sends (malformed JSON, truncated streams, missing fields):
it returns what it understood and the problems it met. The checks (list_models, wait_for_models,
check_inference) raise LlmdError when the answer is wrong, with the status and the server's message.
Transports (module_utils._http.HttpTransport, module_utils._api_proxy.ApiProxyTransport) send the requests;
module_utils._http reads the bodies and error records that every HTTP reader shares.
"""

from __future__ import annotations

import json
import math
import secrets
import time
import traceback

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError, listed
from ansible_collections.llmd.verify.plugins.module_utils._http import (
    TransportError,
    as_text,
    decode_json,
    describe_error,
    excerpt,
    http_error,
)
from ansible_collections.llmd.verify.plugins.module_utils._k8s_status import (
    kubernetes_hint,
    proxy_not_ready,
    proxy_request_error,
    status_object,
)

try:
    import jmespath
    import jmespath.exceptions
except ImportError:
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None

PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
OBJECTS = {"completions": "text_completion", "chat": "chat.completion"}
# Headers that tell where a request went (gateway, EPP, simulator, model server).
ROUTING_HEADERS = ("x-inference-pod", "x-inference-namespace", "x-inference-port", "x-gateway-destination-endpoint",
                   "x-request-id")
# The "not ready yet" answers of the real stack when no model server is Ready (FACTS.md section 4): a marker
# found in the body (lower case), the reason reported, and what it means. Most specific first.
NOT_READY_MARKERS = (
    ("no pods available in datastore", "no pods available in datastore",
     "the EPP (endpoint picker) has no Ready model server pod in its datastore: the pods are not Ready yet, or "
     "the InferencePool selects none"),
    ("failed to find endpoint candidates", "failed to find endpoint candidates",
     "the EPP found no candidate pod for the request: no model server pod is Ready yet, or none passes its filters"),
    ("failed to find candidate pods", "failed to find candidate pods",
     "the EPP found no candidate pod for the request: no model server pod is Ready yet, or none passes its filters"),
    ("inferencepoolresourceexhausted", "InferencePoolResourceExhausted",
     "the EPP of an older inference extension found no model server pod with room: none is Ready yet, or the "
     "pool is saturated"),
    ("no healthy upstream", "no healthy upstream",
     "Envoy (the gateway, or the standalone EPP's sidecar) has no healthy upstream: no Ready pod behind it"),
    ("decode node is not ready", "decode node is not ready",
     "the routing-proxy sidecar of a decode pod cannot reach vLLM yet: vLLM is still starting, or has died"),
    ("no endpoints available for service", "no endpoints available for service",
     "the Kubernetes API server proxy found no Ready endpoint of the Service: no Ready pod behind it"),
    ("no endpoints", "no endpoints", "the proxy on the way found no Ready endpoint: no Ready pod behind it"),
    ("upstream connect error", "upstream connect error",
     "Envoy could not connect to the model server pod it picked: nothing listens on its port yet (the model server "
     "is starting, or died while its pod still counts as Ready)"),
)
NOT_READY_BODIES = tuple(label for _marker, label, _meaning in NOT_READY_MARKERS)
NOT_READY_MEANINGS = dict((label, meaning) for _marker, label, meaning in NOT_READY_MARKERS)
NOT_READY_MEANINGS.update({
    "connection refused": "nothing listens at the address yet: a gateway or port-forward that is not up, or a "
                          "LoadBalancer or NodePort Service with no Ready endpoint (kube-proxy rejects the connection)",
    "connection refused (through the API server proxy)": "the API server reached the pod, but nothing listens on "
                                                         "its port yet: the model server is still starting",
    "HTTP 502 with an empty body": "the routing-proxy sidecar of a decode pod cannot reach vLLM yet (older sidecars "
                                   "answer so): vLLM is still starting, or has died",
    "HTTP 404 with no API error (route not programmed yet?)": "the gateway answers but no route takes the path yet: "
                                                              "the HTTPRoute is missing or not programmed yet",
})
COARSE_NOTE = ("sent through the Kubernetes API server proxy, which adds a hop and may relay a stream in 200 ms "
               "batches: only the total time is meaningful; measure TTFT and inter-token latency with transport=direct")


# ---- parsing: never raises ---------------------------------------------------------------------

def _get(obj, *keys):
    """obj[k1][k2]... or None when any step is missing or of the wrong type."""
    for key in keys:
        if isinstance(key, int):
            if not isinstance(obj, list) or not -len(obj) <= key < len(obj):
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[key] if isinstance(key, int) else obj.get(key)
    return obj


def not_ready_reason(status, data):
    """Why an answer means "not ready yet" (gateway up, backends not), or None if it is a real answer.

    A Kubernetes Status (the API server proxy's own answer) is not ready only when it says there is no
    endpoint or the pod refused; one about the request itself (a port the Service does not have) never is.
    A 500 is not ready only with one of the stack's markers.
    """
    status_obj = status_object(data) if data else None
    if status_obj is not None:
        if proxy_request_error(status_obj):
            return None
        reason = proxy_not_ready(status_obj)
        if reason:
            return reason
        return "HTTP %s" % status if status in (502, 503, 504) else None
    text = excerpt(data or b"").lower()
    for marker, label, _meaning in NOT_READY_MARKERS:
        if marker in text:
            return label
    if status == 502 and not text.strip():
        return "HTTP 502 with an empty body"
    if status in (502, 503, 504):
        return "HTTP %s" % status
    # A gateway whose route is not programmed yet answers 404 with no OpenAI error; a Kubernetes
    # Status 404 (no such Service or Pod) and a model server's own 404 are real answers.
    if status == 404:
        obj, _problem = decode_json(data) if data else (None, None)
        if not isinstance(obj, dict):
            return "HTTP 404 with no API error (route not programmed yet?)"
    return None


def not_ready_meaning(reason):
    """What a reason of not_ready_reason (or "connection refused") means, in a sentence."""
    return NOT_READY_MEANINGS.get(reason) or (
        "a proxy on the way (gateway, sidecar or API server) answered %s: the model server behind it does not answer "
        "yet" % reason)


def models_from(obj):
    """(ids, data, problems) of a /v1/models answer."""
    data = _get(obj, "data")
    if not isinstance(data, list):
        return [], [], ["the answer has no data list"]
    ids, problems = [], []
    for index, entry in enumerate(data):
        model_id = _get(entry, "id")
        if isinstance(model_id, str):
            ids.append(model_id)
        else:
            problems.append("data[%d] has no id" % index)
    return ids, data, problems


def completion_from(obj, api):
    """Read a non-streamed completions or chat answer.

    Returns {shape, text, finish_reason, usage, problems}. shape is "current" for the API's own shape,
    "legacy" for a completion answered in the chat shape (old simulators, as in llm-d's docs), or
    "invalid"; problems lists what is wrong.
    """
    result = {"shape": "invalid", "text": None, "finish_reason": None, "usage": None, "problems": []}
    if not isinstance(obj, dict):
        result["problems"].append("the answer is not a JSON object")
        return result
    choice = _get(obj, "choices", 0)
    if not isinstance(choice, dict):
        result["problems"].append("the answer has no choices")
        return result
    text, message = _get(choice, "text"), as_text(_get(choice, "message", "content"))
    if api == "completions" and isinstance(text, str):
        result["shape"], result["text"] = "current", text
    elif message is not None or isinstance(_get(choice, "message"), dict):
        result["shape"] = "current" if api == "chat" else "legacy"
        result["text"] = message or ""
    else:
        result["problems"].append("choices[0] has neither text nor message.content")
    result["finish_reason"] = as_text(choice.get("finish_reason"))
    usage = obj.get("usage")
    result["usage"] = usage if isinstance(usage, dict) else None
    expected = OBJECTS[api]
    if obj.get("object") not in (None, expected) and result["shape"] == "current":
        result["problems"].append("object is %s, expected %r" % (excerpt(repr(obj.get("object")))[:100], expected))
    return result


class SSEParser:
    """Server-sent events, fed bytes as they arrive; yields (arrival time, data) per complete event.

    Follows the HTML event-stream rules that matter here: lines end in CRLF, LF or CR; "data:" lines of
    an event are joined with newlines; a blank line ends the event; comments and other fields are ignored.
    """

    def __init__(self):
        self._buffer = b""
        self._data = []

    def feed(self, at, chunk):
        self._buffer += chunk
        events = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return events
            line, self._buffer = self._buffer[:cut[0]], self._buffer[cut[1]:]
            line = line.decode("utf-8", errors="replace")
            if not line:
                if self._data:
                    events.append((at, "\n".join(self._data)))
                    self._data = []
            elif line.startswith("data"):
                field, _sep, value = line.partition(":")
                if field == "data":
                    self._data.append(value[1:] if value.startswith(" ") else value)

    def pending(self):
        """Whether an event was started but not ended (a truncated stream)."""
        return bool(self._data or self._buffer.strip())


def _line_end(buffer):
    """(end of line, start of next line) of the first complete line, or None."""
    for index, byte in enumerate(buffer):
        if byte == 0x0A:
            return index, index + 1
        if byte == 0x0D:
            if index + 1 == len(buffer):
                return None  # a CR at the end may be the first half of CRLF
            return index, index + (2 if buffer[index + 1] == 0x0A else 1)
    return None


class StreamAssembler:
    """Puts a streamed completions or chat answer back together, with the arrival time of each token."""

    def __init__(self, api):
        self.api = api
        self.parser = SSEParser()
        self.pieces = []
        self.token_times = []
        self.finish_reason = None
        self.usage = None
        self.events = 0
        self.done = False
        self.shape = None
        self.error = None
        self.problems = []
        self.last_at = None

    def feed(self, at, chunk):
        self.last_at = at
        for event_at, data in self.parser.feed(at, chunk):
            self._event(event_at, data)

    def _event(self, at, data):
        if data.strip() == "[DONE]":
            self.done = True
            return
        self.events += 1
        obj, problem = decode_json(data)
        if not isinstance(obj, dict):
            self.problems.append("event %d is %s" % (self.events, problem or "not a JSON object"))
            return
        if obj.get("error") is not None or obj.get("object") == "error":
            self.error = http_error(None, data.encode("utf-8"))
            return
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        choice = _get(obj, "choices", 0)
        if not isinstance(choice, dict):
            return  # the usage-only chunk at the end has no choices
        text, delta = _get(choice, "text"), as_text(_get(choice, "delta", "content"))
        if isinstance(text, str):
            shape = "current" if self.api == "completions" else "legacy"
        elif delta is not None or isinstance(_get(choice, "delta"), dict):
            text, shape = delta or "", ("current" if self.api == "chat" else "legacy")
        else:
            self.problems.append("event %d: choices[0] has neither text nor delta" % self.events)
            return
        self.shape = self.shape or shape
        if text:
            self.pieces.append(text)
            self.token_times.append(at)
        if as_text(choice.get("finish_reason")):
            self.finish_reason = choice["finish_reason"]

    def finish(self, truncated=None):
        """The problems of the whole stream, once it has ended."""
        problems = list(self.problems)
        if not self.done:
            problems.append(truncated or "the stream ended without data: [DONE]")
        elif self.parser.pending():
            problems.append("bytes after the last complete event")
        if self.events == 0 and self.error is None:
            problems.append("the stream carried no events")
        return problems

    @property
    def text(self):
        return "".join(self.pieces)


def percentile(values, pct):
    """Nearest-rank percentile of values (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100.0 * len(ordered)) - 1)]


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000.0, 3)


def stream_timings(started, headers_at, token_times, ended, tokens):
    """TTFT, inter-token latency (mean, p50, p99), total and tokens/s of a stream, in ms on perf_counter."""
    gaps = [later - earlier for earlier, later in zip(token_times, token_times[1:])]
    total = (ended - started) if ended is not None else None
    return {
        "first_byte_ms": _ms(headers_at - started),
        "ttft_ms": _ms(token_times[0] - started) if token_times else None,
        "itl_mean_ms": _ms(sum(gaps) / len(gaps)) if gaps else None,
        "itl_p50_ms": _ms(percentile(gaps, 50)),
        "itl_p99_ms": _ms(percentile(gaps, 99)),
        "total_ms": _ms(total),
        "tokens": tokens,
        "tokens_per_second": round(tokens / total, 3) if tokens and total else None,
    }


# ---- the checks ------------------------------------------------------------------------------

def _read_response(response):
    try:
        return response.read()
    finally:
        response.close()


def list_models(transport):
    """One GET /v1/models: {status, ids, data}. Raises TransportError, or LlmdError with not_ready set."""
    response = transport.request("GET", "/v1/models")
    data = _read_response(response)
    if response.status != 200:
        error = http_error(response.status, data)
        raise LlmdError("%s: %s" % (response.target, describe_error(error)), hint=kubernetes_hint(response.status, data),
                        status=response.status, error=error, not_ready=not_ready_reason(response.status, data))
    obj, problem = decode_json(data)
    if problem:
        raise LlmdError("%s: HTTP 200 but the body is %s" % (response.target, problem), status=200, body=excerpt(data),
                        hint="something other than the model server answered (a proxy's page?)")
    ids, entries, problems = models_from(obj)
    if problems or not ids:
        raise LlmdError("%s: the models list is malformed: %s" % (response.target, listed(problems) or "no models"),
                        status=200, body=excerpt(data))
    return {"status": 200, "ids": ids, "data": entries, "headers": _routing(response.headers)}


def wait_for_models(transport, wait_timeout, expected_models=None, sleep=time.sleep, clock=time.monotonic):
    """GET /v1/models until it answers, treating "not ready yet" answers as such until wait_timeout.

    Backs off from 0.5 s to 5 s between attempts. Returns {ids, data, attempts, elapsed, waited_for}.
    """
    started = clock()
    deadline = started + max(0.0, wait_timeout)
    delay, attempts, waited_for = 0.5, 0, []
    while True:
        attempts += 1
        result, failure, reason = _attempt(transport)
        if failure is None:
            break
        if not reason:
            failure.details.update(attempts=attempts, elapsed=round(clock() - started, 3))
            raise failure
        if not waited_for or waited_for[-1] != reason:
            waited_for.append(reason)
        now = clock()
        if now + delay > deadline:
            failure.details.update(attempts=attempts, elapsed=round(now - started, 3), waited_for=waited_for, not_ready=reason,
                                   meaning=not_ready_meaning(reason))
            raise LlmdError("%s: not ready after %s s and %d attempts; the last answer (%s) was %s, which means %s"
                            % (transport.target, wait_timeout, attempts, reason, _answer(failure), not_ready_meaning(reason)),
                            hint=_not_ready_hint(reason), **failure.details)
        sleep(delay)
        delay = min(delay * 2, 5.0)
    result.update(attempts=attempts, elapsed=round(clock() - started, 3), waited_for=waited_for)
    missing = [model for model in expected_models or [] if model not in result["ids"]]
    if missing:
        raise LlmdError("%s: expected models not served: %s; served: %s"
                        % (transport.target, listed(missing, 20, ", "), listed(result["ids"], 20, ", ")),
                        hint="check the model server's --served-model-name and LoRA adapters", missing=missing, **result)
    return result


def _attempt(transport):
    """(result, None, None) on success, else (None, the error, why it means "not ready yet" or None)."""
    try:
        return list_models(transport), None, None
    except TransportError as err:
        return None, err, ("connection refused" if err.not_ready else None)
    except LlmdError as err:
        return None, err, err.details.get("not_ready")


def _answer(failure):
    """The last answer of a failed attempt, without the target (the message names it once)."""
    error = failure.details.get("error")
    return describe_error(error) if isinstance(error, dict) else failure.msg


def _not_ready_hint(reason):
    if reason == "connection refused":
        return "is the gateway Service, LoadBalancer or port-forward up, and does the Service have Ready endpoints?"
    if reason in ("decode node is not ready", "HTTP 502 with an empty body"):
        return "read the decode pods' vllm logs: wait for 'Application startup complete', or find why vLLM died"
    if reason.startswith("HTTP 404"):
        return "check the HTTPRoute: kubectl get httproute -o yaml (its parents' Accepted and ResolvedRefs conditions)"
    if reason in NOT_READY_MEANINGS or reason.startswith("connection refused"):
        return ("check the model server pods: kubectl get pods -l llm-d.ai/role=decode (Ready?), their vllm logs, and "
                "the InferencePool's selector; raise wait_timeout if they are still loading the model")
    return "check the model server pods and the routing-proxy sidecar; raise wait_timeout if they are still starting"


def _routing(headers):
    return {name: headers[name] for name in ROUTING_HEADERS if name in headers}


def resolve_seed(seed):
    """An integer seed: "auto" makes a fresh one per request, digit strings become integers."""
    if seed is None or isinstance(seed, bool):
        return None
    if isinstance(seed, int):
        return seed
    if isinstance(seed, str) and seed.strip() == "auto":
        return secrets.randbelow(2 ** 31 - 1) + 1
    if isinstance(seed, str) and seed.strip().lstrip("-").isdigit():
        return int(seed)
    raise LlmdError("seed must be an integer or auto, not %r" % (seed,))


def build_request(params, model):
    """(path, body) of the completions or chat request the options describe."""
    api = params["api"]
    body = {"model": model, "max_tokens": params["max_tokens"]}
    if api == "chat":
        body["messages"] = params.get("messages") or [{"role": "user", "content": params.get("prompt") or DEFAULT_PROMPT}]
    else:
        if params.get("messages"):
            raise LlmdError("messages are for api=chat", hint="give prompt for api=completions")
        body["prompt"] = params.get("prompt") or DEFAULT_PROMPT
    seed = resolve_seed(params.get("seed"))
    if seed is not None:
        body["seed"] = seed
    if params.get("temperature") is not None:
        body["temperature"] = params["temperature"]
    if params.get("stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    for key, value in (params.get("extra_body") or {}).items():
        if value is None:
            body.pop(key, None)  # extra_body can remove a default field with null
        else:
            body[key] = value
    return PATHS[api], body


DEFAULT_PROMPT = "How are you today?"


def check_inference(transport, params, on_first_token=None):
    """Send one completions or chat request and check its answer.

    params: api, model, prompt, messages, max_tokens, seed, temperature, extra_body, stream, expect_status and
    the JMESPath expressions of "assert". Returns the result; raises LlmdError with the partial result when
    the answer is not what was expected. on_first_token, when given, is called once, when a streamed answer's
    first token is in.
    """
    model = params.get("model") or _first_model(transport)
    path, body = build_request(params, model)
    response = transport.request("POST", path, body)
    result = {"api": params["api"], "model": model, "status": response.status, "transport": transport.kind,
              "target": response.target, "request": {"path": path, "body": body},
              "headers": dict(response.headers), "routing": _routing(response.headers)}
    try:
        if body.get("stream") and response.status == 200 and "text/event-stream" in response.headers.get("content-type", ""):
            problems = _read_stream(response, params["api"], result, on_first_token)
        else:
            problems = _read_whole(response, params["api"], result, body.get("stream"))
    finally:
        response.close()
    if transport.coarse_timing:
        result["timings"].update(ttft_ms=None, itl_mean_ms=None, itl_p50_ms=None, itl_p99_ms=None, coarse=True, note=COARSE_NOTE)
    else:
        result["timings"]["coarse"] = False
    _check_status(result, params.get("expect_status") or [200], result.pop("hint", None))
    if response.status == 200 and problems:
        raise LlmdError("%s: HTTP 200 but the answer is wrong: %s" % (result["target"], listed(problems)),
                        problems=problems, **result)
    failed = evaluate_assertions(params.get("assert") or [], result)
    if failed:
        raise LlmdError("%s: assertion failed: %s" % (result["target"], "; ".join(failed)), failed_assertions=failed, **result)
    return result


def _first_model(transport):
    try:
        return list_models(transport)["ids"][0]
    except LlmdError as err:
        raise LlmdError("no model given and the served models could not be listed: %s" % err.msg,
                        hint="set model, or wait for /v1/models with llmd.verify.models_info first", **err.details) from err


def _read_whole(response, api, result, streamed):
    data = response.read()
    ended = time.perf_counter()
    result["timings"] = {"first_byte_ms": _ms(response.headers_at - response.started), "ttft_ms": None,
                         "itl_mean_ms": None, "itl_p50_ms": None, "itl_p99_ms": None, "total_ms": _ms(ended - response.started)}
    if response.status != 200:
        result["error"] = http_error(response.status, data)
        reason = not_ready_reason(response.status, data)
        hint = kubernetes_hint(response.status, data) or (not_ready_meaning(reason) if reason else None)
        if hint:
            result["hint"] = hint
        return []
    obj, problem = decode_json(data)
    if problem:
        result["body"] = excerpt(data)
        return ["the body is %s" % problem]
    answer = completion_from(obj, api)
    result.update(response=obj, shape=answer["shape"], text=answer["text"], finish_reason=answer["finish_reason"],
                  usage=answer["usage"], stream=False)
    tokens = _get(answer["usage"], "completion_tokens")
    tokens = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
    total = ended - response.started
    result["timings"].update(tokens=tokens, tokens_per_second=round(tokens / total, 3) if tokens and total > 0 else None)
    problems = answer["problems"]
    if streamed:
        problems = problems + ["stream was asked for but the answer is %s, not text/event-stream" % (response.headers.get("content-type") or "untyped")]
    if response.truncated:
        problems.append(response.truncated)
    return problems


def _read_stream(response, api, result, on_first_token=None):
    stream = StreamAssembler(api)
    for at, chunk in response.chunks():
        stream.feed(at, chunk)
        if on_first_token is not None and stream.token_times:
            on_first_token()
            on_first_token = None
    ended = stream.last_at if stream.last_at is not None else time.perf_counter()
    completion_tokens = _get(stream.usage, "completion_tokens")
    tokens = completion_tokens if isinstance(completion_tokens, int) and not isinstance(completion_tokens, bool) else len(stream.token_times)
    result.update(shape=stream.shape or "invalid", text=stream.text, finish_reason=stream.finish_reason, usage=stream.usage,
                  stream=True, events=stream.events, response=None,
                  timings=stream_timings(response.started, response.headers_at, stream.token_times, ended, tokens))
    if stream.error:
        result["error"] = stream.error
        return ["the stream carried an error: %s" % describe_error(stream.error)]
    return stream.finish(response.truncated)


def _check_status(result, expected, hint=None):
    if result["status"] in expected:
        return
    error = result.get("error") or {"status": result["status"]}
    raise LlmdError("%s: %s" % (result["target"], describe_error(error)), hint=hint or _status_hint(result["status"]),
                    **result)


def _status_hint(status):
    return {
        401: "check the credentials: api_key, or for transport=api_proxy the Kubernetes token",
        403: "not allowed: for transport=api_proxy the Kubernetes user needs get/create on services/proxy or pods/proxy",
        404: "check the model name against llmd.verify.models_info (or the path: is this an OpenAI-compatible endpoint?)",
        400: "the server rejected the parameters: max_tokens and seed must be integers",
        429: "the pool is saturated or the queue is full: retry later or add capacity",
        502: "the gateway or routing-proxy could not reach vLLM: is the model server up?",
        503: "no Ready model server behind the gateway, or it is still warming up",
        504: "a proxy timed out waiting for the model server (route or HTTPRoute timeout?)",
    }.get(status, "see the server's message")


def evaluate_assertions(expressions, result):
    """The expressions (JMESPath) that do not hold on result, each with the value it gave."""
    if not expressions:
        return []
    if not HAS_JMESPATH:
        raise LlmdError("the jmespath Python package is required for assert", hint="pip install jmespath",
                        exception=JMESPATH_IMPORT_ERROR)
    failed = []
    for expression in expressions:
        try:
            value = jmespath.search(expression, result)
        except jmespath.exceptions.JMESPathError as exc:
            raise LlmdError("assert %r is not a valid JMESPath expression: %s" % (expression, exc)) from exc
        if value is None or value is False or (isinstance(value, (str, list, dict)) and not value):  # JMESPath falsiness
            failed.append("%s (got %s)" % (expression, json.dumps(value)))
    return failed
