# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The summary across the clusters of one run: a row per cluster, and one JUnit testsuite per cluster.

The input is every cluster of the run (a play's hosts, in their order), the reports they wrote (results
of verify_report: its ``run`` and ``files``) and which clusters were still running when the summary is
made. A cluster without a report is a failed cluster, and its row says why there is none.
Pure functions: the module writes the files.
"""

from __future__ import annotations

import json
import math
import os

from ansible_collections.llmd.verify.plugins.module_utils._files import write_files
from ansible_collections.llmd.verify.plugins.module_utils._report import (
    SUMMARY_FILES,
    build_run,
    json_safe,
    render_junit_runs,
)

# Why a cluster has no report: (message, likely cause), as its failed "report" check says.
NO_REPORT_STOPPED = (
    "the host failed or was unreachable before its report was written",
    "Ansible stopped this host before the report (a task that failed outside the checks, or an unreachable "
    "host): read the play's output for it",
)
NO_REPORT = (
    "no report was written for this cluster",
    "the report was not written for it (the report step was skipped or did not run): read the play's output for it",
)
MESSAGE_WIDTH = 200


def ttft_ms(run):
    """Time to first token of a run, in ms: from the first passed check that measured one, else None."""
    for check in run["checks"]:
        details = check.get("details")
        timings = details.get("timings") if isinstance(details, dict) else None
        if check["status"] != "passed" or not isinstance(timings, dict):
            continue
        try:
            value = float(timings.get("ttft_ms"))
        except (TypeError, ValueError, OverflowError):
            continue
        if math.isfinite(value):
            return round(value, 1)
    return None


def _normalized(run):
    """A run as verify_report built it, built again so that a hand-written one has every field too."""
    return build_run(run.get("title") or "", run.get("cluster") or "", dict(run.get("endpoint") or {})
                     if isinstance(run.get("endpoint"), dict) else {}, run.get("models"), run.get("checks"),
                     run.get("problems"), run.get("timestamp") or "")


def _missing_run(title, cluster, stopped, timestamp):
    message, cause = NO_REPORT_STOPPED if stopped else NO_REPORT
    check = {"name": "report", "status": "failed", "message": message, "cause": cause}
    return build_run(title, cluster, {}, [], [check], [], timestamp)


def _report_path(files, dest):
    path = files.get("markdown") or files.get("json") or files.get("junit") or ""
    if path and dest and os.path.isabs(path) and os.path.isabs(dest):
        relative = os.path.relpath(path, dest)
        if not relative.startswith(os.pardir):
            return relative
    return path


def build_summary(title, clusters, reports, active_clusters, timestamp, dest=""):
    """The summary of a run: every cluster with its result, endpoint, TTFT and failed checks, and the runs.

    ``clusters``: every cluster of the run, in order (reported clusters not among them are added after).
    ``reports``: results of verify_report (``run``, ``files``) or runs alone; those without a run are ignored.
    ``active_clusters``: clusters still running; None when unknown. ``dest``: where the summary goes, so that
    the rows can point at each cluster's report relative to it.
    """
    reported = {}
    for report in reports or []:
        run = report.get("run") if isinstance(report.get("run"), dict) else (report if "checks" in report else None)
        if not run or not run.get("cluster"):
            continue
        files = report.get("files") if isinstance(report.get("files"), dict) else {}
        reported[str(run["cluster"])] = (_normalized(run), files)
    names = list(dict.fromkeys([str(name) for name in clusters or []] + list(reported)))
    active = None if active_clusters is None else set(str(name) for name in active_clusters)
    rows, runs = [], []
    for name in names:
        if name in reported:
            run, files = reported[name]
        else:
            run, files = _missing_run(title, name, active is not None and name not in active, timestamp), {}
        runs.append(run)
        endpoint = run["endpoint"]
        rows.append({
            "cluster": name,
            "ok": run["ok"],
            "result": "passed" if run["ok"] else "failed",
            "reported": name in reported,
            "endpoint": endpoint.get("url") or "",
            "mode": endpoint.get("mode") or "",
            "ttft_ms": ttft_ms(run),
            "counts": run["counts"],
            "failed_checks": [dict((key, check[key]) for key in ("name", "message", "cause"))
                              for check in run["checks"] if check["status"] == "failed"],
            "report": _report_path(files, dest),
        })
    failed = [row["cluster"] for row in rows if not row["ok"]]
    return {
        "title": title,
        "timestamp": timestamp,
        "ok": not failed,
        "counts": {"clusters": len(rows), "passed": len(rows) - len(failed), "failed": len(failed)},
        "failed_clusters": failed,
        "clusters": rows,
        "runs": runs,
    }


def _verdict(summary):
    counts = summary["counts"]
    if not counts["clusters"]:
        return "no cluster was verified"
    if summary["ok"]:
        return "PASSED (all %d cluster(s) passed)" % counts["clusters"]
    return "FAILED (%d of %d cluster(s) failed: %s)" % (counts["failed"], counts["clusters"], ", ".join(summary["failed_clusters"]))


def _short(text):
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_WIDTH else text[:MESSAGE_WIDTH - 3] + "..."


def failure_texts(failed_checks):
    """One line per distinct failure: the checks that failed the same way share it (an unreachable cluster
    fails every check with the same message)."""
    groups = {}
    for check in failed_checks:
        groups.setdefault((_short(check["message"]) or "failed", check["cause"]), []).append(check["name"])
    texts = []
    for (message, cause), names in groups.items():
        text = "%s: %s" % (", ".join(names), message)
        if cause:
            text += " (likely cause: %s)" % cause
        texts.append(text)
    return texts


def _endpoint_text(row):
    if not row["endpoint"] and not row["mode"]:
        return "-"
    return "%s (%s)" % (row["endpoint"] or "-", row["mode"] or "-")


def _ttft_text(row):
    return "-" if row["ttft_ms"] is None else "%.1f ms" % row["ttft_ms"]


def _counts_text(counts):
    return "%d passed, %d failed, %d skipped" % (counts["passed"], counts["failed"], counts["skipped"])


def _md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_summary_markdown(summary):
    lines = [
        "# %s: %s" % (summary["title"], _verdict(summary)),
        "",
        "- time: %s" % summary["timestamp"],
        "",
        "| cluster | result | endpoint (mode) | TTFT | checks | failed checks and their causes | report |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary["clusters"]:
        failures = "<br>".join(_md_cell(text) for text in failure_texts(row["failed_checks"])) or "-"
        report = "[%s](%s)" % (_md_cell(row["report"]), row["report"].replace(" ", "%20")) if row["report"] else "-"
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            _md_cell(row["cluster"]), "passed" if row["ok"] else "**FAILED**", _md_cell(_endpoint_text(row)),
            _ttft_text(row), _counts_text(row["counts"]), failures, report))
    return "\n".join(lines) + "\n"


def render_summary_json(summary):
    document = dict((key, value) for key, value in summary.items() if key != "runs")
    return json.dumps(json_safe(document), indent=2, sort_keys=True, default=str) + "\n"


def render_summary_junit(summary):
    """One testsuites with one testsuite per cluster (each as in the cluster's own junit.xml)."""
    return render_junit_runs(summary["title"], summary["runs"])


def render_summary_lines(summary):
    """The few lines printed at the end of a play: the verdict, then one line per cluster."""
    lines = ["%s: %s" % (summary["title"], _verdict(summary))]
    for row in summary["clusters"]:
        line = "  [%s] %s: %s, TTFT %s, %s" % (
            "PASSED" if row["ok"] else "FAILED", row["cluster"], _endpoint_text(row), _ttft_text(row),
            _counts_text(row["counts"]))
        lines.append(line)
        lines.extend("      %s" % text for text in failure_texts(row["failed_checks"]))
    return lines


RENDERERS = {
    "json": (SUMMARY_FILES["json"], render_summary_json),
    "junit": (SUMMARY_FILES["junit"], render_summary_junit),
    "markdown": (SUMMARY_FILES["markdown"], render_summary_markdown),
}


def write_summary(module, dest, title, clusters, reports, active_clusters, formats, timestamp):
    """Write the summary files into dest; what verify_summary returns (files, ok, counts, clusters, summary)."""
    summary = build_summary(title, clusters, reports, active_clusters, timestamp, dest=dest)
    contents = dict((RENDERERS[fmt][0], RENDERERS[fmt][1](summary)) for fmt in formats)
    changed, paths = write_files(module, dest, contents)
    return changed, {"files": dict((fmt, paths[RENDERERS[fmt][0]]) for fmt in formats), "ok": summary["ok"],
                     "counts": summary["counts"], "failed_clusters": summary["failed_clusters"],
                     "clusters": summary["clusters"], "summary": render_summary_lines(summary)}
