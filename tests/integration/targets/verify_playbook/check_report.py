"""Assert on a verify.yml report: python check_report.py REPORT_DIR passed|failed [CHECK=WORDS ...] [mode=M]

CHECK=WORDS: the check named CHECK has the expected status (failed when the run is expected to fail,
passed otherwise) and WORDS appear in its message or likely cause. mode=M: the endpoint was found by
mode M. Also validates junit.xml against the JUnit schema CI systems read.
"""
import json
import os
import subprocess
import sys

report_dir, verdict, expectations = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(os.path.join(report_dir, "report.json")) as handle:
    run = json.load(handle)
checks = {check["name"]: check for check in run["checks"]}
summary = "\n".join("%s %s: %s | %s" % (c["status"], c["name"], c["message"], c["cause"]) for c in run["checks"])
assert run["ok"] == (verdict == "passed"), "expected the run to be %s:\n%s" % (verdict, summary)
for expectation in expectations:
    key, _sep, words = expectation.partition("=")
    if key == "mode":
        assert run["endpoint"]["mode"] == words, "endpoint mode %s, expected %s" % (run["endpoint"]["mode"], words)
        continue
    assert key in checks, "no check %s in:\n%s" % (key, summary)
    check = checks[key]
    want = "failed" if verdict == "failed" else "passed"
    assert check["status"] == want, "check %s is %s, expected %s:\n%s" % (key, check["status"], want, summary)
    text = (check["message"] + " " + check["cause"]).lower()
    assert words.lower() in text, "check %s does not say %r:\n%s" % (key, words, summary)
validate = os.path.join(os.environ["COLLECTION_ROOT"], "tests", "tools", "validate_junit.py")
subprocess.run([sys.executable, validate, os.path.join(report_dir, "junit.xml")], check=True)
print("report as expected:\n" + summary)
