# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""verify_report and verify_summary as a play of three clusters uses them: per-cluster directories, one summary."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

from ansible_collections.llmd.verify.plugins.modules import verify_report, verify_summary
from ansible_collections.llmd.verify.tests.unit.plugins.modules import module_runner

CLUSTERS = ["east", "west", "lab"]
PASSED = [{"name": "models", "status": "passed", "time": 0.1},
          {"name": "stream", "status": "passed", "time": 0.2, "details": {"timings": {"ttft_ms": 9.5}}}]
UNREACHABLE = "cannot reach the Kubernetes API server at https://127.0.0.1:9: Connection refused"
FAILED = [{"name": "endpoint", "status": "failed", "message": UNREACHABLE, "details": {"failed": True, "msg": UNREACHABLE}}]


def report(dest, cluster, checks, capsys, **args):
    args = dict({"dest": str(dest), "cluster": cluster, "clusters": CLUSTERS, "checks": checks,
                 "endpoint": {"url": "http://10.0.0.1", "mode": "gateway"}}, **args)
    return module_runner.run_module(verify_report, args, capsys)


def test_each_cluster_writes_into_its_own_directory_and_the_summary_sums_them_up(tmp_path, capsys):
    results = []
    for cluster, checks in (("east", PASSED), ("west", PASSED)):
        code, result = report(tmp_path, cluster, checks, capsys)
        assert code == 0 and result["dest"] == str(tmp_path / cluster)
        assert result["files"]["json"] == str(tmp_path / cluster / "report.json")
        results.append(result)
    code, result = report(tmp_path, "lab", FAILED, capsys)
    assert code == 0 and result["ok"] is False  # a failed check never fails the report
    results.append(result)
    assert sorted(os.listdir(str(tmp_path))) == ["east", "lab", "west"]
    for cluster in CLUSTERS:
        with open(str(tmp_path / cluster / "report.json")) as handle:
            assert json.load(handle)["cluster"] == cluster

    code, summary = module_runner.run_module(verify_summary, {
        "dest": str(tmp_path), "clusters": CLUSTERS + ["gone"], "active_clusters": CLUSTERS, "reports": results}, capsys)
    assert code == 0 and summary["changed"] is True
    assert summary["ok"] is False and summary["failed_clusters"] == ["lab", "gone"]
    assert summary["counts"] == {"clusters": 4, "passed": 2, "failed": 2}
    assert summary["clusters"][0]["ttft_ms"] == 9.5 and summary["clusters"][0]["report"] == "east/report.md"
    assert summary["summary"][0].startswith("llm-d verification: FAILED (2 of 4 cluster(s) failed: lab, gone)")
    assert summary["files"] == {"json": str(tmp_path / "summary.json"), "junit": str(tmp_path / "junit.xml"),
                                "markdown": str(tmp_path / "summary.md")}
    root = ET.parse(str(tmp_path / "junit.xml")).getroot()
    assert [suite.get("hostname") for suite in root.findall("testsuite")] == CLUSTERS + ["gone"]
    with open(str(tmp_path / "summary.md")) as handle:
        text = handle.read()
    assert "| lab | **FAILED** |" in text and "likely cause: the cluster's Kubernetes API server does not answer" in text


def test_flat_writes_into_dest_for_one_cluster_and_refuses_several(tmp_path, capsys):
    code, result = report(tmp_path, "east", PASSED, capsys, layout="flat", clusters=["east"])
    assert code == 0 and result["dest"] == str(tmp_path) and os.path.exists(str(tmp_path / "report.json"))
    code, result = report(tmp_path / "shared", "east", PASSED, capsys, layout="flat")
    assert code == 1 and result["failed"] is True
    assert "3 clusters (east, lab, west)" in result["msg"] and "overwrite each other" in result["msg"]
    assert "per_cluster" in result["hint"]
    assert not os.path.exists(str(tmp_path / "shared"))


def test_check_mode_writes_nothing(tmp_path, capsys):
    code, result = report(tmp_path / "r", "east", PASSED, capsys, _ansible_check_mode=True)
    assert code == 0 and result["changed"] is True
    code, summary = module_runner.run_module(verify_summary, {
        "dest": str(tmp_path / "r"), "clusters": ["east"], "reports": [result], "_ansible_check_mode": True}, capsys)
    assert code == 0 and summary["changed"] is True and summary["ok"] is True
    assert not os.path.exists(str(tmp_path / "r"))


def test_a_run_of_one_cluster_writes_its_summary_with_its_report(tmp_path, capsys):
    code, result = report(tmp_path, "east", FAILED, capsys, clusters=["east"], summarize=True)
    assert code == 0
    summary = result["cluster_summary"]
    assert summary["files"]["markdown"] == str(tmp_path / "summary.md") and not summary["ok"]
    assert summary["failed_clusters"] == ["east"]
    assert "east/report.md" in (tmp_path / "summary.md").read_text()
    assert len(ET.parse(str(tmp_path / "junit.xml")).getroot().findall("testsuite")) == 1
    # the same summary as verify_summary writes from the report
    _code, alone = module_runner.run_module(verify_summary, {"dest": str(tmp_path / "alone"), "clusters": ["east"],
                                                             "reports": [result]}, capsys)
    assert alone["summary"][0] == summary["summary"][0] and alone["counts"] == summary["counts"]


def test_summarize_refuses_a_run_of_several_clusters_and_the_flat_layout(tmp_path, capsys):
    code, result = report(tmp_path, "east", PASSED, capsys, clusters=["east", "west"], summarize=True)
    assert code == 1 and "also verifies west" in result["msg"] and not os.path.exists(str(tmp_path / "east"))
    code, result = report(tmp_path, "east", PASSED, capsys, clusters=["east"], layout="flat", summarize=True)
    assert code == 1 and "layout=per_cluster" in result["msg"]
