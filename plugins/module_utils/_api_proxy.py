# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP through the Kubernetes API server's proxy to a Service or Pod, with the kubernetes client.

`GET/POST /api/v1/namespaces/NS/services/[https:]NAME[:PORT]/proxy/PATH` (or `pods/...`) reaches a
ClusterIP gateway, a standalone EPP or one model-server pod with no port-forward, as llm-d's guides read
metrics. The generated connect_*_proxy methods take no body, so requests go through _k8s_client.k8s_request
(ApiClient.param_serialize + call_api), which adds the client's credentials (token, exec plugin refresh,
client certificate) and returns the urllib3 response unread, to be streamed.

The API server's proxy adds a hop and may flush what it relays only every 200 ms (its flush interval; Go's
reverse proxy passes event streams on at once in newer releases), so timings taken through it are coarse.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import K8S_AUTH_ARG_SPEC
from ansible_collections.llmd.verify.plugins.module_utils._http import (
    Response,
    TransportError,
    transport_error,
    transport_from_params as http_transport_from_params,
)

API_PROXY_ARG_SPEC = dict(
    transport=dict(type="str", default="direct", choices=["direct", "api_proxy"]),
    namespace=dict(type="str"),
    service=dict(type="str"),
    pod=dict(type="str"),
    port=dict(type="str"),
    scheme=dict(type="str", default="http", choices=["http", "https"]),
    # Only these two Kubernetes auth options: the others (api_key, validate_certs, client_cert, client_key,
    # proxy) share their names with the HTTP options of the endpoint, and must never be mixed up with them.
    kubeconfig=dict(K8S_AUTH_ARG_SPEC["kubeconfig"]),
    context=dict(K8S_AUTH_ARG_SPEC["context"]),
)
# For AnsibleModule: which options go together.
API_PROXY_MUTUALLY_EXCLUSIVE = [("service", "pod")]
API_PROXY_REQUIRED_IF = [
    ("transport", "direct", ("endpoint",)),
    ("transport", "api_proxy", ("namespace",)),
    ("transport", "api_proxy", ("service", "pod"), True),
]


def proxy_path(namespace, kind, name, port=None, scheme="http", path="/"):
    """The API server path that proxies to path on a Service or Pod (kind: services or pods)."""
    if kind not in ("services", "pods"):
        raise LlmdError("api_proxy reaches services or pods, not %r" % kind)
    target = name if port in (None, "") else "%s:%s" % (name, port)
    if scheme == "https":
        target = "https:" + target
    return "/api/v1/namespaces/%s/%s/%s/proxy/%s" % (quote(namespace, safe=""), kind, quote(target, safe=":"),
                                                     path.lstrip("/"))


class ApiProxyTransport:
    """Requests to a Service or Pod through the API server proxy: the "api_proxy" transport."""

    kind = "api_proxy"
    coarse_timing = True

    def __init__(self, api_client, namespace, kind, name, port=None, scheme="http", timeout=30, headers=None):
        self.api_client = api_client
        self.namespace, self.resource, self.name, self.port, self.scheme = namespace, kind, name, port, scheme
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.target = "%s/%s%s (API server proxy, namespace %s)" % (
            kind[:-1], name, ":%s" % port if port not in (None, "") else "", namespace)

    def request(self, method, path, body=None):
        """Send the request through the proxy; return a Response once its headers are in."""
        resource_path = proxy_path(self.namespace, self.resource, self.name, self.port, self.scheme, path)
        headers = {"Accept": "application/json, text/event-stream, */*"}
        headers.update(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        # Imported here, not at the top: loading kubernetes takes ~0.3 s that direct checks need not pay.
        import urllib3.exceptions  # the kubernetes client's HTTP library
        from kubernetes.client.exceptions import ApiException
        from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import k8s_request

        started = time.perf_counter()
        try:
            answer = k8s_request(self.api_client, method, resource_path, headers=headers, body=body,
                                 timeout=(self.timeout, self.timeout))
        except urllib3.exceptions.HTTPError as exc:
            raise transport_error(exc, self.target, self.timeout) from exc
        except ApiException as exc:  # raised by the client for TLS failures, with status 0
            raise TransportError("%s: %s" % (self.target, exc.reason or exc), phase="connect",
                                 hint="check the kubeconfig's server address and CA") from exc
        return Response(answer.response, started, self.target, self.timeout)

    def close(self):
        """The ApiClient is shared (cached by module_utils._k8s_client): nothing to close here."""


def open_transport(params):
    """The transport the options ask for: HttpTransport (direct) or ApiProxyTransport (api_proxy)."""
    if params.get("transport", "direct") == "direct":
        return http_transport_from_params(params)
    # Imported here for the same reason: direct checks do not load kubernetes.
    from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import get_api_client
    kind, name = ("services", params["service"]) if params.get("service") else ("pods", params["pod"])
    api_client = get_api_client({"kubeconfig": params.get("kubeconfig"), "context": params.get("context")})
    return ApiProxyTransport(api_client, params["namespace"], kind, name, params.get("port"),
                             params.get("scheme") or "http", params.get("timeout") or 30, params.get("headers"))
