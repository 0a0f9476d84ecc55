"""inference_check's TTFT and inter-token latency against the sandbox's configured ground truth.

One sandbox (scenario `sim`); its decode pods' llm-d-inference-sim (the real one, with the pod spec's --time-to-first-token and
--inter-token-latency) writes the first token TTFT ms after a request
arrives and each next one ITL ms later (the truth, from state.json). The module is run as Ansible runs it,
one Python process per request (`python -m ...inference_check args.json`), streaming directly to one decode
pod's vLLM, REQUESTS times after one untimed warm-up. Printed: the measured TTFT and ITL minus the truth
(p50, p99), and the module's own overhead: its process wall time minus the request's total_ms.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from llmd_sandbox import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
SCENARIO = "sim"
REQUESTS = 30
MAX_TOKENS = 16
RUN_TIMEOUT = 30


def percentile(values, pct):
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * pct // 100) - 1)]


def decode_target(state):
    """(vLLM URL, ttft_ms, itl_ms) of the first decode pod: its vllm container, behind no sidecar."""
    for name in sorted(state["pods"]):
        pod = state["pods"][name]
        if pod.get("role") == "decode":
            return "http://%s:%d" % (pod["ip"], pod["containers"]["vllm"][0]), pod["ttft_ms"], pod["itl_ms"]
    raise SystemExit("scenario %s has no decode pod" % SCENARIO)


def run_module(args_file):
    """(wall seconds, result) of one module process."""
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "ansible_collections.llmd.verify.plugins.modules.inference_check", args_file],
                               capture_output=True, env=env, timeout=RUN_TIMEOUT, check=False)
    wall = time.perf_counter() - started
    result = json.loads(completed.stdout)
    if result.get("failed"):
        raise SystemExit("inference_check failed: %s" % result.get("msg"))
    return wall, result


def main():
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as directory:
        state = cli.up(SCENARIO, os.path.join(directory, "sandbox"), watch_pid=os.getpid())
        try:
            url, ttft_truth, itl_truth = decode_target(state)
            args_file = os.path.join(directory, "args.json")
            with open(args_file, "w") as handle:
                json.dump({"ANSIBLE_MODULE_ARGS": {"endpoint": url, "stream": True, "max_tokens": MAX_TOKENS, "seed": "auto",
                                                   "timeout": 10}}, handle)
            run_module(args_file)  # warm-up: page cache, first connection
            ttft_errors, itl_p50_errors, itl_p99_errors, overheads = [], [], [], []
            for _request in range(REQUESTS):
                wall, result = run_module(args_file)
                timings = result["timings"]
                ttft_errors.append(timings["ttft_ms"] - ttft_truth)
                itl_p50_errors.append(timings["itl_p50_ms"] - itl_truth)
                itl_p99_errors.append(timings["itl_p99_ms"] - itl_truth)
                overheads.append(wall * 1000.0 - timings["total_ms"])
        finally:
            cli.down(os.path.join(directory, "sandbox"))
    print("target: %s (vLLM of one decode pod), truth TTFT %.1f ms, ITL %.1f ms; %d requests x %d tokens, streamed"
          % (url, ttft_truth, itl_truth, REQUESTS, MAX_TOKENS))
    print("measured TTFT - truth:        p50 %+7.2f ms   p99 %+7.2f ms   (goal: |p99| <= 2 ms)"
          % (percentile(ttft_errors, 50), percentile(ttft_errors, 99)))
    print("measured ITL p50 - truth:     p50 %+7.2f ms   p99 %+7.2f ms" % (percentile(itl_p50_errors, 50), percentile(itl_p50_errors, 99)))
    print("measured ITL p99 - truth:     p50 %+7.2f ms   p99 %+7.2f ms" % (percentile(itl_p99_errors, 50), percentile(itl_p99_errors, 99)))
    print("module overhead (wall - request total): p50 %.0f ms   p99 %.0f ms   (goal: < 300 ms)"
          % (percentile(overheads, 50), percentile(overheads, 99)))
    print("load average during the run: %.1f (on %d CPUs): timings of both sides suffer when it is high"
          % (os.getloadavg()[0], os.cpu_count()))


if __name__ == "__main__":
    main()
