#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: metrics_info
short_description: Read the Prometheus metrics of llm-d model server pods, the EPP and other targets
version_added: 0.1.0
description:
  - Reads C(/metrics) from pods (by llm-d role, label selectors or names) and Services (for example the EPP's
    port 9090) through the Kubernetes API server's proxy, as llm-d's guides do with C(kubectl get --raw), and
    from plain URLs.
  - Parses the Prometheus text format with the C(prometheus_client) parser, keeps the metrics O(names) asks
    for, and returns every sample with its labels, per target.
  - Given the result of an earlier read as O(previous), also returns the difference, so a play can show that
    a request moved C(vllm:request_success_total) on a prefill pod.
  - Fails, with what it could read, when a target cannot be read.
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.k8s_auth
  - llmd.verify.attributes
  - llmd.verify.attributes.in_controller
  - llmd.verify.attributes.info_module
options:
  namespace:
    description:
      - Namespace of the pods and Services.
    type: str
    default: default
  role:
    description:
      - Read the pods labelled C(llm-d.ai/role=<role>), for example V(decode) or V(prefill).
    type: str
  label_selectors:
    description:
      - Read the pods matching these label selectors (all of them), for example V(llm-d.ai/guide=pd-disaggregation).
    type: list
    elements: str
  pods:
    description:
      - Read these pods, by name.
    type: list
    elements: str
  port:
    description:
      - Port of the pods' metrics, as a number or a container port name (turned into its number, since the API server
        does not resolve port names for pods).
      - When unset, the port of each pod's C(vllm) container (its C(--port) argument or first declared port), so
        8000 on prefill pods and 8200 behind a decode pod's routing-proxy.
    type: str
  services:
    description:
      - Read these Services, as V(NAME:PORT) or V(NAME), for example V(optimized-baseline-epp:9090).
      - The Service is read first and its port resolved as kubectl does; a port given by number becomes the
        port's name, which the API server proxy matches. Without a port, the Service's only port, else its
        metrics port (named like C(metrics), or 9090), else its HTTP port; a Service with several ports and none
        of these fails at once, naming its ports.
      - The API server proxy does not pass a bearer token on, so metrics that need one (the EPP's, see
        O(metrics_token)) answer 401 there.
    type: list
    elements: str
  urls:
    description:
      - Read these URLs directly, for example V(http://127.0.0.1:9090/metrics) through a port-forward.
      - TLS is verified unless O(url_validate_certs=false), with the system's CAs or O(url_ca_path).
    type: list
    elements: str
  metrics_token:
    description:
      - Bearer token sent with the reads of O(urls) (directly or through a port-forward), for metrics that need
        one. The EPP of llm-d-router serves its metrics with C(--metrics-endpoint-auth), on by default, and
        anonymous reads get 401.
      - Not sent through the API server proxy (O(services), O(pods)), which would not pass it on.
      - A token of a ServiceAccount bound to a ClusterRole that allows C(get) on the nonResourceURL C(/metrics),
        made with C(kubectl create token NAME); see C(docs/rbac.md).
    type: str
  url_validate_certs:
    description:
      - Whether to verify the TLS certificate of an C(https) URL of O(urls).
      - The Kubernetes option O(validate_certs) is only for the API server.
    type: bool
    default: true
  url_ca_path:
    description:
      - PEM file of the CA certificates to verify the O(urls) with, instead of the system's.
    type: path
  url_client_cert:
    description:
      - PEM client certificate for mutual TLS with the O(urls). It may hold the key too; else set O(url_client_key).
    type: path
  url_client_key:
    description:
      - PEM private key of O(url_client_cert).
    type: path
  path:
    description:
      - Path of the metrics on pods and Services.
    type: str
    default: /metrics
  scheme:
    description:
      - Scheme the API server uses to reach pods and Services.
    type: str
    choices: [http, https]
    default: http
  names:
    description:
      - Metric names to keep, as sample names (V(vllm:request_success_total)), family names
        (V(vllm:request_success)) or shell-style patterns (V(vllm:*)). All metrics when empty.
    type: list
    elements: str
    default: []
  previous:
    description:
      - The registered result of an earlier run of this module (or its RV(targets)). Adds RV(diff).
    type: dict
  headers:
    description:
      - Extra HTTP headers for the targets. For a bearer token use O(metrics_token).
    type: dict
    default: {}
  timeout:
    description:
      - Seconds to wait for the connection and for each read.
    type: float
    default: 30
requirements:
  - kubernetes
  - requests
  - prometheus-client
notes:
  - Reading pods and Services through the API server needs C(get) on C(pods/proxy) and C(services/proxy), and
    C(get) on the Services (to resolve their ports).
  - The EPP's metrics need a bearer token unless llm-d's monitoring values turn C(--metrics-endpoint-auth) off.
    A 401 says so. Forward its metrics port with M(llmd.verify.port_forward) and read it with O(urls) and
    O(metrics_token). The model servers' vLLM metrics need no token.
seealso:
  - module: llmd.verify.inference_check
"""

EXAMPLES = r"""
- name: Counters of the prefill pods before a request
  llmd.verify.metrics_info:
    namespace: llm-d
    role: prefill
    names: [vllm:request_success_total, vllm:prompt_tokens_total]
  register: before

- name: Send a long prompt
  llmd.verify.inference_check:
    endpoint: "{{ endpoint }}"
    prompt: "{{ lookup('ansible.builtin.file', 'long_prompt.txt') }}"

- name: The same counters after it
  llmd.verify.metrics_info:
    namespace: llm-d
    role: prefill
    names: [vllm:request_success_total, vllm:prompt_tokens_total]
    previous: "{{ before }}"
  register: after

- name: A prefill pod served it
  ansible.builtin.assert:
    that: after.diff.values() | map(attribute='vllm:request_success_total.delta') | sum >= 1

- name: The router's metrics need a token (--metrics-endpoint-auth), so forward its metrics port
  llmd.verify.port_forward:
    namespace: llm-d
    service: pd-disaggregation-epp
    remote_port: "9090"
    local_port: 0
  register: epp_metrics

- name: The router's P/D decisions, with a token of a ServiceAccount allowed to get /metrics
  llmd.verify.metrics_info:
    urls: ["{{ epp_metrics.endpoint }}/metrics"]
    metrics_token: "{{ lookup('ansible.builtin.pipe', 'kubectl create token metrics-reader -n llm-d') }}"
    names: [llm_d_epp_disagg_decision_total]

- name: An EPP with --metrics-endpoint-auth=false, through the API server proxy
  llmd.verify.metrics_info:
    namespace: llm-d
    services: [pd-disaggregation-epp:9090]
    names: [llm_d_epp_disagg_decision_total]
"""

RETURN = r"""
targets:
  description:
    - Per target (V(pod/NAME), V(service/NAME:PORT), V(url/URL)) its C(kind), C(name), C(namespace), C(port),
      C(path), C(role) (pods), C(status) (HTTP), C(metrics) (metric name to a list of C(labels) and C(value)),
      C(skipped_lines) (lines the parser rejected) or C(error) and C(hint).
    - C(port) is the port the API server proxy was asked for, once resolved (a Service port's name).
  returned: always
  type: dict
  sample:
    pod/pd-prefill-0:
      kind: pod
      name: pd-prefill-0
      namespace: llm-d
      port: "8000"
      path: /metrics
      role: prefill
      status: 200
      skipped_lines: 0
      metrics:
        "vllm:request_success_total":
          - labels: {"model_name": "random", "finished_reason": "stop"}
            value: 3.0
diff:
  description:
    - Per target and metric, the C(delta) summed over its samples and the C(samples) with C(labels),
      C(before), C(after) and C(delta). A sample missing from the earlier read counts from 0.
  returned: when O(previous) is given
  type: dict
  sample:
    pod/pd-prefill-0:
      "vllm:request_success_total":
        delta: 1.0
        samples:
          - labels: {"model_name": "random", "finished_reason": "stop"}
            before: 3.0
            after: 4.0
            delta: 1.0
"""

from ansible_collections.llmd.verify.plugins.module_utils._http import HAS_REQUESTS, REQUESTS_IMPORT_ERROR
from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.llmd.verify.plugins.module_utils._metrics import (
    HAS_PROMETHEUS_CLIENT,
    METRICS_URL_ARG_SPEC,
    PROMETHEUS_CLIENT_IMPORT_ERROR,
    read_metrics,
)
from ansible_collections.llmd.verify.plugins.module_utils._module import Definition, run_module

DEFINITION = Definition(
    k8s_auth_argument_spec(
        namespace=dict(type="str", default="default"),
        role=dict(type="str"),
        label_selectors=dict(type="list", elements="str"),
        pods=dict(type="list", elements="str"),
        port=dict(type="str"),
        services=dict(type="list", elements="str"),
        urls=dict(type="list", elements="str"),
        path=dict(type="str", default="/metrics"),
        scheme=dict(type="str", default="http", choices=["http", "https"]),
        names=dict(type="list", elements="str", default=[]),
        previous=dict(type="dict"),
        headers=dict(type="dict", default={}),
        timeout=dict(type="float", default=30),
        **METRICS_URL_ARG_SPEC
    ),
    lambda module: read_metrics(module.params),
    [("requests", HAS_REQUESTS, REQUESTS_IMPORT_ERROR),
     ("prometheus-client", HAS_PROMETHEUS_CLIENT, PROMETHEUS_CLIENT_IMPORT_ERROR)],
    required_one_of=[("role", "label_selectors", "pods", "services", "urls")],
    mutually_exclusive=[("pods", "role"), ("pods", "label_selectors")])


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
