# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input for the report and the summary (_report, _summary): any checks, problems and reports a play passes.

The checks carry what servers and logs said (control characters, NaN times, any details); a report given to
verify_summary may be hand-written. Every format is rendered, and each must be what its readers accept: strict
JSON, JUnit XML an XML parser reads, Markdown with one table row per check.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils import _report, _summary
from ansible_collections.llmd.verify.tests.unit.plugins.bad_input import JSON, PROPERTIES, TEXT

STATUSES = st.sampled_from(["passed", "failed", "skipped", "FAILED", "error"]) | JSON
TIMES = st.sampled_from([0, 1.5, "2", "nan", "inf", "-inf", float("nan"), float("inf"), -3, "x", None, True, 10 ** 400 // 10 ** 399])
CHECKS = st.lists(st.fixed_dictionaries({}, optional={
    "name": TEXT | JSON, "status": STATUSES, "time": TIMES | JSON, "message": TEXT | JSON, "cause": TEXT | JSON,
    "details": JSON | st.fixed_dictionaries({"status": st.integers(100, 599) | JSON, "msg": TEXT,
                                             "timings": st.fixed_dictionaries({"ttft_ms": TIMES | JSON})})}), max_size=5)
PROBLEMS = st.lists(JSON | st.fixed_dictionaries({"rule": TEXT, "severity": TEXT | JSON, "message": TEXT | JSON,
                                                  "hint": TEXT | JSON, "object": TEXT | JSON}), max_size=3)
ENDPOINTS = st.dictionaries(st.sampled_from(["url", "mode", "endpoint"]) | st.text(max_size=5), JSON, max_size=3)
MODELS = st.lists(TEXT, max_size=3)


def _strict_json(text):
    """json.loads refusing NaN and Infinity, which are no JSON (jq, Go and JavaScript refuse them)."""
    def refuse(constant):
        raise ValueError("%s is not JSON" % constant)
    return json.loads(text, parse_constant=refuse)


def _assert_every_format_reads(run):
    _strict_json(_report.render_json(run))
    root = ET.fromstring(_report.render_junit(run).encode("utf-8"))
    assert len(root.findall("./testsuite/testcase")) == len(run["checks"])
    table = [line for line in _report.render_markdown(run).splitlines() if line.startswith("| ")]
    assert len(table) == len(run["checks"]) + 1  # the header and one row per check
    assert all(isinstance(line, str) for line in _report.render_summary(run))


@PROPERTIES
@given(TEXT, TEXT, ENDPOINTS, MODELS, CHECKS, PROBLEMS)
def test_any_checks_and_problems_render_in_every_format(title, cluster, endpoint, models, checks, problems):
    run = _report.build_run(title, cluster, endpoint, models, checks, problems, "2026-12-02T00:00:00+00:00")
    assert all(math.isfinite(check["time"]) and check["time"] >= 0 for check in run["checks"])
    _assert_every_format_reads(run)


REPORTS = st.lists(st.dictionaries(st.sampled_from(["run", "files", "checks", "cluster"]), JSON | st.fixed_dictionaries(
    {"cluster": TEXT | JSON, "checks": CHECKS | JSON, "models": MODELS | JSON, "endpoint": ENDPOINTS | JSON,
     "problems": PROBLEMS | JSON, "title": TEXT | JSON, "timestamp": TEXT | JSON})), max_size=3)


@PROPERTIES
@given(TEXT, st.lists(TEXT, max_size=3), REPORTS, st.none() | st.lists(TEXT, max_size=2))
def test_any_reports_give_a_summary_in_every_format(title, clusters, reports, active):
    summary = _summary.build_summary(title, clusters, reports, active, "2026-12-02T00:00:00+00:00", dest="/tmp/r")
    _strict_json(_summary.render_summary_json(summary))
    ET.fromstring(_summary.render_summary_junit(summary).encode("utf-8"))
    assert _summary.render_summary_markdown(summary).startswith("# ")
    assert all(isinstance(line, str) for line in _summary.render_summary_lines(summary))
    for run in summary["runs"]:
        _assert_every_format_reads(run)


@pytest.mark.parametrize("seconds", ["nan", "inf", float("nan"), float("-inf"), "1e999"])
def test_a_time_that_is_not_a_finite_number_counts_as_zero_so_report_json_stays_json(seconds):
    run = _report.build_run("t", "c", {}, [], [{"name": "models", "status": "passed", "time": seconds}], [], "ts")
    assert run["checks"][0]["time"] == 0.0 and run["time"] == 0.0
    assert _strict_json(_report.render_json(run))["time"] == 0.0


def test_control_characters_of_a_log_or_server_message_do_not_break_junit_xml():
    message = "vllm said \x1b[31mERROR\x1b[0m \x00\x07 and \ud800 then stopped"
    run = _report.build_run("t", "c", {}, [], [{"name": "logs", "status": "failed", "message": message}], [], "ts")
    failure = ET.fromstring(_report.render_junit(run).encode("utf-8")).find("./testsuite/testcase/failure")
    assert failure.get("message") == "vllm said \ufffd[31mERROR\ufffd[0m \ufffd\ufffd and \ufffd then stopped"
