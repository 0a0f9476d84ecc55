# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP through the Kubernetes API server's proxy to a Service or Pod, with the kubernetes client.

`GET/POST /api/v1/namespaces/NS/services/[https:]NAME[:PORT]/proxy/PATH` (or `pods/...`) reaches a
ClusterIP gateway, a standalone EPP or one model-server pod with no port-forward, as llm-d's guides read
metrics. The generated connect_*_proxy methods take no body, so requests go through _k8s_client.k8s_request
(ApiClient.param_serialize + call_api), which adds the client's credentials (token, exec plugin refresh,
client certificate) and returns the urllib3 response unread, to be streamed.

The port is resolved before the path is built, as kubectl resolves it, since the API server matches a
Service's endpoint port by name and dials a pod's port by number: a Service is read first and its port
given by number becomes its name (an unnamed single port keeps its number); with several ports and none
given, the HTTP port is chosen by the rules of module_utils._service_ports (or the metrics port, for
metrics), else the request fails at once naming the ports. A pod's container port name becomes its number.

The API server's proxy adds a hop and may flush what it relays only every 200 ms (its flush interval; Go's
reverse proxy passes event streams on at once in newer releases), so timings taken through it are coarse.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import K8S_AUTH_ARG_SPEC
from ansible_collections.llmd.verify.plugins.module_utils._service_ports import (
    choose_http_port,
    choose_metrics_port,
    container_ports,
    describe_container_ports,
    describe_ports,
    proxy_port_name,
)
from ansible_collections.llmd.verify.plugins.module_utils._http import (
    Response,
    TransportError,
    check_timeout,
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


def _name_of(obj):
    return (obj.get("metadata") or {}).get("name", "")


def resolve_service_port(service, port=None, prefer="http"):
    """(the port to ask the API server proxy for, the Service port chosen) on a Service (wire JSON).

    port: a number or a port name, or None. prefer: "http" (the HTTP port) or "metrics" (the metrics port,
    then the HTTP port) when several ports are there and none is given. Raises LlmdError naming the ports.
    """
    ports = (service.get("spec") or {}).get("ports") or []
    name = _name_of(service)
    if not ports:
        raise LlmdError("Service %s has no ports" % name, hint="check the Service: kubectl get service %s -o yaml" % name)
    if port not in (None, ""):
        text = str(port)
        if text.isdigit():
            found = [p for p in ports if p.get("port") == int(text)]
        else:
            found = [p for p in ports if p.get("name") == text]
        if not found:
            raise LlmdError("Service %s has no port %s (its ports: %s)" % (name, text, describe_ports(ports)),
                            hint="give one of the Service's ports, by number or name (not a target port)")
        return proxy_port_name(found[0]), found[0]
    if len(ports) == 1:
        return proxy_port_name(ports[0]), ports[0]
    chosen = choose_metrics_port(ports) if prefer == "metrics" else None
    if chosen is None:
        chosen, _scheme, _skipped = choose_http_port(ports)
    if chosen is None:
        raise LlmdError("Service %s has several ports and none of them is HTTP (its ports: %s)" % (name, describe_ports(ports)),
                        hint="set port to the one to reach")
    return proxy_port_name(chosen), chosen


def resolve_pod_port(pod, port=None):
    """The port to ask the API server proxy for on a Pod: a container port name becomes its number."""
    if port in (None, "") or str(port).isdigit():
        return None if port in (None, "") else str(port)
    found = [p for p in container_ports(pod) if p.get("name") == str(port)]
    if not found:
        raise LlmdError("pod %s has no container port named %s (its ports: %s)" % (
            _name_of(pod), port, describe_container_ports(container_ports(pod))),
            hint="the API server does not resolve port names for pods: give the port number")
    return str(found[0]["containerPort"])


class ApiProxyTransport:
    """Requests to a Service or Pod through the API server proxy: the "api_proxy" transport.

    The port is resolved on the first request (the Service, or the Pod when its port is a name, is read
    then), unless obj, the Service or Pod as wire JSON, is given.
    """

    kind = "api_proxy"
    coarse_timing = True

    def __init__(self, api_client, namespace, kind, name, port=None, scheme="http", timeout=30, headers=None,
                 obj=None, prefer="http"):
        self.api_client = api_client
        self.namespace, self.resource, self.name, self.port, self.scheme = namespace, kind, name, port, scheme
        self.timeout = check_timeout(timeout)
        self.headers = dict(headers or {})
        self.prefer = prefer
        self._obj = obj
        self.proxy_port = None
        self._resolved = False
        self.target = self._describe(port)

    def _describe(self, port):
        return "%s/%s%s (API server proxy, namespace %s)" % (
            self.resource[:-1], self.name, ":%s" % port if port not in (None, "") else "", self.namespace)

    def resolve_port(self):
        """The port the proxy path names (None: the API server's default), read once."""
        if self._resolved:
            return self.proxy_port
        if self.resource == "services":
            service = self._obj if self._obj is not None else self._read("services")
            self.proxy_port = resolve_service_port(service, self.port, self.prefer)[0]
        elif self.port not in (None, "") and not str(self.port).isdigit():
            self.proxy_port = resolve_pod_port(self._obj if self._obj is not None else self._read("pods"), self.port)
        else:
            self.proxy_port = None if self.port in (None, "") else str(self.port)
        self._resolved = True
        self.target = self._describe(self.proxy_port)
        return self.proxy_port

    def _read(self, kind):
        from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import k8s_get
        return k8s_get(self.api_client, "/api/v1/namespaces/{namespace}/%s/{name}" % kind, verb="get", resource=kind,
                       namespace=self.namespace, name=self.name)

    def request(self, method, path, body=None):
        """Send the request through the proxy; return a Response once its headers are in."""
        resource_path = proxy_path(self.namespace, self.resource, self.name, self.resolve_port(), self.scheme, path)
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


def open_transport(params, api_client=None, obj=None, prefer="http"):
    """The transport the options ask for: HttpTransport (direct) or ApiProxyTransport (api_proxy).

    For api_proxy, api_client (else one for kubeconfig and context), obj (the Service or Pod, when already
    read) and prefer (the port to choose among several) are passed on to ApiProxyTransport.
    """
    if (params.get("transport") or "direct") == "direct":
        return http_transport_from_params(params)
    if api_client is None:
        # Imported here for the same reason: direct checks do not load kubernetes.
        from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import get_api_client
        api_client = get_api_client({"kubeconfig": params.get("kubeconfig"), "context": params.get("context")})
    kind, name = ("services", params["service"]) if params.get("service") else ("pods", params["pod"])
    return ApiProxyTransport(api_client, params["namespace"], kind, name, params.get("port"),
                             params.get("scheme") or "http", params.get("timeout") or 30, params.get("headers"),
                             obj=obj, prefer=prefer)
