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
    result, timing and likely cause) into a directory, as C(report.json), C(junit.xml) (one test case per
    check, readable by CI systems) and C(report.md).
  - Returns the same run and a short summary to print at the end of a play.
  - Writing the report never fails because a check failed; the caller decides what a failed check means.
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.attributes
attributes:
  check_mode:
    support: full
    details: In check mode the files are not written; C(changed) says whether they would change.
  diff_mode:
    support: none
options:
  dest:
    description:
      - Directory to write the report files into. It is created (mode C(0755)) when missing.
    type: path
    required: true
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
      - Name of the verified cluster, for example the inventory host. Names the JUnit test suite.
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
notes:
  - The JUnit file follows the schema that Jenkins, GitLab and GitHub Actions reporters read
    (C(testsuites/testsuite/testcase) with C(failure) and C(skipped)).
"""

EXAMPLES = r"""
- name: Write the report
  llmd.verify.verify_report:
    dest: "{{ playbook_dir }}/reports/{{ inventory_hostname }}"
    cluster: "{{ inventory_hostname }}"
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
files:
  description: Paths of the files written (or that would be written in check mode), by format.
  returned: always
  type: dict
  sample: {"json": "/tmp/report/report.json", "junit": "/tmp/report/junit.xml", "markdown": "/tmp/report/report.md"}
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
run:
  description: The whole run as written to C(report.json).
  returned: always
  type: dict
"""

import datetime
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes
from ansible_collections.llmd.verify.plugins.module_utils._report import RENDERERS, build_run, render_summary


def _write_if_changed(module, path, content):
    """Write content to path atomically; return whether the file changed."""
    data = to_bytes(content)
    if os.path.exists(path):
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    if module.check_mode:
        return True
    handle, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".report-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.chmod(temp, 0o644)
    module.atomic_move(temp, path)
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            formats=dict(type="list", elements="str", choices=list(RENDERERS), default=list(RENDERERS)),
            title=dict(type="str", default="llm-d verification"),
            cluster=dict(type="str", default="localhost"),
            endpoint=dict(type="dict", default={}),
            models=dict(type="list", elements="str", default=[]),
            checks=dict(type="list", elements="dict", default=[]),
            problems=dict(type="list", elements="raw", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    endpoint = dict(params["endpoint"])
    endpoint.setdefault("url", endpoint.get("endpoint"))
    timestamp = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    run = build_run(params["title"], params["cluster"], endpoint, params["models"], params["checks"], params["problems"], timestamp)

    dest = params["dest"]
    changed = False
    if not os.path.isdir(dest):
        changed = True
        if not module.check_mode:
            os.makedirs(dest, 0o755)
    files = {}
    for fmt in params["formats"]:
        filename, render = RENDERERS[fmt]
        path = os.path.join(dest, filename)
        files[fmt] = path
        changed = _write_if_changed(module, path, render(run)) or changed

    module.exit_json(changed=changed, files=files, ok=run["ok"], counts=run["counts"], summary=render_summary(run), run=run)


if __name__ == "__main__":
    main()
