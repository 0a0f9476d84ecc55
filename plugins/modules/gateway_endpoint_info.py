#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gateway_endpoint_info
short_description: Find the URL of an llm-d deployment's gateway, for every way it can be exposed
version_added: 0.1.0
description:
  - Resolves the endpoint that inference requests go to, as the llm-d "inference against llm-d" guide does
    by hand, for a port-forwarded gateway Service, a Gateway address, a LoadBalancer or NodePort Service, an
    Ingress, an OpenShift Route, the standalone EPP of today's guides, or the in-cluster DNS name.
  - Several matching objects are never picked silently; the result says which was chosen and why.
  - For a ClusterIP target (a gateway Service or a standalone EPP) the result says how the play can reach
    it, through M(llmd.verify.port_forward) or the Kubernetes API server's service proxy (the C(api_proxy)
    transport of the inference checks).
  - Only reads from the cluster; the same resolution is available as the P(llmd.verify.gateway_endpoint#lookup)
    lookup.
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.attributes
  - llmd.verify.attributes.in_controller
  - llmd.verify.attributes.info_module
  - llmd.verify.gateway_endpoint
  - llmd.verify.k8s_auth
attributes:
  action_group:
    description: Use C(group/llmd.verify.k8s) in C(module_defaults) to set the Kubernetes auth options once.
    support: full
    membership:
      - llmd.verify.k8s
requirements:
  - kubernetes >= 24.2.0 (the Python client)
notes:
  - Reads Services, Gateways, Ingresses, Routes (and Nodes for a NodePort) in O(namespace); the credentials
    need C(list) on them. A cluster without the Gateway API or OpenShift Routes makes that mode unavailable;
    the other modes still run.
seealso:
  - module: llmd.verify.port_forward
  - plugin: llmd.verify.gateway_endpoint
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Find the gateway, however it is exposed
  llmd.verify.gateway_endpoint_info:
    namespace: llm-d
  register: gateway

- name: Show the endpoint and how it was found
  ansible.builtin.debug:
    msg: "{{ gateway.endpoint }} ({{ gateway.mode }} via {{ gateway.source.kind }} {{ gateway.source.name }})"

- name: Wait up to 5 minutes for the cloud load balancer of a named Gateway
  llmd.verify.gateway_endpoint_info:
    namespace: llm-d
    mode: gateway
    gateway_name: infra-inference-scheduling-inference-gateway
    wait_timeout: 300

- name: Forward the gateway Service the seed's way, with kubernetes.core-style auth set once
  module_defaults:
    group/llmd.verify.k8s:
      kubeconfig: ~/.kube/prod
      context: prod
  block:
    - name: Resolve which Service and port to forward
      llmd.verify.gateway_endpoint_info:
        namespace: llm-d
        mode: port_forward
      register: gateway

    - name: Start the forward
      llmd.verify.port_forward:
        namespace: "{{ gateway.reach.port_forward.namespace }}"
        service: "{{ gateway.reach.port_forward.service }}"
        remote_port: "{{ gateway.reach.port_forward.port }}"
        local_port: "{{ gateway.reach.port_forward.local_port }}"
"""

RETURN = r"""
endpoint:
  description:
    - URL of the endpoint, without a trailing slash. The port is left out when it is 80 for C(http) or 443
      for C(https); an IPv6 host is bracketed.
  returned: success
  type: str
  sample: http://10.16.4.2
mode:
  description: The mode that gave RV(endpoint) (with O(mode=auto), the one it chose).
  returned: success
  type: str
  sample: gateway
source:
  description: The object the endpoint came from.
  returned: success
  type: dict
  contains:
    kind:
      description: V(Service), V(Gateway), V(Ingress) or V(Route).
      type: str
    namespace:
      description: Its namespace.
      type: str
    name:
      description: Its name.
      type: str
  sample: {kind: Gateway, namespace: llm-d, name: infra-sim-inference-gateway}
connect_address:
  description:
    - Where to connect when the URL's host has no DNS record yet but the object's status gives an address
      (an Ingress or Gateway listener host, a Route host and its router); send the request there with the
      URL's host as Host header and TLS server name, like C(curl --resolve). V(null) when the host resolves.
  returned: success
  type: str
  sample: 127.0.0.7
reach:
  description: How the play, where it runs, reaches RV(endpoint).
  returned: success
  type: dict
  contains:
    direct:
      description: Whether RV(endpoint) is meant to answer from outside the cluster.
      type: bool
    port_forward:
      description:
        - For a ClusterIP target, the options of M(llmd.verify.port_forward) to reach it
          (C(namespace), C(service), C(port), C(local_port)) and the C(endpoint) it gives.
      type: dict
      returned: when the target is a ClusterIP Service
    api_proxy:
      description:
        - For a ClusterIP target, the options of M(llmd.verify.verify_inference), M(llmd.verify.models_info) and
          M(llmd.verify.inference_check) that send requests to it through the Kubernetes API server
          (C(transport=api_proxy), C(namespace), C(service), C(port), C(scheme)).
      type: dict
      returned: when the target is a ClusterIP Service
  sample:
    direct: false
    port_forward: {namespace: llm-d, service: optimized-baseline-epp, port: 80, local_port: 8000,
                   endpoint: "http://127.0.0.1:8000"}
    api_proxy: {transport: api_proxy, namespace: llm-d, service: optimized-baseline-epp, port: "80", scheme: http}
candidates:
  description:
    - What every mode tried found (one mode unless O(mode=auto)) and why it was or was not used.
  returned: success
  type: list
  elements: dict
  contains:
    mode:
      description: The mode.
      type: str
    usable:
      description: Whether it found an endpoint.
      type: bool
    endpoint:
      description: The endpoint it found, if any.
      type: str
    source:
      description: The object it found it on, if any.
      type: dict
    reason:
      description: V(used), why it was not used, or what it saw instead of an endpoint.
      type: str
    warnings:
      description: Its warnings.
      type: list
      elements: str
warnings:
  description:
    - Things to know about the endpoint, also shown as warnings. Several gateways (which was chosen and
      why), a Gateway not C(Programmed), a mode still waiting for an address, Istio's status port, a Route
      without a long enough C(haproxy.router.openshift.io/timeout), an Ingress address the seed's query
      would miss.
    - Returned through Ansible's own warnings, so the key is absent when there is nothing to warn about.
  returned: when there is something to warn about
  type: list
  elements: str
"""

from ansible_collections.llmd.verify.plugins.module_utils._endpoint import ENDPOINT_ARG_SPEC, resolve_endpoint
from ansible_collections.llmd.verify.plugins.module_utils._module import k8s_module, run_module


DEFINITION = k8s_module(ENDPOINT_ARG_SPEC, resolve_endpoint)


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
