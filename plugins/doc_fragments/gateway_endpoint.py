# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Options of M(llmd.verify.gateway_endpoint_info) and the llmd.verify.gateway_endpoint lookup
    (ENDPOINT_ARG_SPEC in plugins/module_utils/_endpoint.py)."""

    DOCUMENTATION = r"""
options:
  namespace:
    description:
      - Namespace of the llm-d deployment.
    type: str
    required: true
  mode:
    description:
      - How the endpoint is exposed.
      - V(port_forward) the gateway Service, to be forwarded with M(llmd.verify.port_forward); the endpoint is
        C(http://127.0.0.1:<local_port>) as in the seed's C(kubectl port-forward service/<gateway> 8000:80).
        The Service is O(gateway_service), else one labelled C(gateway.networking.k8s.io/gateway-name) for an
        existing Gateway, else one named like the seed's pattern C(.*-inference-gateway(-.*\)?$), the first
        by name when several match.
      - V(gateway) the first address in the Gateway's C(status.addresses), on its HTTP listener's port.
      - V(service) the gateway Service's LoadBalancer ingress IP or hostname, or a node address and the
        NodePort.
      - V(ingress) the Ingress's C(status.loadBalancer.ingress[0]) IP or hostname (or its rule's host),
        C(https) when it has C(tls).
      - V(route) the OpenShift Route's host, C(https) when it has TLS.
      - V(standalone) the EPP Service C(<guide>-epp) that fronts HTTP itself in today's llm-d guides (no
        Gateway); its HTTP port is found by name and protocol, never the gRPC (9002) or metrics (9090) port.
      - V(cluster) the gateway (or standalone EPP) Service's in-cluster DNS name, for plays that run in a pod.
      - V(auto) tries V(route), V(ingress), V(gateway), V(service), V(port_forward), V(standalone) in this
        order and uses the first that finds an endpoint; a Gateway address that only answers inside the
        cluster is skipped, and V(cluster) is reported but never chosen. The module's C(candidates) say
        what every mode found and why it was or was not used.
    type: str
    default: auto
    choices: [auto, port_forward, gateway, service, ingress, route, standalone, cluster]
  gateway_service:
    description:
      - Name of the gateway Service, instead of discovering it.
    type: str
  gateway_name:
    description:
      - Name of the Gateway, instead of discovering it; also selects that Gateway's Service.
    type: str
  ingress_name:
    description:
      - Name of the Ingress, instead of discovering it (the one whose backend is the gateway Service).
    type: str
  route_name:
    description:
      - Name of the OpenShift Route, instead of discovering it (the one to the gateway or EPP Service).
    type: str
  epp_service:
    description:
      - Name of the standalone EPP Service, instead of discovering it (a Service named C(*-epp) or
        C(*-epp-standalone) with an HTTP port).
    type: str
  local_port:
    description:
      - Local port of the port-forward that O(mode=port_forward) (and the module's C(reach.port_forward)) describe.
    type: int
    default: 8000
  cluster_domain:
    description:
      - The cluster's DNS domain, for O(mode=cluster).
    type: str
    default: cluster.local
  wait_timeout:
    description:
      - Seconds to wait for an address to be assigned (cloud load balancers take minutes), polling every
        2 seconds; then fail saying what is still missing. V(0) does not wait.
      - With O(mode=auto), waits while a mode earlier in the order has no address yet, then uses the first
        usable one.
    type: int
    default: 0
"""
