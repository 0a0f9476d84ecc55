#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_info
short_description: Read an llm-d namespace's objects and name what is wrong with them
version_added: 0.1.0
description:
  - Lists, once per kind, the objects an llm-d deployment is made of in O(namespace) (Gateways and their
    Services, HTTPRoutes, InferencePools of both API groups, the EPP, the model server Deployments and pods,
    Ingresses and OpenShift Routes) and which of their CRDs the cluster serves, and returns them as
    RV(inventory).
  - Judges them with rules that encode the causes users meet most, and returns RV(problems), each with a
    severity, the object, what is wrong and a hint saying what to do. A missing CRD is never a problem of its
    own; it is named where it explains what the exposure mode in use lacks.
  - A read the credentials may not make (403) is listed in RV(refused) and reported as a warning; the rules
    that need it are skipped and the others still run.
  - Only reads from the cluster. Run it before the checks (it is cheap) and after a failed check, to name
    the object that explains the failure.
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.attributes
  - llmd.verify.attributes.in_controller
  - llmd.verify.attributes.info_module
  - llmd.verify.k8s_auth
attributes:
  action_group:
    description: Use C(group/llmd.verify.k8s) in C(module_defaults) to set the Kubernetes auth options once.
    support: full
    membership:
      - llmd.verify.k8s
options:
  namespace:
    description: The namespace of the llm-d deployment.
    type: str
    required: true
  guide:
    description:
      - The llm-d guide deployed (for example V(optimized-baseline) or V(pd-disaggregation)).
      - Pods labelled C(llm-d.ai/guide) with another guide are left out, and the EPP C(<guide>-epp) is preferred
        when the namespace has several.
    type: str
  model:
    description:
      - The model the checks will ask for. When given, a problem is reported unless a model server serves it
        (by C(--served-model-name), C(--model) or the model argument of its command line).
    type: str
  expect_routing_sidecar:
    description:
      - Whether decode pods should run the routing-proxy sidecar (P/D disaggregation needs it).
      - V(true) reports decode pods without it as errors, V(false) those with it as warnings; unset, neither is
        reported (a sidecar whose C(--vllm-port) is not vLLM's port always is).
    type: bool
  min_route_timeout:
    description:
      - Route timeouts shorter than this many seconds are reported (HTTPRoute C(timeouts.request) and
        C(timeouts.backendRequest), the gateway providers' defaults when unset, OpenShift's
        C(haproxy.router.openshift.io/timeout)).
    type: int
    default: 300
  previous_log_lines:
    description:
      - How many of the last lines of a crash-looping container's previous run to read (one request per such
        container, at most three). V(0) reads none.
    type: int
    default: 20
requirements:
  - kubernetes >= 24.2.0 (the Python client)
notes:
  - Needs C(list) on pods, services, deployments, ingresses, gateways, httproutes, inferencepools and routes in
    O(namespace), C(list) on gatewayclasses at the cluster scope, and C(get) on C(pods/log) for crash loops
    (docs/rbac.md). Any of them refused is reported, not fatal.
seealso:
  - module: llmd.verify.gateway_endpoint_info
  - module: llmd.verify.pod_logs_info
"""

EXAMPLES = r"""
- name: Read the namespace and list what is wrong
  llmd.verify.stack_info:
    namespace: llm-d
    model: Qwen/Qwen3-0.6B
  register: stack

- name: Show each problem with its hint
  ansible.builtin.debug:
    msg: "{{ item.severity }} {{ item.object }}: {{ item.message }} (hint: {{ item.hint }})"
  loop: "{{ stack.problems }}"

- name: Stop when an object explains why requests cannot be served
  ansible.builtin.assert:
    that: stack.summary.error == 0
    fail_msg: "{{ stack.problems | selectattr('severity', 'eq', 'error') | map(attribute='message') | join('; ') }}"

- name: A P/D guide, with the auth options set once
  module_defaults:
    group/llmd.verify.k8s:
      kubeconfig: ~/.kube/prod
  llmd.verify.stack_info:
    namespace: llm-d-pd
    guide: pd-disaggregation
    expect_routing_sidecar: true
"""

RETURN = r"""
mode:
  description:
    - How requests reach the pools, as the objects say. V(gateway) when a Gateway exists, V(standalone) when an
      EPP Service has an HTTP port (the Envoy sidecar of today's router chart, or the EPP's own C(--http-port)),
      V(none) otherwise.
  returned: success
  type: str
  sample: standalone
crds:
  description:
    - Which CRD families the cluster serves (from API discovery), V(null) when that could not be read.
  returned: success
  type: dict
  contains:
    gateway_api:
      description: C(gateway.networking.k8s.io/v1).
      type: bool
    inference_pool_v1:
      description: C(inference.networking.k8s.io/v1) InferencePool.
      type: bool
    inference_pool_v1alpha2:
      description: The deprecated C(inference.networking.x-k8s.io/v1alpha2) InferencePool.
      type: bool
    openshift_route:
      description: C(route.openshift.io/v1).
      type: bool
  sample: {gateway_api: true, inference_pool_v1: true, inference_pool_v1alpha2: false, openshift_route: false}
refused:
  description: The reads the credentials were refused (403); their kinds are V(null) in RV(inventory).
  returned: success
  type: list
  elements: dict
  contains:
    read:
      description: The inventory key (for example V(gatewayclasses)), or V(discovery).
      type: str
    verb:
      description: The verb refused.
      type: str
    resource:
      description: The resource, with its API group.
      type: str
    namespace:
      description: The namespace, V(null) at the cluster scope.
      type: str
    status:
      description: The HTTP status.
      type: int
    message:
      description: What the API server said.
      type: str
    hint:
      description: What to grant.
      type: str
  sample: [{read: gatewayclasses, verb: list, resource: gatewayclasses.gateway.networking.k8s.io, namespace: null,
            status: 403, message: "the Kubernetes credentials may not list ...", hint: "grant 'list' on ..."}]
inventory:
  description:
    - The objects of the namespace as the rules see them. A kind that could not be read (refused, or its CRD not
      installed) is V(null), an empty list means none exist.
  returned: success
  type: dict
  contains:
    namespace:
      description: O(namespace).
      type: str
    guide:
      description: O(guide).
      type: str
    mode:
      description: RV(mode).
      type: str
    crds:
      description: RV(crds).
      type: dict
    refused:
      description: RV(refused).
      type: list
    gateways:
      description:
        - Per Gateway, C(name), C(class), C(class_found), C(controller) (the class's controllerName),
          C(class_accepted), C(accepted) and C(programmed) (each C({status, reason, message})), C(listeners),
          C(addresses) and C(services) (the gateway Services, with C(type) and load balancer C(address)).
      type: list
      elements: dict
    httproutes:
      description:
        - Per HTTPRoute, C(parents) (each with C(accepted), C(resolved_refs), C(controller), C(reported),
          C(gateway_found)), C(backends) (C(group), C(kind), C(name), C(port), and for pools C(resolves) and
          C(found_in_groups)) and C(timeouts) per rule (C(request), C(backend_request)).
      type: list
      elements: dict
    inference_pools:
      description:
        - Per InferencePool of either group, C(api_version), C(selector), C(target_ports), C(endpoint_picker),
          C(parents) (their C(accepted) and C(resolved_refs)), the C(pods) it selects and the C(ready_pods).
      type: list
      elements: dict
    epp:
      description:
        - Per EPP Deployment, C(replicas), C(ready_replicas), its C(pool) and C(pool_group) (from its flags),
          C(service) and C(service_ports), C(standalone) and C(http_port) (its Service's HTTP port), C(envoy_container),
          C(metrics_auth), and its C(pods) (as the pods of RV(inventory.model_servers)).
      type: list
      elements: dict
    model_servers:
      description:
        - C(deployments) (C(name), C(role), C(replicas), C(ready_replicas)) and C(pods); per pod C(role),
          C(phase), C(ready), C(scheduled), C(restarts), C(containers) (C(image), C(ready), C(restarts),
          C(state), C(waiting_reason), C(last_termination) with C(reason) and C(exit_code), C(crash_looping),
          C(previous_log)), C(served_models), C(vllm_port), C(routing_sidecar) (C(port), C(vllm_port), C(image))
          and C(listening_ports).
      type: dict
    ingresses:
      description: Per Ingress, C(class), C(backends) (Service names) and C(address).
      type: list
      elements: dict
    routes:
      description: Per OpenShift Route, C(host), C(to), C(tls), C(admitted), C(timeout) and C(timeout_seconds).
      type: list
      elements: dict
    services:
      description: The names of the namespace's Services.
      type: list
      elements: str
    pods_read:
      description: Whether the pods could be read.
      type: bool
    epp_read:
      description: Whether the Deployments could be read.
      type: bool
problems:
  description: What is wrong, errors first, then warnings, then information.
  returned: success
  type: list
  elements: dict
  contains:
    rule:
      description:
        - The rule that found it, for example V(no_entrypoint), V(gateway_not_accepted), V(gateway_no_address),
          V(route_pool_other_group), V(route_pool_missing), V(route_refs_unresolved), V(route_not_accepted),
          V(route_timeout_short), V(pool_selects_nothing), V(pool_target_port_unserved), V(no_ready_decode),
          V(no_ready_prefill), V(pod_not_ready), V(epp_not_ready), V(routing_sidecar_missing),
          V(routing_sidecar_port_mismatch), V(model_not_served), V(epp_metrics_need_token), V(read_refused).
      type: str
    severity:
      description:
        - V(error) stops requests from being served; V(warning) will bite (long requests cut, a controller not
          reporting); V(info) is worth knowing when reading the results.
      type: str
    object:
      description: The object at fault, as C(Kind/name).
      type: str
    message:
      description: What is wrong.
      type: str
    hint:
      description: What to do about it.
      type: str
  sample:
    - rule: no_ready_decode
      severity: error
      object: pods/ms-crashloop-llm-d-modelservice-decode-64985bf65c-2926h
      message: "no decode pod is Ready: ...: container vllm is crash-looping (5 restarts, last exit 1 Error; ...)"
      hint: "vLLM ran out of GPU memory while loading: lower --gpu-memory-utilization or --max-model-len, ..."
summary:
  description: How many problems of each severity.
  returned: success
  type: dict
  contains:
    error:
      description: Errors.
      type: int
    warning:
      description: Warnings.
      type: int
    info:
      description: Information.
      type: int
  sample: {error: 0, warning: 1, info: 1}
"""

from ansible_collections.llmd.verify.plugins.module_utils._module import k8s_module, run_module
from ansible_collections.llmd.verify.plugins.module_utils._stack_rules import STACK_ARG_SPEC, stack_info


DEFINITION = k8s_module(STACK_ARG_SPEC, stack_info)


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
