"""Helpers of the rbac target: docs/rbac.yaml for a sandbox, an SA kubeconfig, and what a report must say.

    python rbac.py rules RBAC_YAML                                  # one rule id a line: ROLE:RESOURCES:VERBS
    python rbac.py manifests RBAC_YAML NAMESPACE [RULE_ID]          # the manifests for NAMESPACE, RULE_ID left out
    python rbac.py kubeconfig ADMIN_KUBECONFIG TOKEN_FILE OUT NAMESPACE   # a kubeconfig with only the SA's token
    python rbac.py refused REPORT_DIR CHECK VERB RESOURCE           # CHECK failed naming VERB and RESOURCE refused
    python rbac.py passed REPORT_DIR                                # every check passed

The secrets checks are ../setup_secrets/secret_scan.py's, shared with the faults target.
"""
import json
import os
import re
import subprocess
import sys

import yaml


def load(path):
    """The objects of a manifest file, the items of a List one by one."""
    with open(path) as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc]
    return [item for doc in docs for item in (doc["items"] if doc.get("kind") == "List" else [doc])]


def rule_id(role, rule):
    """ROLE:RESOURCE[.GROUP],...:VERB,... (the group only where it is not the core group)."""
    resources = ["%s.%s" % (r, g) if g else r for g in rule["apiGroups"] for r in rule["resources"]]
    return "%s:%s:%s" % (role["metadata"]["name"], ",".join(resources), ",".join(rule["verbs"]))


def roles(docs):
    return [doc for doc in docs if doc["kind"] in ("Role", "ClusterRole")]


def cmd_rules(path):
    for role in roles(load(path)):
        for rule in role["rules"]:
            print(rule_id(role, rule))


def cmd_manifests(path, namespace, drop=None):
    docs = load(path)
    found = drop is None
    for doc in docs:
        if "namespace" in doc["metadata"]:
            doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects") or []:
            subject["namespace"] = namespace
        if doc["kind"] in ("Role", "ClusterRole") and drop is not None:
            kept = [rule for rule in doc["rules"] if rule_id(doc, rule) != drop]
            found = found or len(kept) < len(doc["rules"])
            doc["rules"] = kept
    if not found:
        sys.exit("no rule %s in %s" % (drop, path))
    yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs}, sys.stdout, sort_keys=False)


def cmd_kubeconfig(admin, token_file, out, namespace):
    """The admin kubeconfig's server and CA, the ServiceAccount's token, nothing else (0600)."""
    with open(admin) as handle:
        config = yaml.safe_load(handle)
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
    with open(token_file) as handle:
        token = handle.read().strip()
    sa_config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "llmd-verify",
        "clusters": [cluster],
        "users": [{"name": "llmd-verify", "user": {"token": token}}],
        "contexts": [{"name": "llmd-verify",
                      "context": {"cluster": cluster["name"], "user": "llmd-verify", "namespace": namespace}}],
    }
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(sa_config, handle)


def read_report(report_dir):
    """report.json and junit.xml are both written, and junit.xml validates."""
    with open(os.path.join(report_dir, "report.json")) as handle:
        run = json.load(handle)
    junit = os.path.join(report_dir, "junit.xml")
    validate = os.path.join(os.environ["COLLECTION_ROOT"], "tests", "tools", "validate_junit.py")
    subprocess.run([sys.executable, validate, junit], check=True, stdout=subprocess.DEVNULL)
    return run, junit


def summary(run):
    return "\n".join("  %s %s: %s" % (c["status"], c["name"], c["message"]) for c in run["checks"])


def refusals(run):
    return [p["message"] for p in run.get("problems") or [] if p.get("rule") == "read_refused"]


def cmd_passed(report_dir):
    """Every check passed, and the stack inventory was refused nothing."""
    run, _junit = read_report(report_dir)
    assert run["ok"], "expected every check to pass:\n%s" % summary(run)
    assert not refusals(run), "reads refused with every rule of docs/rbac.yaml: %s" % refusals(run)
    print("passed:\n%s" % summary(run))


def cmd_warned(report_dir, verb, resource):
    """Every check passed, and the report's problems name exactly VERB RESOURCE as refused (stack_info's reads)."""
    run, _junit = read_report(report_dir)
    assert run["ok"], "a check failed without %s %s:\n%s" % (verb, resource, summary(run))
    refused = refusals(run)
    assert len(refused) == 1, "expected one refused read, %s %s, got: %s" % (verb, resource, refused)
    plural, _dot, group = resource.partition(".")
    assert refused[0].startswith("could not %s %s: " % (verb, resource)), refused[0]
    assert 'cannot %s resource "%s"' % (verb, plural) + (' in API group "%s"' % group if group else "") in refused[0], \
        refused[0]
    print("every check passed; the report names the refused read: %s" % refused[0][:300])


def cmd_can_i(rule):
    """kubectl auth can-i's arguments for each verb of a rule id, one verb a line: VERB RESOURCE [--subresource=S]."""
    _role, resources, verbs = rule.split(":")
    resource = resources.split(",")[0]
    name, _slash, sub = resource.partition("/")
    if sub:
        plural, _dot, group = name.partition(".")
        sub_part, _dot, group = sub.partition(".") if not group else (sub, "", group)
        name = "%s.%s" % (plural, group) if group else plural
        extra = " --subresource=%s" % sub_part
    else:
        extra = ""
    for verb in verbs.split(","):
        print("%s %s%s" % (verb, name, extra))


def cmd_refused(report_dir, check, verb, resource):
    """CHECK failed and its message names the refusal: ours ("may not VERB RESOURCE") or the API server's
    ("cannot VERB resource "RESOURCE"", its quotes escaped where the message quotes the API server's JSON body),
    with the resource as the API server names it (no API group)."""
    run, junit = read_report(report_dir)
    assert not run["ok"], "the run passed without %s %s:\n%s" % (verb, resource, summary(run))
    checks = {c["name"]: c for c in run["checks"]}
    check = next((name for name in check.split("|") if name in checks), check)  # CHECK may be A|B: either
    assert check in checks, "no check %s in:\n%s" % (check, summary(run))
    assert checks[check]["status"] == "failed", "check %s is %s:\n%s" % (check, checks[check]["status"], summary(run))
    message = checks[check]["message"]
    plural = re.escape(resource.split(".")[0])
    group = re.escape(resource.partition(".")[2])
    patterns = [r"may not %s %s\b" % (verb, re.escape(resource)),
                r'cannot %s resource \\?"%s\\?"' % (verb, plural) + (r' in API group \\?"%s\\?"' % group if group else "")]
    assert any(re.search(p, message) for p in patterns), (
        "check %s does not name %s %s refused: %s\n%s" % (check, verb, resource, message, summary(run)))
    with open(junit) as handle:
        assert check in handle.read(), "junit.xml has no %s" % check
    print("%s refused as expected: %s" % (check, message[:300]))


COMMANDS = {"rules": cmd_rules, "manifests": cmd_manifests, "kubeconfig": cmd_kubeconfig, "passed": cmd_passed,
            "refused": cmd_refused, "warned": cmd_warned, "can-i": cmd_can_i}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
