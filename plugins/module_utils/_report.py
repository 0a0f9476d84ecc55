# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a verification run as JSON, JUnit XML and Markdown, and as a short summary.

A run is a dict: ``title``, ``cluster``, ``endpoint`` ({url, mode, ...}), ``models`` (ids) and
``checks``, each ``{name, status (passed|failed|skipped), time (seconds), message, cause, details}``.
Pure functions: the module writes the files.
"""

from __future__ import annotations

import json
import math
import os
import re
import xml.etree.ElementTree as ET

from ansible_collections.llmd.verify.plugins.module_utils._diagnosis import likely_cause
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._stack_rules import explaining_problem

NO_OBJECT_EXPLAINS = "no object explains this"

STATUSES = ("passed", "failed", "skipped")
# per_cluster: each cluster writes into <dest>/<cluster>/; flat: into <dest> itself, for a run of one cluster.
LAYOUTS = ("per_cluster", "flat")
# Characters XML 1.0 cannot hold, even escaped (control characters, lone surrogates): a log line or a server's
# message may carry them (terminal colours, NUL), and one of them makes the whole junit.xml unreadable.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# The files of the summary across clusters, by format; they sit beside the clusters' directories.
SUMMARY_FILES = {"json": "summary.json", "junit": "junit.xml", "markdown": "summary.md"}


def report_dir(dest, cluster, layout="per_cluster", clusters=None):
    """The directory a cluster's report goes into, refusing any layout where two clusters share one.

    ``clusters`` are every cluster of the run (a play's hosts); with the flat layout there may be only one.
    """
    if layout not in LAYOUTS:
        raise LlmdError("unknown report layout %r" % layout, hint="use one of %s" % ", ".join(LAYOUTS))
    if layout == "flat":
        others = sorted(set(clusters or []) - set([cluster]))
        if others:
            every = sorted(set(others) | set([cluster]))
            raise LlmdError(
                "layout=flat writes the report of %s straight into %s, but this run verifies %d clusters (%s): "
                "their reports would overwrite each other" % (cluster, dest, len(every), ", ".join(every)),
                hint="leave the layout at per_cluster (llmd_report_layout in the roles), which writes each "
                     "cluster's report into %s, or verify one cluster (--limit)" % os.path.join(dest, "<cluster>"))
        return dest
    if (not cluster or cluster in (".", "..") or cluster in SUMMARY_FILES.values()
            or "/" in cluster or "\\" in cluster or "\0" in cluster):
        raise LlmdError("the cluster name %r cannot name a directory of its own under %s" % (cluster, dest),
                        hint="name the inventory host without '/' or '\\', and not '.', '..' or the name of "
                             "a summary file (%s)" % ", ".join(sorted(SUMMARY_FILES.values())))
    return os.path.join(dest, cluster)


def normalize_checks(checks, problems=None):
    """Return the checks with every field present and typed, in their order.

    A failed check's ``cause`` is the stack_info problem that explains it (``problems``: stack_info's, the
    objects' own account), else what its HTTP answer suggests (_diagnosis); ``explained_by`` names the problem
    (rule, object, hint), or says that no object explains it when stack_info ran.
    """
    stack_problems = [p for p in problems or [] if isinstance(p, dict) and "rule" in p]
    result = []
    for index, check in enumerate(checks if isinstance(checks, list) else []):
        if not isinstance(check, dict):  # a hand-written report given to verify_summary
            check = {"message": "not a check: %s" % str(check)[:200]}
        status = str(check.get("status") or "failed").lower()
        if status not in STATUSES:
            status = "failed"
        try:
            seconds = float(check.get("time") or 0.0)
        except (TypeError, ValueError, OverflowError):
            seconds = 0.0
        seconds = max(seconds, 0.0) if math.isfinite(seconds) else 0.0  # NaN and Infinity are no JSON
        details = check.get("details") if check.get("details") is not None else {}
        explained_by = None
        if status == "failed" and stack_problems:
            problem = explaining_problem(details, stack_problems)
            explained_by = ({"rule": problem["rule"], "object": problem.get("object", ""),
                             "message": problem.get("message", ""), "hint": problem.get("hint", "")}
                            if problem else NO_OBJECT_EXPLAINS)
        cause = check.get("cause") or ""
        if isinstance(explained_by, dict):
            cause = "%s (%s)" % (explained_by["message"], explained_by["hint"]) if explained_by["hint"] else \
                explained_by["message"]
        elif not cause and status == "failed":
            cause = likely_cause(details)
        entry = {
            "name": str(check.get("name") or "check-%d" % (index + 1)),
            "status": status,
            "time": round(seconds, 6),
            "message": str(check.get("message") or ""),
            "cause": str(cause),
            "details": details,
        }
        if explained_by is not None:
            entry["explained_by"] = explained_by
        result.append(entry)
    return result


def tally(checks):
    """Count the checks by status."""
    counts = dict((status, 0) for status in STATUSES)
    for check in checks:
        counts[check["status"]] += 1
    counts["total"] = len(checks)
    return counts


def build_run(title, cluster, endpoint, models, checks, problems, timestamp):
    """Assemble the run document that every format is rendered from."""
    problems = problems if isinstance(problems, list) else []
    checks = normalize_checks(checks, problems)
    counts = tally(checks)
    return {
        "title": str(title),
        "cluster": str(cluster),
        "timestamp": str(timestamp),
        "endpoint": endpoint if isinstance(endpoint, dict) else {},
        "models": [str(model) for model in models] if isinstance(models, list) else [],
        "problems": problems,
        "checks": checks,
        "counts": counts,
        "ok": counts["failed"] == 0,
        "time": round(sum(check["time"] for check in checks), 6),
    }


def json_safe(value):
    """value with every NaN and Infinity (a check's details may hold them) as null: they are no JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return dict((key, json_safe(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def render_json(run):
    return json.dumps(json_safe(run), indent=2, sort_keys=True, default=str) + "\n"


def _junit_totals(name, counts, seconds):
    return {
        "name": name,
        "tests": str(counts["total"]),
        "failures": str(counts["failed"]),
        "errors": "0",
        "time": "%.3f" % seconds,
    }


def add_junit_suite(root, run):
    """Append the testsuite of one run (one cluster) to a testsuites element: one testcase per check."""
    counts = run["counts"]
    suite_name = "llmd.verify %s" % run["cluster"] if run["cluster"] else "llmd.verify"
    totals = _junit_totals(suite_name, counts, run["time"])
    # Jenkins' junit-10.xsd allows `skipped` on testsuite but not on testsuites.
    suite = ET.SubElement(root, "testsuite", dict(totals, skipped=str(counts["skipped"]), timestamp=run["timestamp"],
                                                  hostname=run["cluster"] or "localhost"))
    properties = ET.SubElement(suite, "properties")
    endpoint = run["endpoint"]
    for key in ("url", "mode"):
        if endpoint.get(key):
            ET.SubElement(properties, "property", {"name": "endpoint.%s" % key, "value": str(endpoint[key])})
    if run["models"]:
        ET.SubElement(properties, "property", {"name": "models", "value": ",".join(run["models"])})
    classname = "llmd.verify.%s" % (run["cluster"] or "localhost")
    for check in run["checks"]:
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": check["name"], "time": "%.3f" % check["time"]})
        if check["status"] == "failed":
            failure = ET.SubElement(case, "failure", {"message": check["message"] or "failed", "type": "llmd.verify.CheckFailed"})
            failure.text = _details_text(check)
        elif check["status"] == "skipped":
            ET.SubElement(case, "skipped", {"message": check["message"] or "skipped"})
        elif check["message"]:
            ET.SubElement(case, "system-out").text = check["message"]
    return suite


def render_junit_runs(name, runs):
    """JUnit XML of several runs: one testsuite per cluster under one testsuites, totals summed."""
    counts = dict((key, sum(run["counts"][key] for run in runs)) for key in STATUSES + ("total",))
    root = ET.Element("testsuites", _junit_totals(name, counts, sum(run["time"] for run in runs)))
    for run in runs:
        add_junit_suite(root, run)
    ET.indent(root)
    # Markup never holds such characters, so replacing them in the whole document only touches the texts.
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + NOT_XML.sub("\ufffd", ET.tostring(root, encoding="unicode")) + "\n"


def render_junit(run):
    """JUnit XML as CI systems read it: one testsuite per cluster, one testcase per check."""
    return render_junit_runs("llmd.verify %s" % run["cluster"] if run["cluster"] else "llmd.verify", [run])


def _details_text(check):
    lines = [check["message"]]
    if check["cause"]:
        lines.append("likely cause: %s" % check["cause"])
    if check["details"]:
        lines.append(json.dumps(check["details"], indent=2, sort_keys=True, default=str))
    return "\n".join(line for line in lines if line)


def _md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(run):
    counts = run["counts"]
    verdict = "PASSED" if run["ok"] else "FAILED"
    endpoint = run["endpoint"]
    lines = [
        "# %s: %s" % (run["title"], verdict),
        "",
        "- cluster: %s" % (run["cluster"] or "localhost"),
        "- endpoint: %s (mode: %s)" % (endpoint.get("url") or "-", endpoint.get("mode") or "-"),
        "- models: %s" % (", ".join(run["models"]) or "-"),
        "- checks: %d passed, %d failed, %d skipped" % (counts["passed"], counts["failed"], counts["skipped"]),
        "- time: %s" % run["timestamp"],
        "",
        "| check | result | time (s) | details |",
        "|---|---|---|---|",
    ]
    for check in run["checks"]:
        detail = check["message"]
        if check["cause"]:
            detail = "%s (likely cause: %s)" % (detail, check["cause"])
        lines.append("| %s | %s | %.3f | %s |" % (_md_cell(check["name"]), check["status"], check["time"], _md_cell(detail)))
    if run["problems"]:
        lines.extend(["", "## Problems found in the objects (stack_info)", ""])
        lines.extend("- %s" % _md_cell(_problem_text(problem)) for problem in run["problems"])
    return "\n".join(lines) + "\n"


def _problem_text(problem):
    if not isinstance(problem, dict):
        return str(problem)
    text = "%s%s" % ("[%s] " % problem["severity"] if problem.get("severity") else "", problem.get("message", problem))
    return "%s (hint: %s)" % (text, problem["hint"]) if problem.get("hint") else text


def render_summary(run):
    """The few lines printed at the end of a play."""
    counts = run["counts"]
    endpoint = run["endpoint"]
    lines = [
        "%s %s: %s (%d passed, %d failed, %d skipped)" % (
            run["title"], run["cluster"] or "localhost", "PASSED" if run["ok"] else "FAILED",
            counts["passed"], counts["failed"], counts["skipped"]),
        "endpoint: %s (mode: %s)" % (endpoint.get("url") or "-", endpoint.get("mode") or "-"),
        "models: %s" % (", ".join(run["models"]) or "-"),
    ]
    for check in run["checks"]:
        line = "  [%s] %s (%.3f s)" % (check["status"].upper(), check["name"], check["time"])
        if check["message"]:
            line += ": %s" % check["message"]
        if check["status"] == "failed" and check["cause"]:
            line += " -- likely cause: %s" % check["cause"]
        lines.append(line)
    return lines


RENDERERS = {
    "json": ("report.json", render_json),
    "junit": ("junit.xml", render_junit),
    "markdown": ("report.md", render_markdown),
}
