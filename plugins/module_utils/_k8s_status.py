# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the Kubernetes API server's own answers mean: pure functions on its Status objects and messages.

Through the API server proxy, most answers come from the target (a gateway, the EPP, vLLM) and are relayed
as they are; some are the API server's own, as a `kind: Status` object. Those say either that the target
is not ready yet (no Ready endpoint, the pod's port refusing) or that the request itself is wrong (a port
the Service does not have): the second is never worth waiting on. A request that reached the API server
with no credentials at all is authorized as `system:anonymous` (403 with anonymous auth on), which is not
a missing RBAC rule but a missing kubeconfig, context or token.
"""

from __future__ import annotations

import json

ANONYMOUS_USER = "system:anonymous"
ANONYMOUS_HINT = ("the request reached the API server without credentials: check the kubeconfig (kubeconfig option, "
                  "K8S_AUTH_KUBECONFIG or KUBECONFIG), that its context (context option) names a user with a token, "
                  "client certificate or exec plugin, or give api_key")

# Messages of the API server proxy (kubernetes pkg/registry/core/service/storage, pod proxy, net.Dial) that
# mean the target is not ready yet, and those that mean the request names something that does not exist.
PROXY_NOT_READY = (
    ("no endpoints available for service", "no endpoints available for service"),
    ("connection refused", "connection refused (through the API server proxy)"),
)
PROXY_REQUEST_ERRORS = ("no service port", "unknown port", "address not allowed", "invalid service request",
                        "invalid pod request", "does not have a host assigned")


def status_object(data):
    """The Status object in a body (bytes or str) the API server sent, or None when it is something else."""
    try:
        obj = json.loads(data)
    except (ValueError, TypeError, RecursionError):  # RecursionError: nested deeper than json follows
        return None
    return obj if isinstance(obj, dict) and obj.get("kind") == "Status" else None


def is_anonymous(message):
    """Whether an API server message says it handled the request as system:anonymous."""
    return ANONYMOUS_USER in (message or "")


def anonymous_message(message):
    return ("no credentials reached the Kubernetes API server: it handled the request as %s and refused it "
            "(403): %s" % (ANONYMOUS_USER, message))


def proxy_not_ready(status):
    """Why an API server proxy Status means "the target is not ready yet", or None."""
    message = ((status or {}).get("message") or "").lower()
    for marker, reason in PROXY_NOT_READY:
        if marker in message:
            return reason
    return None


def proxy_request_error(status):
    """The message of an API server proxy Status that says the request itself is wrong, or None."""
    message = (status or {}).get("message") or ""
    if any(marker in message.lower() for marker in PROXY_REQUEST_ERRORS):
        return message
    return None


def kubernetes_hint(status, data):
    """A hint for an answer that is the Kubernetes API server's own (through the API server proxy), or None."""
    status_obj = status_object(data) if data else None
    if status_obj is None:
        return None
    if status == 403 and is_anonymous(status_obj.get("message")):
        return ANONYMOUS_HINT
    if proxy_request_error(status_obj):
        return ("the Kubernetes API server refused the proxy request itself, so it is not waited on: check the "
                "service or pod and its port (kubectl get service NAME -o yaml)")
    if status == 403:
        return "the Kubernetes user needs get (and create, for POST) on services/proxy or pods/proxy (see docs/rbac.md)"
    return None
