"""Port-forward latency and throughput: direct to the pod, through llmd.verify.port_forward (python and
kubectl backends), and through a plain `kubectl port-forward` as users run it by hand; all in one run
against the sandbox's sim scenario, to the prefill vLLM pod (port 8000).

Latency: GET /health on one keep-alive connection (p50, p99), and on a new connection each time.
Throughput: 4 MiB request bodies POSTed on a keep-alive connection (the server reads them whole and
answers 400 at once), in MB/s.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".cache", "collections"))

REQUESTS = 400
NEW_CONNECTIONS = 100
BODY = json.dumps({"model": "random", "prompt": 0, "padding": "x" * (4 * 1024 * 1024)}).encode()
UPLOADS = 40


def _percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _latency(host, port, fresh):
    """Milliseconds per GET /health: on one connection, or a new connection each time."""
    samples = []
    connection = http.client.HTTPConnection(host, port, timeout=10)
    for _request in range(NEW_CONNECTIONS if fresh else REQUESTS):
        if fresh:
            connection = http.client.HTTPConnection(host, port, timeout=10)
        started = time.perf_counter()
        connection.request("GET", "/health")
        response = connection.getresponse()
        response.read()
        samples.append((time.perf_counter() - started) * 1000)
        if fresh:
            connection.close()
        if response.status != 200:
            raise RuntimeError("GET /health answered %d" % response.status)
    connection.close()
    return samples[5:]  # the first requests warm up caches and the spare connection


def _throughput(host, port):
    """MB/s of request bodies the server read and answered."""
    connection = http.client.HTTPConnection(host, port, timeout=60)
    started = time.perf_counter()
    for _upload in range(UPLOADS):
        connection.request("POST", "/v1/completions", body=BODY, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 400:
            raise RuntimeError("the upload was answered %d, not 400" % response.status)
    elapsed = time.perf_counter() - started
    connection.close()
    return len(BODY) * UPLOADS / elapsed / 1e6


def _measure(name, host, port):
    kept = _latency(host, port, fresh=False)
    fresh = _latency(host, port, fresh=True)
    return {"path": name, "p50": statistics.median(kept), "p99": _percentile(kept, 0.99),
            "new_p50": statistics.median(fresh), "mbps": _throughput(host, port)}


def _plain_kubectl(kubeconfig, namespace, pod):
    """`kubectl port-forward pod/P :8000` as users run it; (process, local port)."""
    process = subprocess.Popen(["kubectl", "--kubeconfig", kubeconfig, "port-forward", "-n", namespace, "pod/" + pod,
                                ":8000", "--address", "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    line = process.stdout.readline()
    match = re.search(r"127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError("kubectl port-forward did not start: %r" % line)
    return process, int(match.group(1))


def main():
    from ansible_collections.llmd.verify.plugins.module_utils import _port_forward

    with tempfile.TemporaryDirectory(prefix="bench-port-forward-") as work:
        sandbox = os.path.join(work, "sandbox")
        os.environ["XDG_RUNTIME_DIR"] = work  # our own forward state, gone with the directory
        os.environ["KUBECACHEDIR"] = os.path.join(work, "kube-cache")
        subprocess.run(["llmd-sandbox", "up", "--scenario", "sim", "--dir", sandbox, "--lifetime", "900"],
                       check=True, stdout=subprocess.DEVNULL, timeout=180)
        kubectl = None
        try:
            with open(os.path.join(sandbox, "state.json")) as handle:
                state = json.load(handle)
            namespace = state["namespace"]
            name, pod = next((key.split("/", 1)[1], value) for key, value in sorted(state["pods"].items())
                             if value.get("role") == "prefill")
            kubeconfig = os.path.join(sandbox, "kubeconfig")
            params = dict.fromkeys(("context", "host", "api_key", "username", "password", "validate_certs", "ca_cert",
                                    "client_cert", "client_key", "proxy", "no_proxy", "impersonate_user",
                                    "impersonate_groups", "service", "address", "wait_path"))
            params.update(kubeconfig=kubeconfig, namespace=namespace, pod=name, remote_port="8000", local_port=0,
                          kubectl_binary="kubectl", reconnect=True, lifetime=900, idle_timeout=300, wait_timeout=30)
            rows = [_measure("direct to the pod", pod["ip"], 8000)]
            for backend in ("python", "kubectl"):
                forward = _port_forward.ensure_present(dict(params, backend=backend))
                rows.append(_measure("port_forward backend=%s" % backend, "127.0.0.1", forward["local_port"]))
            kubectl, port = _plain_kubectl(kubeconfig, namespace, name)
            rows.append(_measure("kubectl port-forward (by hand)", "127.0.0.1", port))
        finally:
            if kubectl is not None:
                kubectl.terminate()
                kubectl.wait(10)
            _port_forward.ensure_absent({"all": True})
            subprocess.run(["llmd-sandbox", "down", "--dir", sandbox], check=False, stdout=subprocess.DEVNULL, timeout=60)

    print("%-32s %9s %9s %13s %9s" % ("path", "p50 ms", "p99 ms", "new conn p50", "MB/s"))
    for row in rows:
        print("%-32s %9.3f %9.3f %13.3f %9.1f" % (row["path"], row["p50"], row["p99"], row["new_p50"], row["mbps"]))
    direct, python, by_hand = rows[0], rows[1], rows[3]
    print("python backend: +%.3f ms at p50 over direct (goal <= 1 ms); %.2fx the bytes/s of kubectl port-forward"
          " (goal >= 1)" % (python["p50"] - direct["p50"], python["mbps"] / by_hand["mbps"]))


if __name__ == "__main__":
    main()
