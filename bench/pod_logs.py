"""pod_logs_info against `kubectl logs` run pod by pod: 16 pods x 10,000 lines, gathered and filtered.

One sandbox; a Deployment makes 16 pods whose vLLM takes a day to start, so each prints its first startup
lines and then nothing; their CRI log files are then filled up to 10,000 lines each with a busy decode
pod's mix (requests, metrics scrapes, engine stats). On those same logs, timed one after the other:
- the seed's way: for each pod, `kubectl logs POD -c vllm | grep -v ... | grep -v ... | grep -v ...`;
- the module as a play runs it: `ansible localhost -m llmd.verify.pod_logs_info` (one task);
- the module's gathering alone (its module_utils in this process), without Ansible's start-up;
and, for scale, an `ansible.builtin.ping` task: what Ansible and a module process cost by themselves.
Each is run once untimed first (kubectl's discovery cache, Python imports). All must keep the same lines.
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
SANDBOX = os.path.join(os.path.dirname(sys.executable), "llmd-sandbox")
PODS = 16
LINES = 10000
LABEL = "app.kubernetes.io/name=pod-logs-bench"
NOISE = ("waiting for vLLM to be ready", "GET /metrics HTTP/1.1", "Avg prompt throughput")
WAIT_SECONDS = 120

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pod-logs-bench"},
    "spec": {
        "replicas": PODS,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "pod-logs-bench"}},
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "pod-logs-bench"}},
            "spec": {"containers": [{
                "name": "vllm", "image": "vllm/vllm-openai:v0.11.2",
                # Silent after its first startup lines: the log holds only what the benchmark writes.
                "args": ["--model", "random", "--port", "8000", "--startup-seconds", "86400"]}]},
        },
    },
}


def busy_decode_line(index):
    """Six in ten lines are noise the seed filters, as on a decode pod that Prometheus scrapes."""
    kind = index % 10
    if kind < 5:
        return 'INFO:     10.0.3.7:%d - "GET /metrics HTTP/1.1" 200 OK' % (40000 + index % 20000)
    if kind == 5:
        return ("INFO 11-27 03:00:00 [loggers.py:122] Engine 000: Avg prompt throughput: 812.4 tokens/s, Avg "
                "generation throughput: 96.1 tokens/s, Running: 3 reqs, Waiting: 0 reqs, GPU KV cache usage: "
                "4.1%, Prefix cache hit rate: 37.5%")
    if kind < 8:
        return 'INFO:     10.0.1.12:%d - "POST /v1/completions HTTP/1.1" 200 OK' % (50000 + index % 10000)
    return "INFO 11-27 03:00:00 [logger.py:43] Received request cmpl-%032x: prompt: 'Hi, how are you?'" % index


def cri_lines(count, start_ns):
    lines = []
    for index in range(count):
        ns = start_ns + index * 1000
        stamp = datetime.datetime.fromtimestamp(ns // 10 ** 9, datetime.timezone.utc)
        lines.append("%s.%09dZ stdout F %s\n" % (stamp.strftime("%Y-%m-%dT%H:%M:%S"), ns % 10 ** 9,
                                                 busy_decode_line(index)))
    return "".join(lines)


class Bench(object):
    def __init__(self, directory):
        self.dir = directory
        self.env = dict(os.environ, KUBECACHEDIR=os.path.join(directory, "kube-cache"),
                        KUBECONFIG=os.path.join(directory, "kubeconfig"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS)
        self.namespace = None

    def kubectl(self, *args, **kwargs):
        return subprocess.run(["kubectl", "-n", self.namespace] + list(args), env=self.env, check=True,
                              capture_output=True, text=True, timeout=60, **kwargs).stdout

    def up(self):
        subprocess.run([SANDBOX, "up", "--scenario", "sim", "--dir", self.dir, "--watch-pid", str(os.getpid())],
                       check=True, capture_output=True, timeout=90)
        with open(os.path.join(self.dir, "state.json")) as handle:
            self.namespace = json.load(handle)["namespace"]

    def down(self):
        subprocess.run([SANDBOX, "down", "--dir", self.dir], check=False, capture_output=True, timeout=60)

    def make_logs(self):
        """Start the pods, wait for their first lines, then fill each log up to LINES lines."""
        self.kubectl("apply", "-f", "-", input=json.dumps(DEPLOYMENT))
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            pods = json.loads(self.kubectl("get", "pods", "-l", LABEL, "-o", "json"))["items"]
            paths = [os.path.join(self.dir, "logs", "%s_%s_%s" % (self.namespace, pod["metadata"]["name"],
                                                                  pod["metadata"]["uid"]), "vllm", "0.log")
                     for pod in pods]
            if len(paths) == PODS and all(_line_count(path) >= 3 for path in paths):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the %d benchmark pods did not start in %d s" % (PODS, WAIT_SECONDS))
            time.sleep(0.5)
        start_ns = time.time_ns()
        for path in paths:
            with open(path, "a") as handle:
                handle.write(cri_lines(LINES - _line_count(path), start_ns))
        return sorted(pod["metadata"]["name"] for pod in pods)

    def kubectl_loop(self, pods):
        """The seed's commands, pod by pod; returns the number of lines kept."""
        kept = 0
        grep = " | ".join("grep -v '%s'" % text for text in NOISE)
        for pod in pods:
            # grep exits 1 when it keeps nothing: not an error here.
            output = subprocess.run("kubectl -n %s logs %s -c vllm | %s" % (self.namespace, pod, grep), shell=True,
                                    env=self.env, check=False, capture_output=True, text=True, timeout=60).stdout
            kept += output.count("\n")
        return kept

    def ansible_task(self, module, args):
        """One ad-hoc task, as a play would run it; returns its result."""
        env = dict(self.env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_CALLBACK_RESULT_FORMAT="json")
        output = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-i",
                                 "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                                 "-m", module] + (["-a", json.dumps(args)] if args else []),
                                env=env, check=True, capture_output=True, text=True, timeout=120).stdout
        # `localhost | SUCCESS => {...}`
        return json.loads(output.split("=>", 1)[1])

    def module_task(self):
        args = {"namespace": self.namespace, "label_selectors": [LABEL], "containers": ["vllm"],
                "kubeconfig": self.env["KUBECONFIG"]}
        return self.ansible_task("llmd.verify.pod_logs_info", args)["total_kept"]

    def ping_task(self):
        """What any task costs: Ansible's start-up and a module process."""
        return self.ansible_task("ansible.builtin.ping", {})

    def module_utils(self):
        """The module's own work (find pods, read in parallel, filter, merge), in this process."""
        if COLLECTIONS not in sys.path:
            sys.path.insert(0, COLLECTIONS)
        from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import get_api_client
        from ansible_collections.llmd.verify.plugins.module_utils._pod_logs import gather_logs

        noise = dict(waiting_for_vllm=True, metrics_scrapes=True, throughput_stats=True)
        result = gather_logs(get_api_client({"kubeconfig": self.env["KUBECONFIG"]}), self.namespace,
                             label_selectors=[LABEL], containers=["vllm"], noise_filters=noise, max_lines=1000)
        return result["total_kept"]


def _line_count(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().count(b"\n")
    except FileNotFoundError:
        return 0


def timed(function, *args):
    function(*args)  # warm-up: caches and imports, as a user's second run would have them
    started = time.monotonic()
    result = function(*args)
    return time.monotonic() - started, result


def main():
    with tempfile.TemporaryDirectory(prefix="llmd-bench-pod-logs-") as directory:
        bench = Bench(directory)
        bench.up()
        try:
            pods = bench.make_logs()
            kubectl_seconds, kubectl_kept = timed(bench.kubectl_loop, pods)
            task_seconds, task_kept = timed(bench.module_task)
            utils_seconds, utils_kept = timed(bench.module_utils)
            ping_seconds = timed(bench.ping_task)[0]
        finally:
            bench.down()
    print("%d pods x %d lines of vllm logs, the seed's three noise filters: kubectl+grep kept %d lines"
          % (PODS, LINES, kubectl_kept))
    if not kubectl_kept == task_kept == utils_kept:
        print("MISMATCH: kubectl+grep kept %d, the module task %d, its module_utils %d"
              % (kubectl_kept, task_kept, utils_kept))
    print("  kubectl logs pod by pod | grep -v x3        %6.2f s" % kubectl_seconds)
    print("  pod_logs_info, one ansible task             %6.2f s   %.2fx the kubectl loop's speed"
          % (task_seconds, kubectl_seconds / task_seconds))
    print("  pod_logs_info gathering alone (in process)  %6.2f s   %.2fx the kubectl loop's speed"
          % (utils_seconds, kubectl_seconds / utils_seconds))
    print("  for scale: any ansible task (builtin.ping)  %6.2f s   Ansible's start-up, part of the task's time"
          % ping_seconds)


if __name__ == "__main__":
    main()
