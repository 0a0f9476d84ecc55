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
      - Port of the pods' metrics. When unset, the port of each pod's C(vllm) container (its C(--port)
        argument or first declared port), so 8000 on prefill pods and 8200 behind a decode pod's routing-proxy.
    type: str
  services:
    description:
      - Read these Services, as V(NAME:PORT), for example V(optimized-baseline-epp:9090).
    type: list
    elements: str
  urls:
    description:
      - Read these URLs directly, for example V(http://127.0.0.1:8000/metrics). TLS is verified with the
        system's CAs.
    type: list
    elements: str
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
      - Extra HTTP headers for the targets, for example an C(Authorization) header for an EPP whose metrics
        need one on a URL.
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
  - Reading pods and Services through the API server needs C(get) on C(pods/proxy) and C(services/proxy).
  - The EPP's metrics need authentication unless llm-d's monitoring values are applied.
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

- name: The router's P/D decisions
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
      C(skipped_lines) (lines the parser rejected) or C(error).
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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError, fail_from_error
from ansible_collections.llmd.verify.plugins.module_utils._http import HAS_REQUESTS, REQUESTS_IMPORT_ERROR
from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.llmd.verify.plugins.module_utils._metrics import (
    HAS_PROMETHEUS_CLIENT,
    PROMETHEUS_CLIENT_IMPORT_ERROR,
    read_metrics,
)


def main():
    argument_spec = k8s_auth_argument_spec(
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
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_one_of=[("role", "label_selectors", "pods", "services", "urls")],
                           mutually_exclusive=[("pods", "role"), ("pods", "label_selectors")])
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
    if not HAS_PROMETHEUS_CLIENT:
        module.fail_json(msg=missing_required_lib("prometheus-client"), exception=PROMETHEUS_CLIENT_IMPORT_ERROR)
    try:
        result = read_metrics(module.params)
    except LlmdError as err:
        fail_from_error(module, err, changed=False)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
