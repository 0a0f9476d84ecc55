# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils._metrics import (
    diff_targets,
    group_by_name,
    parse_metrics,
    pod_metrics_port,
    pod_selector,
)

pytest.importorskip("prometheus_client")

VLLM = """\
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{finished_reason="stop",model_name="random"} 3.0
vllm:request_success_total{finished_reason="length",model_name="random"} 1.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="random"} 0.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="random"} 4.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="random"} 4.0
vllm:time_to_first_token_seconds_count{model_name="random"} 4.0
vllm:time_to_first_token_seconds_sum{model_name="random"} 0.2
"""


def test_filter_by_sample_family_and_pattern():
    samples, skipped = parse_metrics(VLLM, ["vllm:request_success_total"])
    assert skipped == 0
    assert group_by_name(samples) == {"vllm:request_success_total": [
        {"labels": {"finished_reason": "stop", "model_name": "random"}, "value": 3.0},
        {"labels": {"finished_reason": "length", "model_name": "random"}, "value": 1.0}]}
    assert {s["name"] for s in parse_metrics(VLLM, ["vllm:request_success"])[0]} == {"vllm:request_success_total"}
    names = {s["name"] for s in parse_metrics(VLLM, ["vllm:time_to_first_token_seconds"])[0]}
    assert names == {"vllm:time_to_first_token_seconds_bucket", "vllm:time_to_first_token_seconds_count",
                     "vllm:time_to_first_token_seconds_sum"}
    assert len(parse_metrics(VLLM, ["vllm:num_*"])[0]) == 1
    assert len(parse_metrics(VLLM)[0]) == 7


def test_a_bad_line_does_not_hide_the_rest():
    samples, skipped = parse_metrics(VLLM + "this is { not a metric\n", ["vllm:num_requests_running"])
    assert skipped == 1
    assert samples == [{"name": "vllm:num_requests_running", "labels": {"model_name": "random"}, "value": 0.0}]


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_parsing_never_raises(text):
    samples, skipped = parse_metrics(text)
    assert skipped >= 0 and all("name" in sample for sample in samples)


@given(st.lists(st.tuples(st.sampled_from(["a_total", "b", "vllm:x_total"]), st.sampled_from(["p", "q"]),
                          st.floats(min_value=0, max_value=1e6)), max_size=8))
def test_parse_then_group_round_trips_values(rows):
    text = "".join('%s{pod="%s"} %r\n' % row for row in rows)
    samples, skipped = parse_metrics(text)
    assert skipped == 0 or len({(name, pod) for name, pod, _v in rows}) < len(rows)  # duplicates are refused
    if skipped == 0:
        assert [(s["name"], s["labels"]["pod"], s["value"]) for s in samples] == [tuple(row) for row in rows]


def test_diff_between_two_reads():
    before = {"pod/prefill-0": {"metrics": {"vllm:request_success_total": [
        {"labels": {"finished_reason": "stop"}, "value": 3.0}]}}}
    after = {
        "pod/prefill-0": {"metrics": {"vllm:request_success_total": [
            {"labels": {"finished_reason": "stop"}, "value": 4.0}, {"labels": {"finished_reason": "length"}, "value": 2.0}]}},
        "pod/new": {"error": "HTTP 503"},
    }
    diff = diff_targets(before, after)
    assert diff == {"pod/prefill-0": {"vllm:request_success_total": {"delta": 3.0, "samples": [
        {"labels": {"finished_reason": "stop"}, "before": 3.0, "after": 4.0, "delta": 1.0},
        {"labels": {"finished_reason": "length"}, "before": 0.0, "after": 2.0, "delta": 2.0}]}}}


def pod(containers):
    return {"metadata": {"name": "p"}, "spec": {"containers": containers}}


def test_the_metrics_port_of_a_pod():
    assert pod_metrics_port(pod([{"name": "vllm", "args": ["--port", "8200"], "ports": []}])) == 8200
    assert pod_metrics_port(pod([{"name": "vllm", "command": ["vllm", "serve", "--port=8001"]}])) == 8001
    assert pod_metrics_port(pod([{"name": "other", "ports": [{"name": "metrics", "containerPort": 9090}]}])) == 9090
    assert pod_metrics_port(pod([])) == 8000
    assert pod_selector("prefill", ["llm-d.ai/guide=pd"]) == "llm-d.ai/guide=pd,llm-d.ai/role=prefill"
    assert pod_selector() is None
