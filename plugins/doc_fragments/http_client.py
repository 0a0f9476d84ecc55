# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """The HTTP options of the inference checks (module_utils._http.HTTP_ARG_SPEC)."""

    DOCUMENTATION = r"""
options:
  endpoint:
    description:
      - Base URL of the OpenAI-compatible endpoint, for example the gateway found by
        M(llmd.verify.gateway_endpoint_info), a port-forward (V(http://127.0.0.1:8000)) or an Ingress host.
      - Paths such as C(/v1/models) are appended to it.
      - Required when O(transport=direct).
    type: str
  api_key:
    description:
      - Sent as a bearer token (C(Authorization) header), for endpoints that require a key.
      - Not sent through O(transport=api_proxy), where the Kubernetes API server consumes the C(Authorization) header.
    type: str
  headers:
    description:
      - Extra HTTP headers sent with every request.
    type: dict
    default: {}
  validate_certs:
    description:
      - Whether to verify the TLS certificate of an C(https) endpoint.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA certificates to verify the endpoint with, instead of the system's.
    type: path
  client_cert:
    description:
      - PEM client certificate for mutual TLS. It may hold the key too; else set O(client_key).
    type: path
  client_key:
    description:
      - PEM private key of O(client_cert).
    type: path
  timeout:
    description:
      - Seconds to wait for each phase of a request (the connection, the first byte of the answer, and
        every later read of a streamed answer). A timeout names the phase that ran out.
    type: float
    default: 30
  proxy:
    description:
      - HTTP proxy URL for the requests, for example V(http://proxy.example.com:3128).
      - When unset, the C(HTTP_PROXY), C(HTTPS_PROXY) and C(NO_PROXY) environment variables apply.
    type: str
  resolve:
    description:
      - Connect to a given address for a host name, like curl's C(--resolve), for an Ingress or Route whose
        host has no DNS record yet.
      - Keys are host names (or V(host:port)), values the addresses to connect to. The request keeps the
        host name in its C(Host) header, and for C(https) as the TLS server name (SNI), which the certificate
        must match.
      - M(llmd.verify.gateway_endpoint_info) returns such an address as C(connect_address).
    type: dict
    default: {}
"""

    # The transport and the target of the API server proxy (module_utils._api_proxy.API_PROXY_ARG_SPEC).
    API_PROXY = r"""
options:
  transport:
    description:
      - How requests reach the target.
      - V(direct) sends them to O(endpoint).
      - V(api_proxy) sends them through the Kubernetes API server's proxy to O(service) or O(pod) in
        O(namespace) (C(/api/v1/namespaces/NS/services/NAME:PORT/proxy/...)), with the credentials of
        O(kubeconfig) and O(context). A ClusterIP gateway, a standalone EPP or one model server pod can then be
        checked with no port-forward. It needs C(get) and C(create) on C(services/proxy) or C(pods/proxy).
      - Through V(api_proxy) a streamed answer passes the API server's proxy, which may hold it back in 200 ms
        batches (its flush interval; newer API servers pass event streams on at once) and adds its own hop, so only
        total times are reported there; time to first token and inter-token latency are not.
    type: str
    choices: [direct, api_proxy]
    default: direct
  namespace:
    description:
      - Namespace of O(service) or O(pod). Required when O(transport=api_proxy).
    type: str
  service:
    description:
      - Service to reach through the API server proxy, for example the gateway Service or a standalone EPP
        (V(optimized-baseline-epp)).
      - Mutually exclusive with O(pod).
    type: str
  pod:
    description:
      - Pod to reach through the API server proxy, for example one decode pod.
      - Mutually exclusive with O(service).
    type: str
  port:
    description:
      - Port of O(service) or O(pod), as a number or a port name, resolved before the request as kubectl resolves
        it. The Service is read first (this needs C(get) on C(services)), and a port number becomes the port's name,
        which is what the API server proxy matches (an unnamed single port keeps its number), and a port the
        Service does not have fails at once, naming the ports it has.
      - When unset, the Service's only port; with several, its HTTP port, chosen as
        M(llmd.verify.gateway_endpoint_info) chooses the EPP's (by name C(http)/C(https), then C(appProtocol),
        then the numbers 80, 443, 8000, 8081, never the gRPC, metrics or Istio status ports); a Service with
        several ports and no HTTP one fails at once, naming them.
      - For O(pod), a container port name is turned into its number (the API server does not resolve names for
        pods); when unset, the API server uses port 80.
    type: str
  scheme:
    description:
      - Scheme the API server uses to reach the target.
    type: str
    choices: [http, https]
    default: http
  kubeconfig:
    description:
      - Path to a kubeconfig file, or its content as a dict, for O(transport=api_proxy).
      - Defaults to C(~/.kube/config), or to the in-cluster service account.
      - For other Kubernetes credentials (token, certificates) use a kubeconfig that holds them.
      - The environment variable E(K8S_AUTH_KUBECONFIG) is used when this is unset.
    type: raw
  context:
    description:
      - Context of the kubeconfig to use for O(transport=api_proxy).
      - The environment variable E(K8S_AUTH_CONTEXT) is used when this is unset.
    type: str
"""
