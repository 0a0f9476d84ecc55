# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.llmd.verify.plugins.module_utils import _report
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._report import (
    build_run,
    render_json,
    render_junit,
    render_junit_runs,
    render_markdown,
    render_summary,
    report_dir,
)

CHECKS = [
    {"name": "models", "status": "passed", "time": 0.04},
    {"name": "completions", "status": "failed", "time": "0.5", "message": "HTTP 503 no healthy upstream",
     "cause": "no decode pod is Ready", "details": {"status": 503}},
    {"name": "chat", "status": "skipped", "message": "not expected for this guide"},
    {"name": "weird|name", "status": "bogus", "time": "NaN?"},
]


def make_run(checks=None):
    return build_run("llm-d verification", "prod-east", {"url": "http://10.0.0.1", "mode": "gateway"},
                     ["random"], CHECKS if checks is None else checks, [], "2026-11-27T00:00:00+00:00")


def test_counts_and_verdict():
    run = make_run()
    assert run["counts"] == {"passed": 1, "failed": 2, "skipped": 1, "total": 4}
    assert run["ok"] is False
    # An unknown status is a failure, and an unparsable time is zero, not an exception.
    assert run["checks"][3]["status"] == "failed"
    assert run["checks"][3]["time"] == 0.0
    assert make_run([{"name": "models", "status": "passed", "time": 1}])["ok"] is True


def test_json_round_trips():
    run = make_run()
    assert json.loads(render_json(run)) == json.loads(json.dumps(run))


def test_junit_has_one_testcase_per_check_with_failures_and_skips():
    root = ET.fromstring(render_junit(make_run()).encode("utf-8"))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "2" and suite.get("skipped") == "1"
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == ["models", "completions", "chat", "weird|name"]
    assert cases[1].find("failure").get("message") == "HTTP 503 no healthy upstream"
    assert "no decode pod is Ready" in cases[1].find("failure").text
    assert cases[2].find("skipped") is not None
    assert float(cases[1].get("time")) == 0.5


def test_markdown_escapes_pipes_and_names_the_cause():
    text = render_markdown(make_run())
    assert "# llm-d verification: FAILED" in text
    assert "weird\\|name" in text
    assert "likely cause: no decode pod is Ready" in text


def test_summary_lines():
    lines = render_summary(make_run())
    assert lines[0].startswith("llm-d verification prod-east: FAILED (1 passed, 2 failed, 1 skipped)")
    assert any("[FAILED] completions" in line and "likely cause" in line for line in lines)


def test_report_dir_gives_each_cluster_its_own_directory():
    assert report_dir("/ci/artifacts", "prod-east") == "/ci/artifacts/prod-east"
    assert report_dir("/ci/artifacts", "prod-east", "per_cluster", ["prod-east", "staging"]) == "/ci/artifacts/prod-east"
    # Two clusters never share a directory, whatever dest is: it is always a base.
    assert report_dir("/ci", "a", clusters=["a", "b"]) != report_dir("/ci", "b", clusters=["a", "b"])


def test_report_dir_flat_is_for_one_cluster_only():
    assert report_dir("/ci/artifacts", "prod-east", "flat") == "/ci/artifacts"
    assert report_dir("/ci/artifacts", "prod-east", "flat", ["prod-east"]) == "/ci/artifacts"
    with pytest.raises(LlmdError) as caught:
        report_dir("/ci/artifacts", "prod-east", "flat", ["prod-east", "staging", "lab"])
    assert "3 clusters (lab, prod-east, staging)" in caught.value.msg
    assert "overwrite each other" in caught.value.msg
    assert "per_cluster" in caught.value.hint and "/ci/artifacts/<cluster>" in caught.value.hint


@pytest.mark.parametrize("cluster", ["", ".", "..", "a/b", "../etc", "a\\b", "junit.xml", "summary.md", "summary.json"])
def test_report_dir_refuses_names_that_are_no_directory_of_their_own(cluster):
    with pytest.raises(LlmdError) as caught:
        report_dir("/ci/artifacts", cluster)
    assert "cannot name a directory of its own" in caught.value.msg


def test_report_dir_refuses_an_unknown_layout():
    with pytest.raises(LlmdError):
        report_dir("/ci", "a", "nested")


def test_junit_of_several_runs_has_one_suite_per_cluster_and_summed_totals():
    east = make_run()
    west = build_run("llm-d verification", "prod-west", {}, [], [{"name": "models", "status": "passed", "time": 1}], [],
                     "2026-11-27T00:00:00+00:00")
    root = ET.fromstring(render_junit_runs("llm-d verification", [east, west]).encode("utf-8"))
    assert [suite.get("name") for suite in root.findall("testsuite")] == ["llmd.verify prod-east", "llmd.verify prod-west"]
    assert root.get("name") == "llm-d verification"
    assert root.get("tests") == "5" and root.get("failures") == "2"
    assert root.get("skipped") is None  # not allowed on testsuites by junit-10.xsd
    # One run alone renders as it always did.
    assert render_junit(east) == render_junit_runs("llmd.verify prod-east", [east])


def test_a_failed_check_is_explained_by_the_stack_problem_behind_it():
    problems = [{"rule": "no_ready_decode", "severity": "error", "object": "Deployment/ms-decode",
                 "message": "no decode pod is Ready: vllm is crash-looping", "hint": "lower --max-model-len"}]
    checks = [{"name": "models", "status": "failed", "message": "not ready",
               "details": {"status": 503, "error": {"status": 503, "body": "no healthy upstream"},
                           "not_ready": "no healthy upstream", "msg": "no healthy upstream"}},
              {"name": "endpoint", "status": "passed"}]
    explained, passed = _report.normalize_checks(checks, problems)
    assert explained["explained_by"]["rule"] == "no_ready_decode"
    assert "crash-looping" in explained["cause"] and "lower --max-model-len" in explained["cause"]
    assert "explained_by" not in passed


def test_a_failure_no_object_explains_says_so_and_keeps_the_http_cause():
    checks = [{"name": "chat", "status": "failed", "message": "HTTP 400", "details": {"status": 400, "msg": "bad"}}]
    problems = [{"rule": "epp_metrics_need_token", "severity": "info", "object": "Service/x-epp",
                 "message": "metrics need a token", "hint": ""}]
    (check,) = _report.normalize_checks(checks, problems)
    assert check["explained_by"] == _report.NO_OBJECT_EXPLAINS
