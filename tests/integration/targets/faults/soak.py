"""Faults and the soak: playbooks/verify.yml run after run against one `faults` sandbox, a fault in each run.

    python soak.py SANDBOX_DIR WORK_DIR [--runs 50] [--seed N] [--faults NAME,...]

The faults are drawn in shuffled rounds of the whole list (seeded; the seed is printed, LLMD_VERIFY_SOAK_SEED or
--seed replays it), so that every fault runs at least once in any 13 runs. Each run: verify.yml with -vvv and an
API key, the fault made before or during it, and its outcome asserted (FAULTS below: the check that fails and the
words its message or likely cause must say). After each run nothing it started may run, and no port-forward state
file may remain (waiting up to a forward's lifetime where the play was killed). At the end the counts are printed
and asserted: 0 processes, 0 listening ports, 0 network namespaces, 0 state files, 0 tracebacks, 0 secrets, and
every failed run names its cause.
"""
import argparse
import glob
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "setup_secrets"))
import secret_scan  # noqa: E402  (the shared secrets checks)

COLLECTION_ROOT = os.environ["COLLECTION_ROOT"]
PYTHON = os.environ.get("ANSIBLE_PYTHON_INTERPRETER") or sys.executable
RUN_TIMEOUT = 150
FORWARD_LIFETIME = 8  # of the forward whose play is SIGKILLed: it must end by itself, this many seconds after start
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
# Ports of the fault sidecar in the decode pod (scenarios/faults.yaml).
PORTS = {"burst": 9001, "backlog": 9002, "hang": 9003, "stall": 9004, "cut": 9005, "html": 9006, "slow": 9007}
SHORT = {"llmd_request_timeout": 2, "llmd_models_wait_timeout": 4}
# A fault at the endpoint fails every check the same way: the models check says it; the stream faults need a stream.
MODELS_ONLY = dict(SHORT, llmd_inference_checks=["models"])
MODELS_AND_STREAM = dict(SHORT, llmd_inference_checks=["models", "stream"])


class Sandbox:
    def __init__(self, directory):
        self.dir = directory

    @property
    def state(self):
        with open(os.path.join(self.dir, "state.json")) as handle:
            return json.load(handle)

    def pod(self, prefix):
        """(name, entry) of the sandbox's pod whose name starts with prefix."""
        pods = [(key.split("/", 1)[1], entry) for key, entry in self.state["pods"].items()
                if key.split("/", 1)[1].startswith(prefix)]
        assert len(pods) == 1, "expected one pod %s*, found %s" % (prefix, [name for name, _entry in pods])
        return pods[0]

    def decode(self):
        return self.pod("ms-sim-llm-d-modelservice-decode")

    def fault_url(self, fault, scheme="http"):
        return "%s://%s:%d" % (scheme, self.decode()[1]["ip"], PORTS[fault])

    def command(self, *args):
        done = subprocess.run(["llmd-sandbox", *args, "--dir", self.dir], capture_output=True, text=True, timeout=90,
                              check=False)
        # said as an assertion, with the sandbox's own words, so that the run's line shows why
        assert done.returncode == 0, "llmd-sandbox %s: %s" % (" ".join(args), done.stderr.strip()[-300:])
        return done.stdout.strip()

    def restart_pod(self, name):
        return self.command("restart-pod", name)

    def settled(self):
        """Whether every Gateway is Programmed again: after a restarted gateway pod or API server its address is
        pending for a moment, and stack_info then rightly names that as the cause of the next run's failure."""
        listed = subprocess.run(
            ["kubectl", "--kubeconfig", os.path.join(self.dir, "kubeconfig"), "get", "gateways", "-n",
             self.state["namespace"], "-o", 'jsonpath={.items[*].status.conditions[?(@.type=="Programmed")].status}'],
            capture_output=True, text=True, timeout=30, check=False)
        return listed.returncode == 0 and set(listed.stdout.split()) == {"True"}

    def fault_log(self):
        """The fault container's log of the current decode pod (CRI files, all restarts)."""
        name, entry = self.decode()
        text = ""
        for path in sorted(glob.glob(os.path.join(self.dir, "logs", "pods", "*_%s_%s" % (name, entry["uid"]),
                                                  "fault", "*.log"))):
            with open(path, errors="replace") as handle:
                text += handle.read()
        return text


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("%s: not within %s s" % (what, timeout))


# ---- the faults: what each does to the run, and what the run must then say ------------------------------------

class Run:
    """One verify.yml run; a fault sets its extra vars, an action during it, and checks its outcome."""

    def __init__(self, number, fault, sandbox, work):
        self.number, self.fault, self.sandbox = number, fault, sandbox
        self.report = os.path.join(work, "runs", "%02d-%s" % (number, fault))
        self.log = self.report + ".log"
        self.marker = "soak-%d-%02d" % (os.getpid(), number)
        self.extra = {}
        self.notes = []
        self.forward_ports = set()
        self.forward_pods = set()  # the pods the play's forward reached, as its state file says


def forward_state_files(state_dir):
    return sorted(glob.glob(os.path.join(state_dir, "*.json")))


def during_pod_restart_port_forward(run, context):
    """Once the play's forward to the gateway runs (its state file is there), the play is paused, the gateway pod
    replaced and a request sent through the forward, which must reach the new pod; then the play goes on. (A play
    may send its own requests before the pod is gone: it would prove nothing about the forward.)"""
    wait_for(lambda: forward_state_files(context.state_dir), 60, "the play's port-forward")
    check_forward_secrets(context)
    with open(forward_state_files(context.state_dir)[0]) as handle:
        endpoint = json.load(handle)["endpoint"]
    name, _entry = run.sandbox.pod("infra-sim-inference-gateway")
    signal_tree(PLAYING[0], signal.SIGSTOP)
    try:
        run.notes.append("gateway pod %s replaced by %s" % (name, run.sandbox.restart_pod(name)))
        wait_for(lambda: answers(endpoint + "/v1/models"), 60, "an answer through the forward after the restart")
    finally:
        signal_tree(PLAYING[0], signal.SIGCONT)


def answers(url):
    """Whether url gives an HTTP answer (any status)."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def during_pod_restart_stream(run, context):
    """Once the streamed check runs (the fault's slow port logged it), the decode pod serving it is replaced."""
    seen = run.sandbox.fault_log().count("slow stream started")
    name, _entry = run.sandbox.decode()
    wait_for(lambda: run.sandbox.fault_log().count("slow stream started") > seen, 90, "the streamed check")
    run.notes.append("decode pod %s replaced by %s" % (name, run.sandbox.restart_pod(name)))


def during_api_restart(run, _context):
    """The API server restarts as the play begins (stack_info, the endpoint, the port-forward meet it)."""
    run.notes.append("kube-apiserver restarted, new pid %s" % run.sandbox.command("restart-apiserver"))


def before_burst(run, _context):
    request = urllib.request.Request(run.sandbox.fault_url("burst") + "/fault/reset", method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def endpoint(fault, **extra):
    def setup(run, _context):
        run.extra.update(llmd_endpoint_url=run.sandbox.fault_url(fault), **extra)
    return setup


def tls_other_name(run, _context):
    """The API server's certificate (the sandbox's CA, names 127.0.0.1, localhost, kubernetes...) for a gateway
    reached as gateway.example: a certificate for another name."""
    port = run.sandbox.state["api_server"].rsplit(":", 1)[1]
    run.extra.update(llmd_endpoint_url="https://gateway.example:%s" % port, llmd_resolve={"gateway.example": "127.0.0.1"},
                     llmd_ca_path=run.sandbox.state["ca_file"], **MODELS_ONLY)


class Fault:
    def __init__(self, setup=None, during=None, verdict="failed", check=None, words=(), killed=False, extra=None,
                 logs=False, follows_pod=False):
        self.setup, self.during, self.verdict, self.logs = setup, during, verdict, logs
        self.follows_pod = follows_pod  # the play's forward must reach the replacement pod too
        self.check, self.words, self.killed, self.extra = check, words, killed, extra or {}


FAULTS = {
    # The forward must follow the replacement. A request in flight when the old pod goes (or on the connection
    # the forward had to it) may fail even after its one retry: then its cause names the port-forward's pod.
    "pod-restart-port-forward": Fault(extra={"llmd_endpoint_mode": "port_forward"}, during=during_pod_restart_port_forward,
                                      verdict="any", words=("port-forward",), follows_pod=True),
    # The sim echoes the prompt: 60 words make a stream of 60 events, 24 s at the slow port's pace, cut by the restart.
    "pod-restart-stream": Fault(setup=endpoint("slow", llmd_inference_checks=["models", "stream"],
                                               llmd_prompt=" ".join(["word"] * 60), llmd_max_tokens=60),
                                during=during_pod_restart_stream, check="stream", logs=True,
                                words=("connection ended before the body was complete", "cut in the middle")),
    "api-server-restart": Fault(extra={"llmd_endpoint_mode": "port_forward"}, during=during_api_restart,
                                verdict="any", words=("api server",)),
    "burst-503": Fault(setup=lambda run, context: (before_burst(run, context), endpoint("burst")(run, context)),
                       verdict="passed", check="models", words=("after 4 attempt(s)",)),
    "connect-timeout": Fault(setup=endpoint("backlog", **MODELS_ONLY), check="models",
                             words=("connect timed out after 2", "does not answer")),
    "first-byte-timeout": Fault(setup=endpoint("hang", **MODELS_ONLY), check="models",
                                words=("first byte timed out", "a timeout on the way")),
    "stream-timeout": Fault(setup=endpoint("stall", **MODELS_AND_STREAM), check="stream",
                            words=("stream timed out: no data for 2", "a timeout on the way")),
    "stream-cut": Fault(setup=endpoint("cut", **MODELS_AND_STREAM), check="stream",
                        words=("connection ended before the body was complete", "cut in the middle")),
    "html-error-page": Fault(setup=endpoint("html", **MODELS_ONLY), check="models", words=("HTTP 502: <html>", "HTML page")),
    "tls-other-name": Fault(setup=tls_other_name, check="models",
                            words=("hostname 'gateway.example' doesn't match", "for another host name")),
    "no-such-context": Fault(extra={"llmd_context": "no-such-context"}, check="endpoint",
                             words=("no-such-context", "the context")),
    "no-such-namespace": Fault(extra={"llmd_namespace": "no-such-namespace"}, check="endpoint",
                               words=("no-such-namespace", "does not exist")),
    "sigkill": Fault(extra={"llmd_endpoint_mode": "port_forward", "llmd_port_forward_lifetime": FORWARD_LIFETIME},
                     killed=True),
}


def check_forward_secrets(context):
    """While a play's forward runs: 0700/0600, no secret in its state file, listening on loopback only."""
    secret_scan.cmd_state_secrets(context.secrets_file, context.state_dir)
    for path in forward_state_files(context.state_dir):
        with open(path) as handle:
            port = json.load(handle).get("local_port")
        if port:
            secret_scan.cmd_listens_loopback(port)


# ---- running ------------------------------------------------------------------------------------------------

class Context:
    def __init__(self, sandbox, work, api_key):
        self.sandbox, self.work = sandbox, work
        self.runtime = os.path.join(work, "runtime")
        self.state_dir = os.path.join(self.runtime, "llmd_verify", "port_forward")
        self.secrets_file = os.path.join(work, "secrets")
        self.api_key_file = os.path.join(work, "api_key.json")
        os.makedirs(self.runtime, mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(work, "runs"), exist_ok=True)
        old = os.umask(0o077)
        try:
            with open(self.secrets_file, "w") as handle:
                handle.write("%s\n%s\n" % (api_key, sandbox.state["tokens"]["admin"]))
            with open(self.api_key_file, "w") as handle:
                json.dump({"llmd_api_key": api_key}, handle)
        finally:
            os.umask(old)


def marked_processes(marker):
    """Live processes that carry the run's marker (everything the play started inherits it)."""
    found = []
    for environ in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(environ, "rb") as handle:
                if ("LLMD_VERIFY_RUN_MARKER=%s" % marker).encode() not in handle.read().split(b"\0"):
                    continue
            with open(environ.replace("environ", "stat")) as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(environ.replace("environ", "cmdline"), "rb") as handle:
                found.append("%s %s" % (environ.split("/")[2], handle.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            continue
    return found


PLAYING = []  # the pid of the play that runs, for the SIGTERM of a timeout


def stop_on_sigterm(signum, _frame):
    """A timeout (runme.sh's, integration.sh's) ends the soak: the play runs in a session of its own, so end it too."""
    for pid in PLAYING:
        signal_tree(pid)
    sys.exit("soak: stopped by signal %d" % signum)


def signal_tree(pid, signum=signal.SIGKILL):
    """signum (SIGKILL) to pid and every descendant (Ansible's task workers run in sessions of their own). A
    forward's daemon has left the tree (it daemonized): it is not signalled, and must end by its lifetime."""
    parents = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as handle:
                parents[stat.split("/")[2]] = handle.read().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
    tree, grew = {str(pid)}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    for member in tree:
        try:
            os.kill(int(member), signum)
        except ProcessLookupError:
            pass


def play(run, context, fault):
    """Runs verify.yml (in a session of its own) with the fault; returns its exit status (None: killed)."""
    extra = dict(fault.extra, **run.extra)
    command = ["ansible-playbook", "-vvv", os.path.join(COLLECTION_ROOT, "playbooks", "verify.yml"),
               "-i", os.path.join(COLLECTION_ROOT, "playbooks", "inventory", "localhost.yml"),
               "-e", json.dumps({"llmd_kubeconfig": os.path.join(context.sandbox.dir, "kubeconfig"),
                                 "llmd_namespace": context.sandbox.state["namespace"], "llmd_report_dir": run.report,
                                 "llmd_report_layout": "flat", "llmd_guide": "simulated-accelerators",
                                 "llmd_logs_enabled": fault.logs,
                                 "ansible_python_interpreter": PYTHON, **extra}),
               "-e", "@" + context.api_key_file]
    env = dict(os.environ, LLMD_VERIFY_RUN_MARKER=run.marker, XDG_RUNTIME_DIR=context.runtime)
    with open(run.log, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    PLAYING[:] = [process.pid]
    errors = []

    def act():
        try:
            if fault.killed:
                wait_for(lambda: forward_state_files(context.state_dir), 60, "the play's port-forward")
                check_forward_secrets(context)
                signal_tree(process.pid)
                run.notes.append("ansible-playbook SIGKILLed with its forward running")
            elif fault.during:
                fault.during(run, context)
        except Exception as exc:  # noqa: BLE001 - reported as the run's failure below
            errors.append("%s: %s" % (type(exc).__name__, exc))

    def watch_forwards():  # the local ports of the forwards the play starts, to check they are closed after it
        while process.poll() is None:
            for path in forward_state_files(context.state_dir):
                try:
                    with open(path) as handle:
                        state = json.load(handle)
                except (OSError, ValueError):
                    continue
                if state.get("local_port"):
                    run.forward_ports.add(state["local_port"])
                if state.get("pod"):
                    run.forward_pods.add(state["pod"])
            time.sleep(0.1)

    actor = threading.Thread(target=act, daemon=True)
    actor.start()
    watcher = threading.Thread(target=watch_forwards, daemon=True)
    watcher.start()
    try:
        status = process.wait(RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        signal_tree(process.pid)
        process.wait()
        errors.append("verify.yml did not end in %d s" % RUN_TIMEOUT)
        status = None
    actor.join(120)
    watcher.join(5)
    if fault.killed:
        # Ansible's task workers run in sessions of their own: what the kill missed would show below.
        status = None
    assert not errors, "; ".join(errors)
    return status


def check_outcome(run, fault, status):
    """The outcome the fault must have; returns the failed checks' causes (name: message | cause)."""
    with open(run.log, errors="replace") as handle:
        output = handle.read()
    if fault.killed:
        return []
    if fault.follows_pod:
        assert len(run.forward_pods) >= 2, "the forward did not follow the replaced pod: it reached %s" % run.forward_pods
    report_file = os.path.join(run.report, "report.json")
    assert os.path.exists(report_file), "no report.json; the end of the output:\n%s" % output[-3000:]
    with open(report_file) as handle:
        report = json.load(handle)
    subprocess.run([sys.executable, os.path.join(COLLECTION_ROOT, "tests", "tools", "validate_junit.py"),
                    os.path.join(run.report, "junit.xml")], check=True, stdout=subprocess.DEVNULL)
    checks = {check["name"]: check for check in report["checks"]}
    failed = [check for check in report["checks"] if check["status"] == "failed"]
    summary = "\n".join("    %s %s: %s | cause: %s" % (c["status"], c["name"], c["message"][:400], c["cause"][:300])
                        for c in report["checks"])
    assert (status == 0) == report["ok"], "exit status %s but report ok=%s" % (status, report["ok"])
    if fault.verdict != "any":
        assert report["ok"] == (fault.verdict == "passed"), "expected %s:\n%s" % (fault.verdict, summary)
    for check in failed:
        assert check["message"].strip() and check["cause"].strip(), \
            "failed check %s names no cause:\n%s" % (check["name"], summary)
    if fault.check:
        assert fault.check in checks, "no check %s:\n%s" % (fault.check, summary)
    if report["ok"]:
        texts = [checks[fault.check]["message"]] if fault.check else []
    else:
        texts = [c["message"] + " " + c["cause"] for c in ([checks[fault.check]] if fault.check else failed)]
        if fault.check:
            assert checks[fault.check]["status"] == "failed", "check %s did not fail:\n%s" % (fault.check, summary)
    for words in fault.words if texts else ():
        assert any(words.lower() in text.lower() for text in texts), \
            "%s does not say %r:\n%s" % (fault.check or "no failed check", words, summary)
    return ["%s: %s | %s" % (c["name"], c["message"][:300], c["cause"][:200]) for c in failed]


def leftovers_of(run, context):
    """What the run left: its processes (a killed play's forward gets its lifetime to end) and state files."""
    deadline = time.monotonic() + (FORWARD_LIFETIME + 10 if FAULTS[run.fault].killed else 5)
    while time.monotonic() < deadline:
        processes, files = marked_processes(run.marker), forward_state_files(context.state_dir)
        if not processes and not files:
            return [], []
        time.sleep(0.2)
    return marked_processes(run.marker), forward_state_files(context.state_dir)


def accepts(port):
    """Whether something still accepts connections on 127.0.0.1:port (a forward that outlived its play)."""
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def held_ports(processes):
    """The listening TCP ports held by the leftover processes ("PID cmdline" lines)."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    listening[fields[9]] = int(fields[1].split(":")[1], 16)
    ports = []
    for line in processes:
        fd_dir = "/proc/%s/fd" % line.split()[0]
        try:
            links = [os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)]
        except OSError:
            continue
        ports += [listening[link[8:-1]] for link in links if link.startswith("socket:[") and link[8:-1] in listening]
    return ports


def netns_names(prefix):
    try:
        return {name for name in os.listdir("/run/netns") if name.startswith(prefix)}
    except FileNotFoundError:
        return set()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sandbox_dir")
    parser.add_argument("work")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("LLMD_VERIFY_SOAK_SEED") or time.time()))
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated names (default: all)")
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    names = options.faults.split(",")
    unknown = [name for name in names if name not in FAULTS]
    assert not unknown, "no fault %s; known: %s" % (unknown, ", ".join(FAULTS))
    rng = random.Random(options.seed)
    order = []
    while len(order) < options.runs:
        round_ = list(names)
        rng.shuffle(round_)
        order += round_
    order = order[:options.runs]
    print("soak: %d runs, seed %d (LLMD_VERIFY_SOAK_SEED=%d replays it)" % (options.runs, options.seed, options.seed),
          flush=True)

    sandbox = Sandbox(options.sandbox_dir)
    api_key = "llmd-soak-key-" + os.urandom(16).hex()
    context = Context(sandbox, options.work, api_key)
    netns_prefix = "llmd-%s-" % sandbox.state["bridge"].replace("llmdbr", "")
    counts = {"processes": 0, "listening ports": 0, "network namespaces": 0, "state files": 0, "tracebacks": 0,
              "secrets": 0, "failed runs without a cause": 0}
    failures, causes, times = [], {}, []
    for number, name in enumerate(order, 1):
        fault = FAULTS[name]
        run = Run(number, name, sandbox, options.work)
        started = time.monotonic()
        outcome = "?"
        try:
            wait_for(sandbox.settled, 60, "every Gateway Programmed again")
            if fault.setup:
                fault.setup(run, context)
            status = play(run, context, fault)
            outcome = "killed" if fault.killed else ("passed" if status == 0 else "failed")
            named = check_outcome(run, fault, status)
            causes.setdefault(name, named)
        except AssertionError as exc:
            failures.append("run %d (%s): %s" % (number, name, exc))
            run.notes.append("FAILED: %s" % exc)  # said now too: a later run may need to know why
            if "names no cause" in str(exc):
                counts["failed runs without a cause"] += 1
        processes, files = leftovers_of(run, context)
        ports = sorted(port for port in run.forward_ports if accepts(port)) + held_ports(processes)
        counts["processes"] += len(processes)
        counts["state files"] += len(files)
        counts["listening ports"] += len(ports)
        if processes or files or ports:
            failures.append("run %d (%s) left processes %s, state files %s, listening ports %s" % (
                number, name, processes, files, ports))
            for line in processes:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            for path in files:
                os.unlink(path)
        own_log = [run.log] if os.path.exists(run.log) else []  # none when it failed before its play started
        tracebacks = 0
        for path in own_log + glob.glob(os.path.join(run.report, "*")):
            with open(path, errors="replace") as handle:
                tracebacks += len(TRACEBACK.findall(handle.read()))
        if tracebacks:
            counts["tracebacks"] += tracebacks
            failures.append("run %d (%s): %d traceback(s) in %s or its report" % (number, name, tracebacks, run.log))
        try:
            scanned = own_log + ([run.report] if os.path.isdir(run.report) else [])
            if scanned:
                secret_scan.cmd_scan(context.secrets_file, *scanned)
        except AssertionError as exc:
            counts["secrets"] += 1
            failures.append("run %d (%s): %s" % (number, name, exc))
        if run.forward_pods:
            run.notes.append("the forward reached pod(s) %s" % ", ".join(sorted(run.forward_pods)))
        elapsed = time.monotonic() - started
        times.append(elapsed)
        print("run %2d %-26s %-7s %5.1f s %s" % (number, name, outcome, elapsed, "; ".join(run.notes)), flush=True)

    # The sandbox's pods have been replaced many times: only its current pods' namespaces may be there.
    current = {entry["netns"] for entry in sandbox.state["pods"].values()}
    counts["network namespaces"] = len(netns_names(netns_prefix) - current)

    print("\nthe first message each fault produced (check: message | likely cause):")
    for name in FAULTS:
        if name in causes:
            print("  %s:%s" % (name, "".join("\n      " + line for line in causes[name]) or " passed"))
    print("\nsoak: %d runs in %.0f s (%.1f s a run, median %.1f s), seed %d" % (
        len(times), sum(times), sum(times) / max(len(times), 1), sorted(times)[len(times) // 2], options.seed))
    print("left behind / found: " + ", ".join("%d %s" % (value, key) for key, value in counts.items()))
    for failure in failures:
        print("FAILED " + failure)
    return 1 if failures or any(counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
