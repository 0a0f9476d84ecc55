"""playbooks/verify.yml over three clusters against the same play over one of them, in one run.

Three sandboxes of the sim scenario (the real control plane, llm-d-inference-sim, EPP and Envoy), one inventory
host each. The play runs alternately with --limit to the first host and over all three, ROUNDS times each, every
run with its own -e llmd_report_dir (per-host reports and the summary across them), and the medians are compared
side by side (this machine is noisy). The hosts run in parallel (forks), so three should cost little more than one.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = 3
CLUSTERS = ("east", "west", "lab")
GOAL = 1.6


def _timed(argv, env):
    started = time.monotonic()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return time.monotonic() - started


def _inventory(work, sandboxes):
    lines = ["all:", "  vars:", "    ansible_connection: local",
             "    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"", "  hosts:"]
    for name, sandbox in zip(CLUSTERS, sandboxes):
        with open(os.path.join(sandbox, "state.json")) as handle:
            namespace = json.load(handle)["namespace"]
        lines += ["    %s:" % name, "      llmd_kubeconfig: %s" % os.path.join(sandbox, "kubeconfig"),
                  "      llmd_namespace: %s" % namespace, "      llmd_guide: simulated-accelerators"]
    path = os.path.join(work, "clusters.yml")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def main():
    work = tempfile.mkdtemp(prefix="llmd-bench-clusters-")
    sandboxes = []
    try:
        # One after the other: three control planes starting at once on a busy machine time out.
        for name in CLUSTERS:
            sandbox = os.path.join(work, "sandbox-%s" % name)
            sandboxes.append(sandbox)
            subprocess.run(["llmd-sandbox", "up", "--scenario", "sim", "--dir", sandbox, "--lifetime", "900",
                            "--watch-pid", str(os.getpid())], check=True, stdout=subprocess.DEVNULL)
        inventory = _inventory(work, sandboxes)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
        playbook = ["ansible-playbook", os.path.join(ROOT, "playbooks", "verify.yml"), "-i", inventory]
        one, three = [], []
        for round_ in range(ROUNDS):
            one.append(_timed(playbook + ["--limit", CLUSTERS[0], "-e", "llmd_report_dir=%s/one-%d" % (work, round_)], env))
            three.append(_timed(playbook + ["-e", "llmd_report_dir=%s/three-%d" % (work, round_)], env))
        for round_ in range(ROUNDS):
            with open(os.path.join(work, "three-%d" % round_, "summary.json")) as handle:
                assert json.load(handle)["counts"] == {"clusters": 3, "passed": 3, "failed": 0}
        one_median, three_median = statistics.median(one), statistics.median(three)
        print("verify.yml, 1 cluster:   median %.2f s  (runs: %s)" % (one_median, ", ".join("%.2f" % t for t in one)))
        print("verify.yml, 3 clusters:  median %.2f s  (runs: %s)" % (three_median, ", ".join("%.2f" % t for t in three)))
        print("3 clusters / 1 cluster: %.2fx  (goal: under %.1fx)" % (three_median / one_median, GOAL))
    finally:
        for sandbox in sandboxes:
            subprocess.run(["llmd-sandbox", "down", "--dir", sandbox], check=False, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
