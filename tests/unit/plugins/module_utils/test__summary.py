# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from ansible_collections.llmd.verify.plugins.module_utils._report import build_run
from ansible_collections.llmd.verify.plugins.module_utils._summary import (
    NO_REPORT,
    NO_REPORT_STOPPED,
    build_summary,
    failure_texts,
    render_summary_json,
    render_summary_junit,
    render_summary_lines,
    render_summary_markdown,
    ttft_ms,
)

TIME = "2026-11-27T00:00:00+00:00"
UNREACHABLE = ("cannot reach the Kubernetes API server at https://127.0.0.1:9: Failed to establish a new "
               "connection: [Errno 111] Connection refused")


def healthy(cluster, mode="gateway", ttft=12.34):
    checks = [
        {"name": "endpoint", "status": "passed", "message": "http://10.0.0.1 (gateway, via direct)"},
        {"name": "models", "status": "passed", "time": 0.04},
        {"name": "stream", "status": "passed", "time": 0.2, "message": "TTFT %.1f ms" % ttft,
         "details": {"timings": {"ttft_ms": ttft, "total_ms": 200}}},
    ]
    run = build_run("llm-d verification", cluster, {"url": "http://10.0.0.1", "mode": mode}, ["random"], checks, [], TIME)
    return {"run": run, "files": {"markdown": "/ci/reports/%s/report.md" % cluster, "json": "/ci/reports/%s/report.json" % cluster},
            "changed": True, "invocation": {"module_args": {}}}


def unreachable(cluster):
    checks = [{"name": name, "status": "failed", "message": UNREACHABLE,
               "cause": "the cluster's Kubernetes API server does not answer"}
              for name in ("endpoint", "logs-decode", "logs-decode-previous")]
    run = build_run("llm-d verification", cluster, {"url": "", "mode": ""}, [], checks, [], TIME)
    return {"run": run, "files": {"markdown": "/ci/reports/%s/report.md" % cluster}}


def test_a_row_per_cluster_in_the_play_order_with_result_endpoint_ttft_and_causes():
    summary = build_summary("llm-d verification", ["east", "lab", "west"],
                            [healthy("west", "standalone", 7.0), unreachable("lab"), healthy("east")],
                            ["east", "lab", "west"], TIME, dest="/ci/reports")
    assert [row["cluster"] for row in summary["clusters"]] == ["east", "lab", "west"]
    assert summary["ok"] is False
    assert summary["counts"] == {"clusters": 3, "passed": 2, "failed": 1}
    assert summary["failed_clusters"] == ["lab"]
    east, lab, west = summary["clusters"]
    assert (east["result"], east["endpoint"], east["mode"], east["ttft_ms"]) == ("passed", "http://10.0.0.1", "gateway", 12.3)
    assert west["mode"] == "standalone" and west["ttft_ms"] == 7.0
    assert east["report"] == "east/report.md"  # relative to the summary's directory
    assert lab["result"] == "failed" and lab["reported"] is True and lab["ttft_ms"] is None
    assert [check["name"] for check in lab["failed_checks"]] == ["endpoint", "logs-decode", "logs-decode-previous"]
    assert [run["cluster"] for run in summary["runs"]] == ["east", "lab", "west"]


def test_a_cluster_without_a_report_is_failed_and_says_why():
    summary = build_summary("t", ["east", "gone", "quiet"], [healthy("east")], ["east", "quiet"], TIME)
    rows = dict((row["cluster"], row) for row in summary["clusters"])
    assert summary["failed_clusters"] == ["gone", "quiet"]
    assert rows["gone"]["reported"] is False
    assert rows["gone"]["failed_checks"] == [{"name": "report", "message": NO_REPORT_STOPPED[0], "cause": NO_REPORT_STOPPED[1]}]
    assert "unreachable" in rows["gone"]["failed_checks"][0]["message"]
    # Still running, but no report: not said to be unreachable.
    assert rows["quiet"]["failed_checks"][0]["message"] == NO_REPORT[0]
    # Unknown who is still running: no claim either.
    assert build_summary("t", ["gone"], [], None, TIME)["clusters"][0]["failed_checks"][0]["message"] == NO_REPORT[0]


def test_reports_of_clusters_not_listed_come_after_and_unusable_reports_are_ignored():
    reports = [healthy("b"), {"failed": True, "msg": "layout=flat ..."}, {"run": {"checks": []}}, healthy("a")["run"]]
    summary = build_summary("t", ["b"], reports, None, TIME)
    assert [row["cluster"] for row in summary["clusters"]] == ["b", "a"]
    assert summary["ok"] is True
    assert build_summary("t", [], [], None, TIME)["counts"] == {"clusters": 0, "passed": 0, "failed": 0}


def test_ttft_comes_from_a_passed_check_that_measured_it():
    run = healthy("a", ttft=41.26)["run"]
    assert ttft_ms(run) == 41.3
    failed = build_run("t", "a", {}, [], [{"name": "stream", "status": "failed", "details": {"timings": {"ttft_ms": 5}}},
                                          {"name": "chat", "status": "passed", "details": {"timings": {"ttft_ms": None}}},
                                          {"name": "x", "status": "passed", "details": ["not", "a", "dict"]}], [], TIME)
    assert ttft_ms(failed) is None


def test_checks_that_failed_the_same_way_share_one_line():
    checks = unreachable("lab")["run"]["checks"] + [{"name": "chat", "message": "HTTP 503", "cause": ""}]
    texts = failure_texts(checks)
    assert len(texts) == 2
    assert texts[0].startswith("endpoint, logs-decode, logs-decode-previous: cannot reach the Kubernetes API server")
    assert texts[0].endswith("(likely cause: the cluster's Kubernetes API server does not answer)")
    assert texts[1] == "chat: HTTP 503"
    assert len(failure_texts([{"name": "a", "message": "x" * 1000, "cause": ""}])[0]) < 220


def test_markdown_has_a_row_per_cluster_naming_the_broken_one_and_its_cause():
    summary = build_summary("llm-d verification", ["east", "lab|1"], [healthy("east"), unreachable("lab|1")], None, TIME,
                            dest="/ci/reports")
    text = render_summary_markdown(summary)
    assert text.startswith("# llm-d verification: FAILED (1 of 2 cluster(s) failed: lab|1)")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| cluster")]
    assert len(rows) == 2
    assert rows[0].startswith("| east | passed | http://10.0.0.1 (gateway) | 12.3 ms | 3 passed, 0 failed, 0 skipped | - |")
    assert "[east/report.md](east/report.md)" in rows[0]
    assert rows[1].startswith("| lab\\|1 | **FAILED** | - | - | 0 passed, 3 failed, 0 skipped | endpoint, logs-decode")
    assert "likely cause: the cluster's Kubernetes API server does not answer" in rows[1]
    assert "# llm-d verification: PASSED (all 1 cluster(s) passed)" in render_summary_markdown(
        build_summary("llm-d verification", ["east"], [healthy("east")], None, TIME))


def test_junit_has_one_suite_per_cluster_including_those_without_a_report():
    summary = build_summary("llm-d verification", ["east", "lab", "gone"], [healthy("east"), unreachable("lab")],
                            ["east", "lab"], TIME)
    root = ET.fromstring(render_summary_junit(summary).encode("utf-8"))
    suites = root.findall("testsuite")
    assert [suite.get("hostname") for suite in suites] == ["east", "lab", "gone"]
    assert root.get("tests") == "7" and root.get("failures") == "4"
    gone = suites[2].find("testcase")
    assert gone.get("name") == "report" and "unreachable" in gone.find("failure").get("message")


def test_json_and_lines():
    summary = build_summary("llm-d verification", ["east", "lab"], [healthy("east"), unreachable("lab")], None, TIME)
    document = json.loads(render_summary_json(summary))
    assert "runs" not in document and document["failed_clusters"] == ["lab"]
    lines = render_summary_lines(summary)
    assert lines[0] == "llm-d verification: FAILED (1 of 2 cluster(s) failed: lab)"
    assert lines[1] == "  [PASSED] east: http://10.0.0.1 (gateway), TTFT 12.3 ms, 3 passed, 0 failed, 0 skipped"
    assert lines[2].startswith("  [FAILED] lab: -, TTFT -")
    assert lines[3].startswith("      endpoint, logs-decode, logs-decode-previous: cannot reach")
