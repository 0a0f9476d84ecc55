#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: verify_report
short_description: Write the report of an llm-d verification as JSON, JUnit XML and Markdown
version_added: 0.1.0
description:
  - Writes the results of a verification run (the endpoint, the served models and every check with its
    result, timing and likely cause) into a directory of the cluster's own, as C(report.json), C(junit.xml)
    (one test case per check, readable by CI systems) and C(report.md).
  - Each cluster writes under O(dest)C(/<cluster>/), so that clusters verified in one run never write into
    the same file; M(llmd.verify.verify_summary) then sums them up beside those directories.
  - Returns the same run and a short summary to print at the end of a play.
  - Writing the report never fails because a check failed; the caller decides what a failed check means.
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
      - Base directory of the reports. With O(layout=per_cluster) the files go into O(dest)C(/)O(cluster)C(/),
        with O(layout=flat) into O(dest) itself. Directories are created (mode C(0755)) when missing.
    type: path
    required: true
  layout:
    description:
      - V(per_cluster) writes the files into a directory named after O(cluster) under O(dest).
      - V(flat) writes them into O(dest) itself. It is for a run of one cluster and fails when
        O(clusters) names others, as their reports would overwrite each other.
    type: str
    choices: [per_cluster, flat]
    default: per_cluster
  clusters:
    description:
      - Every cluster of the run, for example V(ansible_play_hosts_all), so that O(layout=flat) can refuse
        a run of several.
    type: list
    elements: str
    default: []
  formats:
    description:
      - Which files to write.
    type: list
    elements: str
    choices: [json, junit, markdown]
    default: [json, junit, markdown]
  title:
    description:
      - Title of the report, also the first word of the summary.
    type: str
    default: llm-d verification
  cluster:
    description:
      - Name of the verified cluster, for example the inventory host. Names the JUnit test suite and,
        with O(layout=per_cluster), the directory of the files; it cannot contain C(/) or a backslash, nor be
        C(.), C(..) or the name of a summary file (C(junit.xml), C(summary.md), C(summary.json)).
    type: str
    default: localhost
  endpoint:
    description:
      - The endpoint that was checked, for example the result of M(llmd.verify.gateway_endpoint_info).
      - Its C(url) (or C(endpoint)) and C(mode) keys are shown.
    type: dict
    default: {}
  models:
    description:
      - Model ids the endpoint served.
    type: list
    elements: str
    default: []
  checks:
    description:
      - The checks in the order they ran.
      - Each has C(name), C(status) (V(passed), V(failed) or V(skipped)), C(time) in seconds, and optionally
        C(message), C(cause) (the likely cause of a failure) and C(details) (any data).
    type: list
    elements: dict
    default: []
  problems:
    description:
      - Problems found in the deployment (strings or dicts with a C(message)), listed in the report.
    type: list
    elements: raw
    default: []
  summarize:
    description:
      - Also write the summary of the run into O(dest), as M(llmd.verify.verify_summary) writes it, for a run
        of this one cluster (O(clusters) names no other); returned as RV(cluster_summary). It spares a play of
        one cluster the summary task. Fails when O(clusters) names other clusters, or with O(layout=flat).
    type: bool
    default: false
notes:
  - The JUnit file follows the schema that Jenkins, GitLab and GitHub Actions reporters read
    (C(testsuites/testsuite/testcase) with C(failure) and C(skipped)).
"""

EXAMPLES = r"""
- name: Write the report into reports/<host>/
  llmd.verify.verify_report:
    dest: "{{ playbook_dir }}/reports"
    cluster: "{{ inventory_hostname }}"
    clusters: "{{ ansible_play_hosts_all }}"
    endpoint: "{{ gateway }}"
    models: "{{ models.ids }}"
    checks:
      - name: models
        status: passed
        time: 0.042
      - name: completions
        status: failed
        time: 0.510
        message: HTTP 503 no healthy upstream
        cause: no decode pod is Ready
  register: report

- name: Print the summary
  ansible.builtin.debug:
    msg: "{{ report.summary }}"
"""

RETURN = r"""
dest:
  description: The directory the files were written into (or would be, in check mode).
  returned: always
  type: str
  sample: /tmp/reports/prod-east
files:
  description: Paths of the files written (or that would be written in check mode), by format.
  returned: always
  type: dict
  sample: {"json": "/tmp/reports/prod-east/report.json", "junit": "/tmp/reports/prod-east/junit.xml",
           "markdown": "/tmp/reports/prod-east/report.md"}
ok:
  description: Whether no check failed.
  returned: always
  type: bool
counts:
  description: Number of checks by status, and in total.
  returned: always
  type: dict
  sample: {"passed": 5, "failed": 1, "skipped": 0, "total": 6}
summary:
  description: A few lines to print at the end of a play.
  returned: always
  type: list
  elements: str
cluster_summary:
  description: With O(summarize), what M(llmd.verify.verify_summary) returns (C(files), C(ok), C(counts), C(summary), ...).
  returned: with O(summarize)
  type: dict
run:
  description: The whole run as written to C(report.json).
  returned: always
  type: dict
"""

import datetime

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._files import write_files
from ansible_collections.llmd.verify.plugins.module_utils._module import Definition, run_module
from ansible_collections.llmd.verify.plugins.module_utils._report import (
    LAYOUTS,
    RENDERERS,
    build_run,
    render_summary,
    report_dir,
)
from ansible_collections.llmd.verify.plugins.module_utils._summary import write_summary


def write_report(module):
    """The report's files in dest (and the run's summary beside them with summarize); the module's result."""
    params = module.params
    others = sorted(set(params["clusters"]) - set([params["cluster"]]))
    dest = report_dir(params["dest"], params["cluster"], params["layout"], params["clusters"])
    if params["summarize"] and params["layout"] == "flat":
        raise LlmdError("summarize needs layout=per_cluster: with layout=flat the summary's junit.xml would "
                        "overwrite the report's", hint="leave summarize off with layout=flat")
    if params["summarize"] and others:
        raise LlmdError("summarize is for a run of one cluster, but this run also verifies %s" % ", ".join(others),
                        hint="write the summary of several clusters with llmd.verify.verify_summary once all are done")
    endpoint = dict(params["endpoint"])
    endpoint.setdefault("url", endpoint.get("endpoint"))
    timestamp = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    run = build_run(params["title"], params["cluster"], endpoint, params["models"], params["checks"], params["problems"], timestamp)

    contents = dict((RENDERERS[fmt][0], RENDERERS[fmt][1](run)) for fmt in params["formats"])
    changed, paths = write_files(module, dest, contents)
    files = dict((fmt, paths[RENDERERS[fmt][0]]) for fmt in params["formats"])

    result = dict(dest=dest, files=files, ok=run["ok"], counts=run["counts"], summary=render_summary(run), run=run)
    if params["summarize"]:
        summary_changed, result["cluster_summary"] = write_summary(
            module, params["dest"], params["title"], [params["cluster"]], [{"run": run, "files": files}],
            [params["cluster"]], params["formats"], timestamp)
        changed = changed or summary_changed
    result["changed"] = changed
    return result


DEFINITION = Definition(dict(
    dest=dict(type="path", required=True),
    layout=dict(type="str", choices=list(LAYOUTS), default="per_cluster"),
    clusters=dict(type="list", elements="str", default=[]),
    formats=dict(type="list", elements="str", choices=list(RENDERERS), default=list(RENDERERS)),
    title=dict(type="str", default="llm-d verification"),
    cluster=dict(type="str", default="localhost"),
    endpoint=dict(type="dict", default={}),
    models=dict(type="list", elements="str", default=[]),
    checks=dict(type="list", elements="dict", default=[]),
    problems=dict(type="list", elements="raw", default=[]),
    summarize=dict(type="bool", default=False),
), write_report)


def main():
    run_module(DEFINITION)


if __name__ == "__main__":
    main()
