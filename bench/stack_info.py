"""stack_info as one task next to ansible.builtin.ping, on the pd-disaggregation scenario (issue 14's goal: <= 0.3 s more).

Both run as ad-hoc tasks (`ansible localhost -m ...`), ROUNDS times each, interleaved after one untimed warm-up;
the medians are compared. gateway_endpoint_info runs beside them, for what loading the shared Kubernetes client
costs any module of ours. The module's own work (the reads and the rules, in this process) is timed too, with
the number of requests it sent.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
SANDBOX = os.path.join(os.path.dirname(sys.executable), "llmd-sandbox")
SCENARIO = "pd-disaggregation"
ROUNDS = 7
GOAL_SECONDS = 0.3


class Bench(object):
    def __init__(self, directory):
        self.dir = directory
        self.env = dict(os.environ, KUBECONFIG=os.path.join(directory, "kubeconfig"),
                        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS)
        self.namespace = None

    def up(self):
        subprocess.run([SANDBOX, "up", "--scenario", SCENARIO, "--dir", self.dir, "--watch-pid", str(os.getpid())],
                       check=True, capture_output=True, timeout=600)
        with open(os.path.join(self.dir, "state.json")) as handle:
            self.namespace = json.load(handle)["namespace"]

    def down(self):
        subprocess.run([SANDBOX, "down", "--dir", self.dir], check=False, capture_output=True, timeout=60)

    def ansible_task(self, module, args):
        """(seconds, result) of one ad-hoc task, as a play would run it."""
        env = dict(self.env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_CALLBACK_RESULT_FORMAT="json")
        started = time.monotonic()
        output = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-i",
                                 "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                                 "-m", module] + (["-a", json.dumps(args)] if args else []),
                                env=env, check=True, capture_output=True, text=True, timeout=120).stdout
        return time.monotonic() - started, json.loads(output.split("=>", 1)[1])

    def stack_task(self):
        return self.ansible_task("llmd.verify.stack_info", {"namespace": self.namespace,
                                                            "kubeconfig": self.env["KUBECONFIG"]})

    def ping_task(self):
        return self.ansible_task("ansible.builtin.ping", {})

    def endpoint_task(self):
        """Another module on the same Kubernetes client: what loading the client costs any of them."""
        return self.ansible_task("llmd.verify.gateway_endpoint_info", {"namespace": self.namespace,
                                                                       "kubeconfig": self.env["KUBECONFIG"]})

    def module_utils(self):
        """(seconds, requests) of the module's own work in this process: reads, inventory, rules."""
        if COLLECTIONS not in sys.path:
            sys.path.insert(0, COLLECTIONS)
        from ansible_collections.llmd.verify.plugins.module_utils import _k8s_client
        from ansible_collections.llmd.verify.plugins.module_utils._stack_rules import STACK_ARG_SPEC, stack_info

        client = _k8s_client.get_api_client({"kubeconfig": self.env["KUBECONFIG"]})
        sent = []
        original = client.call_api

        def counting(*args, **kwargs):
            sent.append(args[1] if len(args) > 1 else kwargs.get("url"))
            return original(*args, **kwargs)
        client.call_api = counting
        params = {name: spec.get("default") for name, spec in STACK_ARG_SPEC.items()}
        params["namespace"] = self.namespace
        stack_info(client, params)  # warm-up
        del sent[:]
        started = time.monotonic()
        stack_info(client, params)
        return time.monotonic() - started, len(sent)


def main():
    with tempfile.TemporaryDirectory(prefix="llmd-bench-stack-info-") as directory:
        bench = Bench(directory)
        bench.up()
        try:
            bench.ping_task()
            _seconds, result = bench.stack_task()  # warm-up, and the result to show
            bench.endpoint_task()
            ping, stack, endpoint = [], [], []
            for _round in range(ROUNDS):
                ping.append(bench.ping_task()[0])
                stack.append(bench.stack_task()[0])
                endpoint.append(bench.endpoint_task()[0])
            utils_seconds, requests = bench.module_utils()
        finally:
            bench.down()
    ping_median, stack_median = statistics.median(ping), statistics.median(stack)
    print("%s: stack_info found mode %s, problems %s" % (SCENARIO, result["mode"], result["summary"]))
    print("  ansible.builtin.ping, one task (median of %d)   %6.2f s" % (ROUNDS, ping_median))
    print("  llmd.verify.stack_info, one task (median of %d) %6.2f s   %+.2f s over ping (goal: at most +%.1f s)"
          % (ROUNDS, stack_median, stack_median - ping_median, GOAL_SECONDS))
    print("  for scale: gateway_endpoint_info (median of %d) %6.2f s   %+.2f s over ping: the same Kubernetes client"
          % (ROUNDS, statistics.median(endpoint), statistics.median(endpoint) - ping_median))
    print("  stack_info's reads and rules alone (in process) %6.2f s   %d requests to the API server"
          % (utils_seconds, requests))


if __name__ == "__main__":
    main()
