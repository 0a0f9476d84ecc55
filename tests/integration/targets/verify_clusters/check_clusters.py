"""Assert on the reports of a verify.yml run over several clusters:

    python check_clusters.py REPORT_DIR NAME=STATUS[:WORDS] ...

One NAME=STATUS per host of the inventory, in its order. STATUS is passed, failed (a report that failed) or
unreported (failed before its report was written). WORDS must appear in the summary's row for NAME (its failed
checks and their causes), in summary.json and in summary.md. Every reported host has its own report under
REPORT_DIR/NAME/; the combined junit.xml holds one testsuite per host, in order; every junit.xml validates
against the JUnit schema CI systems read.
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

report_dir, expectations = sys.argv[1], [arg.split("=", 1) for arg in sys.argv[2:]]
names = [name for name, _status in expectations]
with open(os.path.join(report_dir, "summary.json")) as handle:
    summary = json.load(handle)
with open(os.path.join(report_dir, "summary.md")) as handle:
    markdown = handle.read()
rows = {row["cluster"]: row for row in summary["clusters"]}
assert [row["cluster"] for row in summary["clusters"]] == names, "rows %s, expected %s" % (list(rows), names)
junits = [os.path.join(report_dir, "junit.xml")]
for name, expected in expectations:
    status, _sep, words = expected.partition(":")
    row = rows[name]
    text = " ".join("%s %s %s" % (check["name"], check["message"], check["cause"]) for check in row["failed_checks"])
    line = next((line for line in markdown.splitlines() if line.startswith("| %s |" % name)), "")
    assert line, "no row for %s in summary.md:\n%s" % (name, markdown)
    assert row["result"] == ("passed" if status == "passed" else "failed"), "%s is %s: %s" % (name, row["result"], text)
    assert row["reported"] == (status != "unreported"), "%s reported: %s" % (name, row["reported"])
    if status == "passed":
        assert row["endpoint"] and row["mode"] and row["ttft_ms"] is not None, "%s: no endpoint, mode or TTFT: %s" % (name, row)
        assert "| %s | passed | %s (%s) | %.1f ms |" % (name, row["endpoint"], row["mode"], row["ttft_ms"]) in line, line
    else:
        assert "**FAILED**" in line and "likely cause: " in line, "summary.md does not name the cause for %s:\n%s" % (name, line)
        assert words.lower() in text.lower() and words.lower() in line.lower(), "%s does not say %r: %s" % (name, words, text)
    if row["reported"]:
        with open(os.path.join(report_dir, name, "report.json")) as handle:
            assert json.load(handle)["cluster"] == name, "%s/report.json is another cluster's" % name
        assert row["report"] == "%s/report.md" % name and "](%s/report.md)" % name in line, line
        junits.append(os.path.join(report_dir, name, "junit.xml"))
    else:
        assert not os.path.exists(os.path.join(report_dir, name)), "%s has a report directory" % name
assert summary["failed_clusters"] == [name for name, expected in expectations if not expected.startswith("passed")]
suites = ET.parse(junits[0]).getroot().findall("testsuite")
assert [suite.get("hostname") for suite in suites] == names, "junit.xml suites: %s" % [s.get("hostname") for s in suites]
validate = os.path.join(os.environ["COLLECTION_ROOT"], "tests", "tools", "validate_junit.py")
subprocess.run([sys.executable, validate] + junits, check=True)
print("summary as expected:\n" + markdown)
