#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: port_forward
short_description: A background port-forward to a Service or Pod that survives pod restarts and never leaks
version_added: 0.1.0
description:
  - Starts (O(state=present)) or stops (O(state=absent)) a port-forward from a local port to a Service or a Pod
    through the Kubernetes API server, as C(kubectl port-forward -n NS service/GATEWAY 8000:80) does, but in the
    background. The forward outlives the task; the task returns once the local port accepts connections.
  - A Service is resolved as kubectl resolves it (its selector's ready pods, the service port mapped to the
    numeric or named target port). When that pod fails, new connections go to another ready pod (O(reconnect)).
  - The forward is a daemon process that ends itself after O(lifetime) seconds, or O(idle_timeout) seconds
    without a connection, even when the play that started it failed or was killed.
  - Its state (pid, ports, target and the pod reached now, never a credential) is kept in
    C($XDG_RUNTIME_DIR/llmd_verify/port_forward) or C(~/.ansible/llmd_verify/port_forward) (mode C(0700), files
    C(0600)). State of forwards whose process is gone is removed.
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.attributes
  - llmd.verify.k8s_auth
attributes:
  check_mode:
    support: full
    details: In check mode nothing is started or stopped; C(changed) says whether it would be.
  diff_mode:
    support: none
  action:
    support: full
    details:
      - When the task runs on the controller (a C(local) connection, without C(become), C(environment) or
        C(async)), the forward is started or stopped in the controller's process, without starting a module
        process; the daemon is then forked from the Ansible worker and keeps none of its descriptors but the
        listener, nor its signal handlers.
      - It runs as a module, on the task's host, otherwise; the daemon is forked from the module's process.
options:
  state:
    description:
      - V(present) starts the forward unless the same one runs and accepts connections (then C(changed=false));
        a forward that is not healthy, or was started with other settings, is replaced.
      - V(absent) stops the matching forwards (see O(all)).
    type: str
    choices: [present, absent]
    default: present
  namespace:
    description:
      - Namespace of the Service or Pod.
    type: str
    default: default
  service:
    description:
      - Name of the Service to forward to. Mutually exclusive with O(pod).
      - One of O(service) and O(pod) is required, except for O(state=absent) with O(all=true).
    type: str
  pod:
    description:
      - Name of the Pod to forward to. Mutually exclusive with O(service).
    type: str
  remote_port:
    description:
      - The Service port (number or name, mapped to its target port) or the Pod port (number or container port
        name) to forward to. Required for O(state=present).
    type: str
  local_port:
    description:
      - Local port to listen on. V(0) picks a free port (see RV(local_port)).
      - A forward is identified by its target (O(namespace), O(service) or O(pod), O(remote_port)), and by its
        local port when one is given. So O(state=present) finds a running forward to the same target on that
        port, whatever port it was started with (a forward started with V(0) is found by the port it got), and
        when the port is not given or V(0), on any port; only when none runs is a new one started, on V(8000)
        (the port of the llm-d guides) when not given. O(state=absent) stops the forwards to the target on that
        port, or on any port when not given or V(0).
      - A port held by another process is an error that names that process where it can be found.
    type: int
  address:
    description:
      - Local address to listen on. When not set, C(127.0.0.1) for a new forward, and a running forward to the same
        target is found whatever its address.
      - Setting an address that is not a loopback address gives a warning, since anyone who can reach it
        reaches the pod with your Kubernetes credentials.
    type: str
  backend:
    description:
      - V(python) relays each connection over its own WebSocket to the API server with the kubernetes Python
        client's credentials (no kubectl needed).
      - V(kubectl) runs C(kubectl port-forward) against the chosen pod and relays to it, for parity with what
        users run by hand. It reads credentials from a kubeconfig file only (O(kubeconfig) as a path, O(context));
        credentials given as options are refused, since they would have to go on kubectl's command line.
    type: str
    choices: [python, kubectl]
    default: python
  kubectl_binary:
    description:
      - The kubectl to run for O(backend=kubectl).
    type: str
    default: kubectl
  reconnect:
    description:
      - When the pod fails, send new connections to another ready pod of the Service (within about a second of
        one being ready), and replay what a client sent if the failed pod never answered it.
      - V(false) behaves as kubectl does; the forward ends when its pod is lost.
    type: bool
    default: true
  lifetime:
    description:
      - Seconds after which the forward ends itself, whatever happens to the play.
    type: int
    default: 3600
  idle_timeout:
    description:
      - Seconds without any open connection after which the forward ends itself. V(0) disables it.
    type: int
    default: 600
  wait_path:
    description:
      - An HTTP path (for example V(/v1/models)) to poll through the forward until it answers 2xx before the
        task returns. A forward whose path does not answer within O(wait_timeout) is stopped and the task fails.
    type: str
  wait_timeout:
    description:
      - Seconds to wait for O(wait_path).
    type: int
    default: 60
  all:
    description:
      - With O(state=absent), stop every forward this user started, whatever its target.
    type: bool
    default: false
notes:
  - The forward is a process on the host the task runs on; use it from that host (usually C(localhost)).
  - With O(backend=python), the kubelet's WebSocket port-forward protocol carries one connection per socket, so
    each local connection opens its own; one is kept open ahead to hide the handshake.
seealso:
  - module: llmd.verify.gateway_endpoint_info
"""

EXAMPLES = r"""
- name: Forward the gateway as the seed does (kubectl port-forward service/GATEWAY 8000:80)
  llmd.verify.port_forward:
    namespace: llm-d
    service: infra-inference-scheduling-inference-gateway-istio
    remote_port: "80"
    wait_path: /v1/models
  register: forward

- name: Use it
  ansible.builtin.uri:
    url: "{{ forward.endpoint }}/v1/models"

- name: A free local port, kubectl doing the forwarding, a short life
  llmd.verify.port_forward:
    namespace: llm-d
    pod: ms-llm-d-modelservice-decode-0
    remote_port: "8000"
    local_port: 0
    backend: kubectl
    lifetime: 600

- name: Stop it
  llmd.verify.port_forward:
    state: absent
    namespace: llm-d
    service: infra-inference-scheduling-inference-gateway-istio

- name: Stop every forward this user started
  llmd.verify.port_forward:
    state: absent
    all: true
"""

RETURN = r"""
endpoint:
  description: The URL of the forward.
  returned: state is present (in check mode only when the port is known)
  type: str
  sample: http://127.0.0.1:8000
local_port:
  description: The local port (the one picked when O(local_port=0)).
  returned: state is present
  type: int
  sample: 8000
address:
  description: The local address listened on.
  returned: state is present
  type: str
  sample: 127.0.0.1
pid:
  description: The forward's process.
  returned: state is present (null in check mode)
  type: int
pod:
  description: The pod the forward reaches now.
  returned: state is present (null in check mode)
  type: str
  sample: infra-inference-scheduling-inference-gateway-istio-7d9f8-abcde
pod_port:
  description: The pod port reached (the Service's target port resolved).
  returned: state is present and not check mode
  type: int
  sample: 80
namespace:
  description: Namespace of the target.
  returned: state is present
  type: str
target:
  description: What is forwarded to, as given.
  returned: state is present
  type: dict
  sample: {"kind": "service", "name": "gateway", "port": 80}
backend:
  description: The backend used.
  returned: state is present and not check mode
  type: str
reconnect:
  description: Whether the forward moves to another pod when its pod fails.
  returned: state is present and not check mode
  type: bool
reconnects:
  description: How many times the forward moved to another pod so far.
  returned: state is present and not check mode
  type: int
expires_at:
  description: When the forward ends itself at the latest (its lifetime), UTC.
  returned: state is present and not check mode
  type: str
  sample: "2026-11-27T04:00:00+00:00"
stopped:
  description: The forwards stopped (or that would be, in check mode), as returned when they were started.
  returned: state is absent
  type: list
  elements: dict
"""

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR
from ansible_collections.llmd.verify.plugins.module_utils._module import Definition, run_module
from ansible_collections.llmd.verify.plugins.module_utils._port_forward import ensure_absent, ensure_present


def forward(module):
    params = module.params
    if params["lifetime"] < 1 or params["idle_timeout"] < 0 or not 0 <= (params["local_port"] or 0) < 65536:
        raise LlmdError("lifetime must be at least 1, idle_timeout at least 0 and local_port within 0..65535")
    if params["state"] == "present":
        return ensure_present(params, check_mode=module.check_mode, warn=module.warn)
    return ensure_absent(params, check_mode=module.check_mode)


DEFINITION = Definition(
    k8s_auth_argument_spec(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        namespace=dict(type="str", default="default"),
        service=dict(type="str"),
        pod=dict(type="str"),
        remote_port=dict(type="str"),
        local_port=dict(type="int"),
        address=dict(type="str"),
        backend=dict(type="str", choices=["python", "kubectl"], default="python"),
        kubectl_binary=dict(type="str", default="kubectl"),
        reconnect=dict(type="bool", default=True),
        lifetime=dict(type="int", default=3600),
        idle_timeout=dict(type="int", default=600),
        wait_path=dict(type="str"),
        wait_timeout=dict(type="int", default=60),
        all=dict(type="bool", default=False),
    ),
    forward, [("kubernetes", HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR)],
    mutually_exclusive=[("service", "pod")],
    required_if=[("state", "present", ("service", "pod"), True), ("state", "present", ("remote_port",)),
                 ("all", False, ("service", "pod"), True)])


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
