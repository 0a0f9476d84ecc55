# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.llmd.verify.plugins.modules import pod_logs_info  # noqa: E402
from ansible_collections.llmd.verify.tests.unit.plugins.modules import module_runner  # noqa: E402
# FakePodLogsApi is served by the pod_logs_api fixture of tests/unit/conftest.py.
from ansible_collections.llmd.verify.tests.unit.fake_pod_logs_api import pod, stamp  # noqa: E402

OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."
PODS = [pod("decode-a", sidecars=["routing-proxy"]), pod("decode-b", sidecars=["routing-proxy"])]
LOGS = {
    ("decode-a", "vllm"): [(stamp(1), "ready"), (stamp(2), 'INFO:     1.2.3.4:5 - "GET /metrics HTTP/1.1" 200 OK')],
    ("decode-a", "routing-proxy"): [(stamp(0), '"waiting for vLLM to be ready"')],
    ("decode-b", "vllm"): [(stamp(3), "ERROR oops"), (stamp(4), OOM)],
    ("decode-b", "routing-proxy"): [],
}


def run_module(args, capsys):
    return module_runner.run_module(pod_logs_info, args, capsys)


@pytest.fixture
def api(pod_logs_api):
    return pod_logs_api(PODS, LOGS, selections={"llm-d.ai/role=decode": ["decode-a", "decode-b"]})


def test_reads_filters_and_reports_unchanged(api, capsys):
    code, result = run_module({"kubeconfig": api.kubeconfig(), "namespace": "llm-d", "role": "decode"}, capsys)
    assert code == 0 and result["changed"] is False
    assert [line["message"] for line in result["lines"]] == ["ready", "ERROR oops", OOM]
    assert result["dropped"] == {"waiting_for_vllm": 1, "metrics_scrapes": 1, "throughput_stats": 0,
                                 "exclude": 0, "include": 0}


def test_a_preset_switched_off_in_the_dict(api, capsys):
    code, result = run_module({"kubeconfig": api.kubeconfig(), "namespace": "llm-d", "pods": ["decode-a"],
                               "noise_filters": {"metrics_scrapes": False}}, capsys)
    assert code == 0
    assert result["dropped"]["metrics_scrapes"] == 0 and result["dropped"]["waiting_for_vllm"] == 1


def test_fail_on_fails_the_task_with_the_matches(api, capsys):
    code, result = run_module({"kubeconfig": api.kubeconfig(), "namespace": "llm-d", "role": ["decode"],
                               "fail_on": ["CUDA out of memory", "ERROR"]}, capsys)
    assert code == 1 and result["failed"] is True
    assert result["msg"] == "fail_on matched 2 lines: decode-b/vllm: ERROR oops | decode-b/vllm: " + OOM
    assert [m["pattern"] for m in result["matches"]] == ["ERROR", "CUDA out of memory"]
    assert result["lines"]  # what was read is returned with the failure


def test_a_user_error_is_a_message_not_a_traceback(api, capsys):
    code, result = run_module({"kubeconfig": api.kubeconfig(), "namespace": "llm-d", "role": ["decode"],
                               "containers": ["sidecar"]}, capsys)
    assert code == 1
    assert result["msg"].startswith("container sidecar not found in any selected pod")
    assert "exception" not in result and "hint" in result


def test_one_way_to_select_pods_is_required(capsys):
    code, result = run_module({"namespace": "llm-d"}, capsys)
    assert code == 1 and "one of the following is required: role, label_selectors, pods" in result["msg"]
