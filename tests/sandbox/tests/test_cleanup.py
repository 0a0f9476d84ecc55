"""Nothing a sandbox started survives `llmd-sandbox down`, a SIGKILL of its daemon, or the end of its
`--lifetime`: no process (/proc), network namespace (`ip netns`), bridge or veth (`ip link`), or listening
port (`ss -ltn`). Two sandboxes at once do not collide."""

import ipaddress
import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from cluster_harness import ECHO_NAMESPACE, HTTP_PORT, kubectl, start_sandbox, stop_sandbox, wait_until

from llmd_sandbox.node import KUBELET_PORT

LLMD_SANDBOX = str(Path(os.sys.executable).with_name("llmd-sandbox"))
GONE_TIMEOUT = 20
LIFETIME = 30  # of the second sandbox: long enough for the checks before it ends


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Footprint:
    """What one sandbox holds on the machine right now."""
    pids: set[int]
    netns: set[str]
    links: set[str]
    ports: set[str]

    @classmethod
    def of(cls, state: dict) -> "Footprint":
        sandbox_id = state["bridge"].removeprefix("llmdbr")
        parents = _parents()
        pids = {state["pid"]}
        while True:  # the daemon and all its descendants: control plane, zygote, containers
            more = {pid for pid, parent in parents.items() if parent in pids} - pids
            if not more:
                break
            pids |= more
        # the reaper runs in a session of its own, so it is no descendant: find it by its command line
        pids |= {pid for pid in parents if f"llmd_sandbox.netns reap {sandbox_id} " in _cmdline(pid)}
        pids = {pid for pid in pids if _running(pid)}
        netns = {line.split()[0] for line in _run("ip", "netns", "list").splitlines()
                 if line.startswith(f"llmd-{sandbox_id}-")}
        links = {link["ifname"] for link in json.loads(_run("ip", "-j", "link", "show"))
                 if link["ifname"] in (state["bridge"],) or link["ifname"].startswith(f"llmdv{sandbox_id}")}
        ports = set()
        for line in _run("ss", "-Hltnp").splitlines():
            fields = line.split()
            owners = {int(pid) for pid in re.findall(r"pid=(\d+)", line)}
            if owners & pids or fields[3] in state["listeners"]:
                ports.add(fields[3])
        return cls(pids, netns, links, ports)

    def still_there(self) -> "Footprint":
        """What of this footprint is still on the machine."""
        netns = set(_run("ip", "netns", "list").split())
        links = {link["ifname"] for link in json.loads(_run("ip", "-j", "link", "show"))}
        listening = {line.split()[3] for line in _run("ss", "-Hltn").splitlines()}
        return Footprint({pid for pid in self.pids if _running(pid)}, self.netns & netns, self.links & links,
                         self.ports & listening)

    @property
    def empty(self) -> bool:
        return not (self.pids or self.netns or self.links or self.ports)


def _run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=10).stdout


def assert_complete(footprint: Footprint, state: dict) -> None:
    """The footprint saw every kind of thing (so an empty one later means they went, not that we missed them)."""
    roles = {p["role"] for p in state["processes"] if "role" in p}
    assert {"daemon", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "zygote"} <= roles
    assert {p["pid"] for p in state["processes"]} <= footprint.pids
    assert len(footprint.pids) > len(state["processes"])  # + the reaper
    assert len(footprint.netns) == len(state["pods"]) and state["bridge"] in footprint.links
    assert len(footprint.links) == 1 + len(state["pods"])
    assert f"{state['node_ip']}:{KUBELET_PORT}" in footprint.ports and set(state["listeners"]) <= footprint.ports


def assert_gone(footprint: Footprint, what: str, timeout: float = GONE_TIMEOUT) -> None:
    try:
        wait_until(lambda: footprint.still_there().empty, timeout, what, interval=0.2)
    except AssertionError:
        raise AssertionError(f"{what}: left {footprint.still_there()}") from None


def serves(state: dict) -> bool:
    pod = next(p for key, p in state["pods"].items() if key.startswith(f"{ECHO_NAMESPACE}/echo-"))
    return requests.get(f"http://{pod['ip']}:{HTTP_PORT}/hello", timeout=5).ok


def test_two_sandboxes_at_once_then_down_and_lifetime_leave_nothing(tmp_path):
    started: dict[str, object] = {}

    def up(name: str, lifetime: float) -> None:
        try:
            started[name] = start_sandbox(tmp_path / name, "echo", lifetime=lifetime)
        except Exception as exc:  # noqa: BLE001 - reported below
            started[name] = exc

    threads = [threading.Thread(target=up, args=("first", 600)), threading.Thread(target=up, args=("second", LIFETIME))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    first, second = started["first"], started["second"]
    try:
        assert not isinstance(first, Exception) and not isinstance(second, Exception), (first, second)
        a, b = first.state, second.state
        # Nothing shared: bridges, ranges, addresses, namespaces, ports.
        assert a["bridge"] != b["bridge"] and a["node_ip"] != b["node_ip"]
        networks = [ipaddress.ip_network(s[key]) for s in (a, b) for key in ("pod_cidr", "service_cidr")]
        assert not any(x.overlaps(y) for i, x in enumerate(networks) for y in networks[i + 1:])
        assert not set(a["listeners"]) & set(b["listeners"])
        assert not set(a["external"].values()) & set(b["external"].values())
        footprint_a, footprint_b = Footprint.of(a), Footprint.of(b)
        assert_complete(footprint_a, a)
        assert_complete(footprint_b, b)
        assert not footprint_a.pids & footprint_b.pids and not footprint_a.netns & footprint_b.netns
        # Each API server knows only its own pods, and each sandbox serves.
        for sandbox, state in ((first, a), (second, b)):
            listed = kubectl(sandbox, "get", "pods", "-n", ECHO_NAMESPACE, "-o", "jsonpath={.items[*].status.podIP}")
            assert sorted(listed.stdout.split()) == sorted(p["ip"] for p in state["pods"].values())
            assert serves(state)

        # `llmd-sandbox down` of the first: all of it goes, the second goes on.
        down = subprocess.run([LLMD_SANDBOX, "down", "--dir", str(first.dir)], capture_output=True, text=True,
                              timeout=60, check=False)
        assert down.returncode == 0, down.stderr
        assert footprint_a.still_there().empty, f"left after down: {footprint_a.still_there()}"
        assert not (first.dir / "state.json").exists()
        assert serves(b) and footprint_b.still_there() == footprint_b

        # The second ends by itself when its lifetime is over.
        assert_gone(footprint_b, "everything of the second sandbox after its --lifetime", LIFETIME + GONE_TIMEOUT)
        assert "stopping: lifetime is over" in (second.dir / "daemon.log").read_text()
        assert not (second.dir / "state.json").exists()
    finally:
        for sandbox in (first, second):
            if not isinstance(sandbox, Exception):
                stop_sandbox(sandbox)


def test_sigkill_of_the_daemon_leaves_nothing(tmp_path):
    sandbox = start_sandbox(tmp_path, "echo")
    try:
        state = sandbox.state
        footprint = Footprint.of(state)
        assert_complete(footprint, state)
        os.kill(state["pid"], signal.SIGKILL)
        # PR_SET_PDEATHSIG takes the children, the reaper the network namespaces and links
        assert_gone(footprint, "everything of a sandbox whose daemon was SIGKILLed")
    finally:
        stop_sandbox(sandbox)


def _end_what_runs_in(directory: Path) -> None:
    """A finalizer for a sandbox started by a shell: whatever runs with `--dir DIRECTORY`, ended by its pid (if
    the caller died before `up` read its parent, `up` watches init and the sandbox would live on)."""
    ours = [pid for pid in _parents() if f"--dir {directory}" in _cmdline(pid)]
    for pid in ours:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while any(_running(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in ours:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def test_killing_the_caller_of_up_stops_the_sandbox(tmp_path):
    # `up` watches its caller (here the shell, which then becomes `sleep` under the same pid)
    caller = subprocess.Popen(["sh", "-c", f'"{LLMD_SANDBOX}" up --scenario echo --dir "{tmp_path}" '
                                           '>/dev/null && exec sleep 120'])
    try:
        wait_until(lambda: Path(f"/proc/{caller.pid}/cmdline").read_bytes().startswith(b"sleep\0"), 90,
                   "up returned and the caller sleeps")
        state = json.loads((tmp_path / "state.json").read_text())
        footprint = Footprint.of(state)
        assert_complete(footprint, state)
        caller.kill()
        caller.wait(10)
        assert_gone(footprint, "everything of a sandbox whose caller was killed")
        assert "stopping: watched pid" in (tmp_path / "daemon.log").read_text()
        assert not (tmp_path / "state.json").exists()
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait(10)
        _end_what_runs_in(tmp_path)
