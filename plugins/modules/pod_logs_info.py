#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pod_logs_info
short_description: Read and filter the logs of many llm-d pods at once, like stern
version_added: 0.1.0
description:
  - Reads the logs of every selected pod and container in parallel, as the C(stern) tool that llm-d's docs
    recommend does, and returns the lines merged in time order.
  - Selects pods by O(role) (the C(llm-d.ai/role) label of llm-d's decode and prefill pods), by
    O(label_selectors), or by name with O(pods). Unlike M(kubernetes.core.k8s_log), it reads every pod a
    selector matches, not only the first.
  - Drops the noise that llm-d's docs filter out with C(grep -v), as named presets that are on by default,
    and applies user O(exclude) and O(include) regular expressions.
  - Fails when a line matches one of O(fail_on), returning each matching line with its pod and container.
  - With O(follow_seconds), keeps reading for a window, to capture what the pods log while a request is in
    flight (run the task with C(async) and send the request meanwhile).
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
      - Namespace of the pods.
    type: str
    required: true
  role:
    description:
      - Read the pods whose C(llm-d.ai/role) label has one of these values.
      - Combined with O(label_selectors) when both are given (a pod must match both).
      - One of O(role), O(label_selectors) or O(pods) is required.
    type: list
    elements: str
    choices: [decode, prefill]
  label_selectors:
    description:
      - Label selectors (C(key=value), C(key!=value), C(key in (a,b)), C(key), C(!key)) that a pod must all match.
    type: list
    elements: str
  pods:
    description:
      - Names of the pods to read. Each must exist.
      - Mutually exclusive with O(role) and O(label_selectors).
    type: list
    elements: str
  containers:
    description:
      - Names of the containers to read in each pod.
      - By default every container, including native sidecars (init containers with C(restartPolicy=Always),
        such as llm-d's C(routing-proxy)). Ordinary init containers are read only when named here.
      - A pod that lacks a named container is listed in RV(not_read); a name that no selected pod
        has is an error that lists each pod's containers.
    type: list
    elements: str
  since_seconds:
    description:
      - Only lines logged in the last this many seconds.
    type: int
  tail_lines:
    description:
      - Only the last this many lines of each container.
    type: int
  previous:
    description:
      - Read the log of each container's previous, terminated, instance (what a crash-looping container
        logged before it died). Containers that never restarted are listed in RV(not_read).
    type: bool
    default: false
  with_previous:
    description:
      - Read the current containers' logs and then, in the same run, those of their previous instances
        (as O(previous) reads them), returned under RV(previous); the module fails when either matches
        O(fail_on). What the M(llmd.verify.verify) role reads, since a crash-looping container logged its
        error before it died.
      - Mutually exclusive with O(previous) and O(follow_seconds).
    type: bool
    default: false
  timestamps:
    description:
      - Return each line's timestamp (from the kubelet) with it.
      - Lines are merged in time order in any case.
    type: bool
    default: true
  follow_seconds:
    description:
      - Keep reading (following) the logs for this many seconds, then return what was logged meanwhile.
      - The window is RV(window) by the clock of the host that runs the module; lines are kept by the
        timestamp the kubelet gave them, so a line logged in the window counts even if it arrives a moment
        later. Clock skew between that host and the nodes shifts the window by as much.
      - Without O(since_seconds) or O(tail_lines), only the lines logged during the window are returned;
        with them, the lines they select from before the window too.
      - Mutually exclusive with O(previous).
    type: float
  noise_filters:
    description:
      - The noise that llm-d's docs drop with C(grep -v), as presets named after what they drop and matched,
        as grep does, as fixed strings. Each is on by default; set it to V(false) to keep those lines. How
        many lines each dropped is in RV(dropped).
    type: dict
    default: {}
    suboptions:
      waiting_for_vllm:
        description:
          - The routing-proxy's C(waiting for vLLM to be ready) lines, logged while vLLM starts.
        type: bool
        default: true
      metrics_scrapes:
        description:
          - vLLM's access log lines for the metrics scraper, C(GET /metrics HTTP/1.1).
        type: bool
        default: true
      throughput_stats:
        description:
          - vLLM's periodic engine statistics line, C(Avg prompt throughput ...).
        type: bool
        default: true
  exclude:
    description:
      - Drop lines that match any of these regular expressions (Python C(re) syntax, searched anywhere in
        the message, the line without its timestamp).
    type: list
    elements: str
    default: []
  include:
    description:
      - When given, keep only lines that match at least one of these regular expressions.
      - Applied after the noise filters and O(exclude).
    type: list
    elements: str
    default: []
  fail_on:
    description:
      - Fail the task when a line matches any of these regular expressions, for example V(Traceback),
        V(CUDA out of memory) or V(ERROR). Matching lines are returned in RV(matches).
      - Every line read is checked, including those the filters drop.
    type: list
    elements: str
    default: []
  max_lines:
    description:
      - Return at most this many lines (the newest), and at most this many O(fail_on) matches.
        RV(truncated) and RV(lines_omitted) say when lines were left out. V(0) returns all.
      - Counts in RV(counts) and RV(dropped) always cover every line read.
    type: int
    default: 1000
notes:
  - Needs the RBAC permissions C(list) (or C(get), with O(pods)) on C(pods) and C(get) on C(pods/log) in
    O(namespace).
requirements:
  - kubernetes >= 30.1.0
seealso:
  - name: stern
    description: The multi-pod log tail that llm-d's docs use for the same purpose.
    link: https://github.com/stern/stern
  - module: kubernetes.core.k8s_log
"""

EXAMPLES = r"""
- name: vLLM logs of the decode pods, without the noise, failing on errors
  llmd.verify.pod_logs_info:
    namespace: llm-d
    role: [decode]
    containers: [vllm]
    since_seconds: 600
    fail_on: ["Traceback", "CUDA out of memory"]

- name: What killed a crash-looping decode pod
  llmd.verify.pod_logs_info:
    namespace: llm-d
    role: [decode]
    containers: [vllm]
    previous: true
    fail_on: ["CUDA out of memory"]
  register: crashed
  failed_when: false

- name: Follow decode and prefill pods while a request is in flight
  llmd.verify.pod_logs_info:
    namespace: llm-d
    role: [decode, prefill]
    follow_seconds: 10
    noise_filters:
      throughput_stats: false
  async: 60
  poll: 0
  register: following

- name: Send the request meanwhile
  ansible.builtin.uri:
    url: "{{ endpoint }}/v1/completions"
    method: POST
    body_format: json
    body: {model: random, prompt: "Hi", max_tokens: 8}

- name: Collect what the pods logged
  ansible.builtin.async_status:
    jid: "{{ following.ansible_job_id }}"
  register: followed
  until: followed.finished
  retries: 30
  delay: 1
"""

RETURN = r"""
pods:
  description: Names of the selected pods.
  returned: always
  type: list
  elements: str
  sample: ["ms-llm-d-modelservice-decode-8ff7fd5b-jvpbm"]
selector:
  description: The label selector used to find the pods; V(null) when O(pods) named them.
  returned: always
  type: str
  sample: llm-d.ai/role=decode
lines:
  description:
    - The kept lines, merged in time order (the newest O(max_lines) of them).
    - C(timestamp) is left out when O(timestamps=false).
  returned: always
  type: list
  elements: dict
  sample:
    - pod: ms-llm-d-modelservice-decode-8ff7fd5b-jvpbm
      container: vllm
      timestamp: "2026-11-27T03:00:00.123456789Z"
      message: 'INFO:     10.0.0.7:51234 - "POST /v1/completions HTTP/1.1" 200 OK'
total_kept:
  description: Number of lines kept by the filters, before O(max_lines).
  returned: always
  type: int
truncated:
  description: Whether O(max_lines) left kept lines out of RV(lines).
  returned: always
  type: bool
lines_omitted:
  description: How many kept lines O(max_lines) left out of RV(lines).
  returned: always
  type: int
window:
  description: The follow window, as UTC timestamps; V(null) without O(follow_seconds).
  returned: always
  type: dict
  sample: {"start": "2026-11-27T03:00:00.123456789Z", "end": "2026-11-27T03:00:10.123456789Z"}
counts:
  description: Lines read (in the window, with O(follow_seconds)) and kept, per pod and container.
  returned: always
  type: dict
  sample: {"ms-decode-8ff7fd5b-jvpbm": {"vllm": {"read": 120, "kept": 31}, "routing-proxy": {"read": 12, "kept": 2}}}
dropped:
  description:
    - How many lines each filter dropped, over all pods. A line is counted once, under the first filter
      that drops it, in this order - the noise presets, C(exclude), C(include) (lines matching no O(include)).
  returned: always
  type: dict
  sample: {"waiting_for_vllm": 10, "metrics_scrapes": 77, "throughput_stats": 2, "exclude": 0, "include": 0}
matches:
  description: Lines that matched O(fail_on), in time order (the first O(max_lines) of them), with the pattern that matched.
  returned: always
  type: list
  elements: dict
  sample:
    - pod: ms-llm-d-modelservice-decode-8ff7fd5b-jvpbm
      container: vllm
      timestamp: "2026-11-27T03:00:00.123456789Z"
      message: "ERROR 11-27 03:00:00 [core.py:700] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."
      pattern: CUDA out of memory
previous:
  description:
    - With O(with_previous), what the previous instances of the containers logged, with the keys above
      (RV(lines), RV(counts), RV(matches), RV(match_count), RV(not_read), ...).
  returned: with O(with_previous)
  type: dict
checks:
  description:
    - The check records of what was read, as M(llmd.verify.verify_report) reads them - C(logs-ROLE) (the roles of
      O(role) joined by C(-), or C(logs)) and, with O(with_previous), C(logs-ROLE-previous). A check fails when a
      line matched O(fail_on); its message names the last such line.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: logs-decode, status: passed, time: 0, message: "178 line(s) kept from 2 pod(s), 3 noise line(s) dropped",
       cause: "", details: {}}
match_count:
  description: Number of lines that matched O(fail_on) (RV(matches) holds at most O(max_lines) of them).
  returned: always
  type: int
not_read:
  description:
    - Containers not read, with the reason - a pod without a named container, no previous instance with
      O(previous), a container not started yet (the API server's message), a pod deleted after it was listed.
  returned: always
  type: list
  elements: dict
  sample:
    - pod: ms-decode-8ff7fd5b-jvpbm
      container: routing-proxy
      reason: previous terminated container "routing-proxy" in pod "ms-decode-8ff7fd5b-jvpbm" not found
"""

from ansible_collections.llmd.verify.plugins.module_utils._checks import logs_check
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    get_api_client,
)
from ansible_collections.llmd.verify.plugins.module_utils._module import Definition, run_module
from ansible_collections.llmd.verify.plugins.module_utils._pod_logs import gather_logs, fail_on_message

LOG_OPTIONS = dict(
    namespace=dict(type="str", required=True),
    role=dict(type="list", elements="str", choices=["decode", "prefill"]),
    label_selectors=dict(type="list", elements="str"),
    pods=dict(type="list", elements="str"),
    containers=dict(type="list", elements="str"),
    since_seconds=dict(type="int"),
    tail_lines=dict(type="int"),
    previous=dict(type="bool", default=False),
    with_previous=dict(type="bool", default=False),
    timestamps=dict(type="bool", default=True),
    follow_seconds=dict(type="float"),
    noise_filters=dict(type="dict", default={}, options=dict(
        waiting_for_vllm=dict(type="bool", default=True),
        metrics_scrapes=dict(type="bool", default=True),
        throughput_stats=dict(type="bool", default=True),
    )),
    exclude=dict(type="list", elements="str", default=[]),
    include=dict(type="list", elements="str", default=[]),
    fail_on=dict(type="list", elements="str", default=[]),
    max_lines=dict(type="int", default=1000),
)


def read_logs(module):
    """The logs, and a check record per read (current, previous); fails on a fail_on match, with the records."""
    params = module.params
    roles = "-".join(params["role"] or [])
    name = "logs-%s" % roles if roles else "logs"
    try:
        result = gather_logs(get_api_client(params), **dict((option, params[option]) for option in LOG_OPTIONS))
    except LlmdError as error:
        error.details.setdefault("checks", [logs_check(name, roles, {}, error.msg)])
        raise
    reads = [(name, result)] + ([(name + "-previous", result["previous"])] if "previous" in result else [])
    result["checks"] = [logs_check(check_name, roles or "selected", read) for check_name, read in reads]
    matched = [read for _name, read in reads if read["match_count"]]
    if matched:
        raise LlmdError(" / ".join(fail_on_message(read) for read in matched), **result)
    return result


DEFINITION = Definition(
    k8s_auth_argument_spec(**LOG_OPTIONS), read_logs, [("kubernetes", HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR)],
    required_one_of=[("role", "label_selectors", "pods")],
    mutually_exclusive=[("pods", "role"), ("pods", "label_selectors"), ("previous", "follow_seconds"),
                        ("with_previous", "previous"), ("with_previous", "follow_seconds")])


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
