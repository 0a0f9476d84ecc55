#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: verify_summary
short_description: Sum up the verification of several clusters in one Markdown table and one JUnit XML file
version_added: 0.1.0
description:
  - Writes the summary of one run over several clusters into a directory, beside the clusters' own report
    directories (M(llmd.verify.verify_report) with O(llmd.verify.verify_report#module:layout=per_cluster)).
  - C(summary.md) has a row per cluster with its result, endpoint and how it was found, the time to first
    token, and the failed checks with their likely causes; C(junit.xml) has one C(testsuite) per cluster,
    so that a CI system shows every cluster; C(summary.json) has the rows for scripts.
  - A cluster of O(clusters) without a report in O(reports) is a failed cluster; its row and its test suite
    say why it has none (it failed or was unreachable before its report was written).
  - Writing the summary never fails because a cluster failed; the caller decides what a failed cluster means.
  - Run it once per run, after every cluster is done (C(run_once) at the end of a play with the linear strategy).
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.attributes
  - llmd.verify.attributes.in_controller
attributes:
  check_mode:
    support: full
    details: In check mode the files are not written; C(changed) says whether they would change.
  diff_mode:
    support: none
options:
  dest:
    description:
      - Directory to write the summary files into, normally the O(llmd.verify.verify_report#module:dest) of
        the clusters' reports. It is created (mode C(0755)) when missing.
    type: path
    required: true
  clusters:
    description:
      - Every cluster of the run, in the order of the rows, for example V(ansible_play_hosts_all).
      - Clusters that have a report in O(reports) but are not listed here come after them.
    type: list
    elements: str
    default: []
  reports:
    description:
      - The results of M(llmd.verify.verify_report), one per cluster that wrote its report; their C(run) and
        C(files) are read, the other keys are ignored. A C(run) alone is taken too.
    type: list
    elements: dict
    default: []
  active_clusters:
    description:
      - The clusters still running when the summary is written, for example V(ansible_play_hosts).
      - A cluster of O(clusters) without a report that is not among them was stopped by Ansible (a failed task
        or an unreachable host); one that is among them just wrote no report. Unknown when omitted.
    type: list
    elements: str
  formats:
    description:
      - Which files to write.
    type: list
    elements: str
    choices: [json, junit, markdown]
    default: [json, junit, markdown]
  title:
    description:
      - Title of the summary, and the name of the JUnit C(testsuites).
    type: str
    default: llm-d verification
notes:
  - The JUnit file follows the same schema as the clusters' own (C(testsuites/testsuite/testcase), Jenkins'
    junit-10.xsd); publish it instead of the clusters' C(junit.xml) files, which it contains.
seealso:
  - module: llmd.verify.verify_report
"""

EXAMPLES = r"""
- name: Write each cluster's report into reports/<host>/
  llmd.verify.verify_report:
    dest: "{{ playbook_dir }}/reports"
    cluster: "{{ inventory_hostname }}"
    clusters: "{{ ansible_play_hosts_all }}"
    checks: "{{ checks }}"
  register: report

- name: Sum up every cluster in reports/summary.md and reports/junit.xml
  llmd.verify.verify_summary:
    dest: "{{ playbook_dir }}/reports"
    clusters: "{{ ansible_play_hosts_all }}"
    active_clusters: "{{ ansible_play_hosts }}"
    reports: >-
      {{ ansible_play_hosts_all | map('extract', hostvars) | selectattr('report.run', 'defined')
         | map(attribute='report') | list }}
  run_once: true
  register: summary

- name: Print it
  ansible.builtin.debug:
    msg: "{{ summary.summary }}"
  run_once: true
"""

RETURN = r"""
files:
  description: Paths of the files written (or that would be written in check mode), by format.
  returned: always
  type: dict
  sample: {"json": "/tmp/reports/summary.json", "junit": "/tmp/reports/junit.xml", "markdown": "/tmp/reports/summary.md"}
ok:
  description: Whether every cluster passed.
  returned: always
  type: bool
counts:
  description: Number of clusters, of those that passed and of those that failed.
  returned: always
  type: dict
  sample: {"clusters": 3, "passed": 2, "failed": 1}
failed_clusters:
  description: The clusters that failed, in the order of O(clusters).
  returned: always
  type: list
  elements: str
  sample: [staging]
clusters:
  description: One row per cluster, as in C(summary.json).
  returned: always
  type: list
  elements: dict
  contains:
    cluster:
      description: Name of the cluster.
      type: str
    ok:
      description: Whether no check failed on it.
      type: bool
    result:
      description: V(passed) or V(failed).
      type: str
    reported:
      description: Whether it wrote a report; a cluster without one is failed.
      type: bool
    endpoint:
      description: The URL its checks were sent to; empty when none was found.
      type: str
    mode:
      description: How the endpoint was found (for example V(gateway), V(standalone), V(given)).
      type: str
    ttft_ms:
      description: Time to first token of its streamed completion, in milliseconds; null when none was measured.
      type: float
    counts:
      description: Its checks by status, and in total.
      type: dict
    failed_checks:
      description: Its failed checks, each with C(name), C(message) and C(cause) (the likely cause).
      type: list
      elements: dict
    report:
      description: Its report (C(report.md) when written), relative to O(dest) when under it.
      type: str
summary:
  description: A few lines to print at the end of a play, the verdict first.
  returned: always
  type: list
  elements: str
"""

import datetime

from ansible_collections.llmd.verify.plugins.module_utils._module import Definition, run_module
from ansible_collections.llmd.verify.plugins.module_utils._summary import RENDERERS, write_summary


def summarize(module):
    params = module.params
    timestamp = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    changed, result = write_summary(module, params["dest"], params["title"], params["clusters"], params["reports"],
                                    params["active_clusters"], params["formats"], timestamp)
    return dict(result, changed=changed)


DEFINITION = Definition(dict(
    dest=dict(type="path", required=True),
    clusters=dict(type="list", elements="str", default=[]),
    reports=dict(type="list", elements="dict", default=[]),
    active_clusters=dict(type="list", elements="str"),
    formats=dict(type="list", elements="str", choices=list(RENDERERS), default=list(RENDERERS)),
    title=dict(type="str", default="llm-d verification"),
), summarize)


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
