# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check records: the messages and causes the report shows, made from what each check saw."""

from __future__ import annotations

from ansible_collections.llmd.verify.plugins.module_utils._checks import (
    checks_of,
    excused,
    failure_check,
    logs_check,
    models_check,
    prefill_check,
)
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError

FIELDS = {"name", "status", "time", "message", "cause", "details"}


def test_models_record_passed_and_failed():
    passed = models_check({"ids": ["a", "b"], "attempts": 2, "elapsed": 1.5, "invocation": {}})
    assert passed["message"] == "a, b after 2 attempt(s)" and passed["time"] == 1.5
    assert "invocation" not in passed["details"]
    failed = models_check(None, LlmdError("not ready", hint="wait", status=503, elapsed=3.0))
    assert set(failed) == FIELDS and failed["status"] == "failed" and failed["time"] == 3.0
    assert failed["details"] == {"status": 503, "elapsed": 3.0, "msg": "not ready", "hint": "wait"}


def test_an_optional_failure_is_skipped_with_its_message_kept():
    check = excused({"name": "chat", "status": "failed", "message": "HTTP 404", "time": 0, "cause": "", "details": {}})
    assert check["status"] == "skipped" and check["message"] == "not expected to answer yet (HTTP 404)"
    assert excused(dict(check, status="passed"))["status"] == "passed"


def test_logs_record_names_the_last_error_line_and_its_cause():
    matches = [{"pod": "p", "container": "vllm", "message": "first"}, {"pod": "p", "container": "vllm", "message": "OOM"}]
    check = logs_check("logs-decode", "decode", {"match_count": 2, "matches": matches})
    assert check["status"] == "failed"
    assert check["message"] == "2 error line(s) in the decode logs, the last in p/vllm: OOM"
    assert check["cause"] == "the decode pods logged errors: read them in the report"
    kept = logs_check("logs-decode", "decode", {"total_kept": 5, "pods": ["a", "b"], "dropped": {"x": 2, "y": 1}})
    assert kept["message"] == "5 line(s) kept from 2 pod(s), 3 noise line(s) dropped"
    refused = logs_check("logs-decode", "decode", {}, "pods is forbidden")
    assert refused["status"] == "failed" and refused["message"] == "pods is forbidden"


def test_prefill_record_passes_only_when_a_counter_moved():
    metric = "vllm:request_success_total"
    moved = prefill_check({"diff": {"p1": {metric: {"delta": 2}}, "p2": {metric: {"delta": 0}}}}, metric)
    assert moved["status"] == "passed" and moved["message"] == "%s moved on p1" % metric
    still = prefill_check({"diff": {"p1": {metric: {"delta": 0}}}}, metric)
    assert still["status"] == "failed" and "not disaggregated" in still["cause"]
    refused = prefill_check({"failed": True, "msg": "forbidden"}, metric)
    assert refused["message"] == "no prefill pod counted a request: forbidden"


def test_records_of_any_result():
    record = {"name": "x", "status": "passed", "time": 0, "message": "", "cause": "", "details": {}}
    assert checks_of({"checks": [record]}, "inference") == [record]
    assert checks_of({"check": record}, "inference") == [record]
    assert checks_of({"skipped": True}, "inference") == []
    made = checks_of({"failed": True, "msg": "Unsupported parameters"}, "inference")
    assert made[0]["name"] == "inference" and made[0]["message"] == "Unsupported parameters"
    assert failure_check("task", "not a dict")["message"] == "not a dict"
