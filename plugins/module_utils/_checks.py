# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The check records of a verification, made from what each check saw.

A record is what verify_report reads: ``{name, status (passed|failed|skipped), time (seconds), message,
cause, details}``. The check modules (verify_inference, pod_logs_info) return theirs; the verify role's
filters (plugins/filter/checks.py) make the ones that combine several results (the endpoint, the P/D proof)
and the record of a task that failed without one. Causes come from _diagnosis.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.llmd.verify.plugins.module_utils._diagnosis import (
    LOG_ERRORS_CAUSE,
    NOT_DISAGGREGATED_CAUSE,
)

# Keys of a module result that are Ansible's or too bulky to keep in a report.
_NOT_DETAILS = ("invocation", "item", "ansible_loop_var", "events", "checks", "check", "_ansible_no_log")


def record(name, status, message, time=0.0, cause="", details=None):
    return {"name": name, "status": status, "time": round(float(time or 0.0), 6), "message": message,
            "cause": cause, "details": details if details is not None else {}}


def details_of(result):
    """The result without Ansible's bookkeeping, as a record's details."""
    return dict((key, value) for key, value in (result or {}).items() if key not in _NOT_DETAILS)


def error_details(error):
    """An LlmdError as a failed module result would show it: msg, hint and its details."""
    details = dict(error.details, msg=error.msg)
    if error.hint:
        details["hint"] = error.hint
    return details


def failure_check(name, result):
    """The record of a task that failed before it could make its own (bad options, a crash, the rescue)."""
    result = result if isinstance(result, Mapping) else {"msg": str(result)}
    return record(name, "failed", str(result.get("msg") or "failed"), details=details_of(result))


def checks_of(result, name):
    """The records a task's result carries, else one failed (or skipped) record named name."""
    if not isinstance(result, Mapping):
        return [failure_check(name, result)]
    if result.get("checks"):
        return list(result["checks"])
    if result.get("check"):
        return [result["check"]]
    if result.get("skipped"):
        return []
    return [failure_check(name, result)]


# ---- inference --------------------------------------------------------------------------------------

def models_check(result, error=None):
    """GET /v1/models: the ids and the attempts it took, or the error."""
    if error is not None:
        return record("models", "failed", error.msg, time=error.details.get("elapsed"), details=error_details(error))
    return record("models", "passed", "%s after %s attempt(s)" % (", ".join(result["ids"]), result["attempts"]),
                  time=result.get("elapsed"), details=details_of(result))


def excused(check):
    """An optional check's failure: recorded as skipped, since the guide does not promise it yet."""
    if check["status"] != "failed":
        return check
    return dict(check, status="skipped", message="not expected to answer yet (%s)" % check["message"])


def inference_record(name, result, error=None):
    """A completion, chat or streamed check: the status and shape of the answer, or its TTFT and ITL."""
    details = error_details(error) if error is not None else details_of(result)
    seconds = ((details.get("timings") or {}).get("total_ms") or 0) / 1000.0
    if error is not None:
        return record(name, "failed", error.msg, seconds, details=details)
    timings = result.get("timings") or {}
    if name == "stream" and timings.get("ttft_ms") is not None:
        message = "TTFT %.1f ms, ITL p50 %s ms, %s tokens/s, finish_reason %s" % (
            timings["ttft_ms"], _dash(timings.get("itl_p50_ms")), _dash(timings.get("tokens_per_second")),
            _dash(result.get("finish_reason")))
    else:
        message = "HTTP %s, %s, finish_reason %s, %s tokens" % (
            _dash(result.get("status")), _dash(result.get("shape")), _dash(result.get("finish_reason")),
            _dash((result.get("usage") or {}).get("completion_tokens")))
    return record(name, "passed", message, seconds, details=details)


def _dash(value):
    return "-" if value is None else value


# ---- logs -------------------------------------------------------------------------------------------

def logs_check(name, role, result, failed_msg=None):
    """Error lines in a role's logs fail the check, the last one named (a traceback ends with its exception)."""
    details = {"matches": result.get("matches") or [], "counts": result.get("counts") or {},
               "dropped": result.get("dropped") or {}, "msg": failed_msg or ""}
    if result.get("match_count"):
        last = result["matches"][-1]
        message = "%d error line(s) in the %s logs, the last in %s/%s: %s" % (
            result["match_count"], role, last.get("pod", "?"), last.get("container", "?"),
            str(last.get("line", last.get("message", "")))[:200])
        return record(name, "failed", message, cause=LOG_ERRORS_CAUSE % role, details=details)
    if failed_msg:
        return record(name, "failed", failed_msg, details=details)
    message = "%d line(s) kept from %d pod(s), %d noise line(s) dropped" % (
        result.get("total_kept", 0), len(result.get("pods") or []), sum((result.get("dropped") or {}).values()))
    return record(name, "passed", message, details=details)


# ---- P/D --------------------------------------------------------------------------------------------

def prefill_check(result, metric):
    """Passed when a prefill pod's counter of metric moved between metrics_info's two reads."""
    result = result if isinstance(result, Mapping) else {}
    diff = result.get("diff") or {}
    moved = sorted(pod for pod, metrics in diff.items()
                   if isinstance(metrics, dict) and ((metrics.get(metric) or {}).get("delta") or 0) > 0)
    if moved:
        return record("prefill", "passed", "%s moved on %s" % (metric, ", ".join(moved)), details={"diff": diff})
    return record("prefill", "failed", "no prefill pod counted a request: %s"
                  % (result.get("msg") or "requests did not reach the prefill pods"),
                  cause=NOT_DISAGGREGATED_CAUSE, details={"diff": diff})
