"""playbooks/verify.yml against Ansible itself and against the seed's procedure, on the demo scenario.

Three runs on `make demo`'s scenario (simulated-accelerators: the real sim, EPP and Envoy), alternately, ROUNDS
times each, medians compared in one run (this machine is noisy):
- `ansible-playbook` running a one-task playbook (ansible.builtin.debug): what any playbook costs;
- the seed's procedure scripted with kubectl and curl: find the Service fronting the endpoint, port-forward
  it, GET /v1/models, POST /v1/completions and /v1/chat/completions and a streamed completion, list the
  decode pods and read their logs without the seed's noise, stop the port-forward;
- `playbooks/verify.yml`, which does all of that and more (stack_info, the report).
The goal (issue 16): verify.yml within 2.5x of the one-task playbook and within 4x of the seed's procedure.
It also prints how long verify.yml's inference checks waited for the model server (the sim takes 200 ms to the
first token and 20 ms for each next one), and verify.yml's time less that wait against the one-task playbook.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = 3
INFERENCE_CHECKS = ("models", "completions", "chat", "stream")
SCENARIO = "simulated-accelerators"
DEBUG_PLAYBOOK = """- name: One task
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: hello
"""

# The seed's commands, in order, as a user would paste them (yq stands for the seed's `yq` filter).
SEED_SCRIPT = r"""
set -euo pipefail
GATEWAY_SVC=$(kubectl get svc -n "${NAMESPACE}" -o json \
  | jq -r '.items[] | select(.metadata.name | test("(-inference-gateway(-.*)?|-epp)$")).metadata.name' | head -n1)
kubectl port-forward -n "${NAMESPACE}" "service/${GATEWAY_SVC}" 0:80 > "${WORK}/pf.log" 2>&1 &
PF=$!
trap 'kill ${PF} 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "Forwarding from 127.0.0.1" "${WORK}/pf.log" && break; sleep 0.05; done
PORT=$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) .*/\1/p' "${WORK}/pf.log" | head -n1)
ENDPOINT="http://127.0.0.1:${PORT}"
MODEL=$(curl -sf "${ENDPOINT}/v1/models" -H "Content-Type: application/json" | jq -r '.data[0].id')
curl -sf -X POST "${ENDPOINT}/v1/completions" -H 'Content-Type: application/json' \
  -d "{\"model\": \"${MODEL}\", \"prompt\": \"How are you today?\", \"max_tokens\": 16, \"seed\": ${RANDOM}${RANDOM}}" | jq -e '.choices' >/dev/null
curl -sf -X POST "${ENDPOINT}/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "{\"model\": \"${MODEL}\", \"messages\": [{\"role\": \"user\", \"content\": \"How are you today?\"}], \"max_tokens\": 16}" | jq -e '.choices' >/dev/null
curl -sfN -X POST "${ENDPOINT}/v1/completions" -H 'Content-Type: application/json' \
  -d "{\"model\": \"${MODEL}\", \"prompt\": \"Hi, how are you?\", \"max_tokens\": 16, \"stream\": true}" | grep -q "data: \[DONE\]"
DECODE_PODS=$(kubectl get pods --no-headers -n "${NAMESPACE}" -l "llm-d.ai/role=decode" -o custom-columns=":metadata.name")
for pod in ${DECODE_PODS}; do
  kubectl logs -n "${NAMESPACE}" "${pod}" -c vllm --since=600s \
    | grep -v "waiting for vLLM to be ready\|GET /metrics HTTP/1.1\|Avg prompt throughput" > /dev/null || true
done
"""


def _timed(argv, env):
    started = time.monotonic()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return time.monotonic() - started


def _serving_time(report):
    """Seconds verify.yml's inference checks waited for their answers, from the checks' times in its report: the
    models check, then the stream, with completions and chat sent once its first token was in (overlap)."""
    with open(report) as handle:
        times = dict((check["name"], check) for check in json.load(handle)["checks"] if check["name"] in INFERENCE_CHECKS)
    seconds = dict((name, check["time"] or 0) for name, check in times.items())
    ttft = ((times.get("stream", {}).get("details") or {}).get("timings") or {}).get("ttft_ms") or 0
    others = max(seconds.get("completions", 0), seconds.get("chat", 0))
    return seconds.get("models", 0) + max(seconds.get("stream", 0), ttft / 1000.0 + others)


def main():
    work = tempfile.mkdtemp(prefix="llmd-bench-verify-")
    sandbox = os.path.join(work, "sandbox")
    subprocess.run(["llmd-sandbox", "up", "--scenario", SCENARIO, "--dir", sandbox,
                    "--watch-pid", str(os.getpid())], check=True, stdout=subprocess.DEVNULL)
    try:
        with open(os.path.join(sandbox, "state.json")) as handle:
            namespace = json.load(handle)["namespace"]
        env = dict(os.environ, KUBECONFIG=os.path.join(sandbox, "kubeconfig"), NAMESPACE=namespace, WORK=work,
                   KUBECACHEDIR=os.path.join(work, "kube-cache"), ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
        debug = os.path.join(work, "debug.yml")
        with open(debug, "w") as handle:
            handle.write(DEBUG_PLAYBOOK)
        runs = {
            "ansible-playbook, one debug task": ["ansible-playbook", debug],
            "seed's procedure, kubectl + curl": ["bash", "-c", SEED_SCRIPT],
            "ansible-playbook playbooks/verify.yml": [
                "ansible-playbook", os.path.join(ROOT, "playbooks", "verify.yml"),
                "-e", "llmd_kubeconfig=%s llmd_namespace=%s llmd_guide=%s" % (env["KUBECONFIG"], namespace, SCENARIO),
                "-e", "llmd_report_dir=%s" % os.path.join(work, "report")],
        }
        times = dict((name, []) for name in runs)
        serving = []
        for _round in range(ROUNDS):
            for name, argv in runs.items():
                times[name].append(_timed(argv, env))
            serving.append(_serving_time(os.path.join(work, "report", "localhost", "report.json")))
        medians = dict((name, statistics.median(values)) for name, values in times.items())
        for name, values in times.items():
            print("%-40s median %5.2f s  (runs: %s)" % (name, medians[name], ", ".join("%.2f" % t for t in values)))
        debug_name, seed_name, ours_name = list(runs)
        print("verify.yml / one-task playbook: %.2fx  (goal: within 2.5x)" % (medians[ours_name] / medians[debug_name]))
        print("verify.yml / seed's procedure:  %.2fx  (goal: within 4x)" % (medians[ours_name] / medians[seed_name]))
        # What the model server takes (the sim's TTFT and inter-token latency) no client can cut: verify.yml's
        # cost apart from it, against Ansible's own.
        print("of verify.yml, waiting for the model server's answers: median %.2f s (runs: %s)"
              % (statistics.median(serving), ", ".join("%.2f" % t for t in serving)))
        print("verify.yml less that wait / one-task playbook: %.2fx"
              % ((medians[ours_name] - statistics.median(serving)) / medians[debug_name]))
    finally:
        subprocess.run(["llmd-sandbox", "down", "--dir", sandbox], check=False, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
