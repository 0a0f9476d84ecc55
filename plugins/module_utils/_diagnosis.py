# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name the likely cause of a failed check from what the check saw.

The input is the result of a check module (models_info, inference_check, port_forward, ...): its
HTTP ``status``, ``error`` (message/type/body), ``phase`` and ``msg``. The rules encode what llm-d
users meet most (FACTS.md: "Users' recurring troubles"); the first rule that matches wins.
"""

from __future__ import annotations


def _text(result):
    error = result.get("error") or {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    parts = [result.get("msg"), error.get("message"), error.get("type"), error.get("body")]
    if isinstance(result.get("problems"), list):
        parts.extend(result["problems"])
    return " ".join(str(part) for part in parts if part).lower()


def _status(result):
    status = result.get("status")
    if status is None and isinstance(result.get("error"), dict):
        status = result["error"].get("status")
    try:
        return int(status)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        return None


# The causes of the checks that do not come from an HTTP answer (check records of module_utils._checks).
LOG_ERRORS_CAUSE = "the %s pods logged errors: read them in the report"
NOT_DISAGGREGATED_CAUSE = ("requests are not disaggregated: the router does not pick a prefill pod, or the decode "
                           "routing-proxy does not call it")

RULES = (
    (lambda s, t, p: "system:anonymous" in t,
     "no credentials reached the Kubernetes API server (it saw system:anonymous): the kubeconfig, its context or "
     "the token is missing or not the one meant"),
    (lambda s, t, p: "forbidden" in t or s == 403 and "kubernetes" in t,
     "the Kubernetes credentials lack a permission the check needs (see docs/rbac.md)"),
    (lambda s, t, p: "cannot reach the kubernetes api server" in t and ("certificate" in t or "ssl" in t),
     "the Kubernetes API server's TLS certificate was not accepted: check the kubeconfig's certificate-authority "
     "(ca_cert) and validate_certs"),
    (lambda s, t, p: "cannot reach the kubernetes api server" in t,
     "the cluster's Kubernetes API server does not answer: the cluster is down, or the kubeconfig or its context "
     "points at the wrong address"),
    (lambda s, t, p: "cannot load the kubernetes configuration" in t,
     "the kubeconfig cannot be used as given: the file, the context or its user is missing or malformed (compare "
     "the context with `kubectl config get-contexts`)"),
    (lambda s, t, p: "tls failed" in t or "certificate verify failed" in t,
     "the endpoint's TLS certificate was not accepted: it is for another host name than the one reached (use the "
     "name it was issued for, with resolve for its address), or its CA is not trusted (set ca_path)"),
    (lambda s, t, p: "connection ended before the body was complete" in t,
     "the connection was cut in the middle of the answer: the model server pod restarted or died, or a proxy on "
     "the way (gateway, port-forward, load balancer) closed it; read the decode pods' restarts and logs"),
    (lambda s, t, p: "closed before any answer" in t,
     "the connection was closed before an answer, twice: a pod restarting behind the gateway or port-forward, or "
     "a proxy on the way (gateway, load balancer) closing it; run the check again and read the pods' restarts"),
    (lambda s, t, p: "no service port" in t or "unknown port" in t,
     "the Kubernetes API server proxy was asked for a port the Service or pod does not have"),
    (lambda s, t, p: "no pods available in datastore" in t or "failed to find candidate pods" in t
     or "failed to find endpoint candidates" in t,
     "the EPP has no Ready model server pod: decode pods are not Ready (vLLM still loading or crash-looping) or "
     "the InferencePool selects no pods"),
    (lambda s, t, p: "no healthy upstream" in t or "no endpoints" in t,
     "the gateway has no Ready model server behind it: decode pods are not Ready (vLLM still loading or "
     "crash-looping) or the InferencePool selects no pods"),
    (lambda s, t, p: "decode node is not ready" in t or "failed to connect to vllm" in t or (s == 502 and not t.strip()),
     "the routing-proxy sidecar cannot reach vLLM on its pod yet: vLLM is still starting, or has died"),
    (lambda s, t, p: "inferencepool" in t and "not found" in t,
     "the HTTPRoute points at an InferencePool of another API group than the one installed"),
    (lambda s, t, p: s == 404 and ("does not exist" in t or "notfounderror" in t),
     "the model is not served by this deployment: compare the request's model with /v1/models"),
    (lambda s, t, p: s == 404,
     "nothing routes this path: the HTTPRoute is missing, not attached to the Gateway, or not programmed yet"),
    (lambda s, t, p: s == 429,
     "the pool is saturated: the endpoint picker's queue is full"),
    (lambda s, t, p: s in (401, 403),
     "the endpoint requires credentials: set the API key the gateway expects"),
    (lambda s, t, p: s == 504 or p in ("first byte", "stream") and "timed out" in t,
     "a timeout on the way: a Route or HTTPRoute timeout shorter than the request (OpenShift's default is "
     "30 s), or an overloaded model server"),
    (lambda s, t, p: s == 500 and "empty body" in t,
     "the gateway answered 500 with an empty body: its ext_proc call to the EPP failed (the EPP pod is down or "
     "refused its configuration, and the route fails closed); read the EPP's logs"),
    (lambda s, t, p: "<html" in t or "<!doctype" in t,
     "a proxy or load balancer answered with an HTML page instead of the model server"),
    (lambda s, t, p: s is not None and s >= 500,
     "the gateway or model server failed: read the decode pods' vllm and routing-proxy logs"),
    (lambda s, t, p: "refused" in t,
     "nothing listens at the endpoint: the port-forward or the gateway is down, or the address is wrong"),
    (lambda s, t, p: p == "connect" or "timed out" in t,
     "the endpoint's address does not answer: a load balancer not provisioned yet, a firewall, or a wrong address"),
    (lambda s, t, p: "name or service not known" in t or "resolve" in t and "fail" in t,
     "the endpoint's host name does not resolve: DNS is not set up for it yet (use the connect address)"),
    (lambda s, t, p: s == 200,
     "the server answered, but not as an OpenAI-compatible model server does"),
)


def likely_cause(result):
    """The likely cause of a failed check, or an empty string when no rule matches."""
    if not isinstance(result, dict):
        return ""
    status, text, phase = _status(result), _text(result), result.get("phase")
    for matches, cause in RULES:
        if matches(status, text, phase):
            return cause
    return ""
