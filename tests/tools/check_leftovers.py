"""Fail when a test run left something of the suite's running: processes, listening ports, network namespaces, links.

    python3 tests/tools/check_leftovers.py snapshot FILE          # before the run; prints the run's marker
    export LLMD_VERIFY_LEFTOVER_RUN=<marker>                       # processes started from here on carry it
    ...run tests...
    python3 tests/tools/check_leftovers.py check FILE --label "integration target port_forward" [--wait 5] [--kill]

The snapshot records every process (pid and start time, so a reused pid is new), every listening TCP socket,
network namespace and link there is: none of them is ever counted, so a sandbox or a play a developer runs beside
the tests does not fail them. `check` then names each one of the suite's that is new and still there after
--wait seconds, with its pid and full command line, and exits 1 (2 on bad use). With --kill it then ends them
(SIGTERM, SIGKILL after 3 s) and removes the namespaces and links, so that the next target starts clean.

The suite's processes are recognised by their command line (ansible-playbook, ansible, ansible-test and its
pytest workers, Ansible modules -- the port_forward daemons are forked modules, AnsiballZ_port_forward.py --,
kubectl, llmd-sandbox and `python -m llmd_sandbox...`, the sandbox's kube-apiserver, etcd,
kube-controller-manager, kube-scheduler, llm-d-inference-sim, epp and envoy, files of the test tree), or by
being the pid of a port_forward state file. Processes that carry another run's marker (or whose live ancestor
does) belong to that run and are skipped; the checker's own ancestors (make, the shell) are never counted.
Listening ports count when a leftover process holds them, or when they are on a sandbox address (127.0.0.0/8
other than 127.0.0.1, or an address of an `llmd*` link) and no process outside the run holds them. Namespaces
`llmd-*` and links `llmd*` (the sandbox's pod network) count when new.
"""

from __future__ import annotations

import argparse
import glob
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time

MARKER_ENV = "LLMD_VERIFY_LEFTOVER_RUN"
PROCESS_PATTERNS = [
    r"ansible-playbook", r"ansible-test", r"ansible_test", r"/bin/ansible(-[a-z]+)?(\s|$)", r"AnsiballZ_",
    r"ansible_collections/llmd/verify", r"llmd-verify-test",
    r"(^|[/\s])kubectl(\s|$)",
    r"llmd-sandbox", r"llmd_sandbox",
    r"(^|[/\s])(kube-apiserver|etcd|kube-controller-manager|kube-scheduler|llm-d-inference-sim|epp|envoy)(\s|$)",
    r"pytest", r"exec\(eval\(sys\.stdin\.readline\(\)\)\)",  # pytest-xdist's execnet workers
    r"port-forward-test\.", r"reconnect_time\.py", r"check_report\.py",
]
SUITE_PROCESS = re.compile("|".join("(?:%s)" % p for p in PROCESS_PATTERNS))
PREFIX = "llmd"
# Where port_forward keeps its state files: the user's, and the private ones the targets make under TMPDIR.
STATE_GLOBS = [
    os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/nonexistent", "llmd_verify", "port_forward", "*.json"),
    os.path.expanduser("~/.ansible/llmd_verify/port_forward/*.json"),
    os.path.join(os.environ.get("TMPDIR") or "/tmp", "port-forward-test.*", "llmd_verify", "port_forward", "*.json"),
]


# --- reading the machine ----------------------------------------------------------------------------------------


def _read(path, mode="r"):
    try:
        with open(path, mode) as handle:
            return handle.read()
    except OSError:
        return None


def processes():
    """{pid: info} of every process but kernel threads, from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = _read("/proc/%d/stat" % pid)
        raw = _read("/proc/%d/cmdline" % pid, "rb")
        if stat is None or raw is None or not raw:  # gone, or a kernel thread (no command line)
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[pid] = {
            "pid": pid, "state": fields[0], "ppid": int(fields[1]), "sid": int(fields[3]), "start": int(fields[19]),
            "name": name, "argv": [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")],
        }
    return found


def process_marker(pid):
    """The run marker in a process's environment: a string, "" without one, None when unreadable."""
    raw = _read("/proc/%d/environ" % pid, "rb")
    if raw is None:
        return None
    for item in raw.split(b"\0"):
        if item.startswith(MARKER_ENV.encode() + b"="):
            return item.split(b"=", 1)[1].decode(errors="replace")
    return ""


def listening_sockets():
    """{inode: "address:port"} of the listening TCP sockets of this network namespace."""
    found = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in (_read(table) or "").splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":
                continue
            address, port = fields[1].split(":")
            packed = bytes.fromhex(address)
            if family == socket.AF_INET:
                host = socket.inet_ntop(family, packed[::-1])
            else:  # four little-endian 32-bit words
                host = socket.inet_ntop(family, b"".join(packed[i:i + 4][::-1] for i in range(0, 16, 4)))
                host = "[%s]" % host
            found[fields[9]] = "%s:%d" % (host, int(port, 16))
    return found


def socket_owners(inodes):
    """{inode: set of pids} holding those sockets."""
    owners = {}
    wanted = {"socket:[%s]" % i: i for i in inodes}
    if not wanted:
        return owners
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target in wanted:
            owners.setdefault(wanted[target], set()).add(int(fd.split("/")[2]))
    return owners


def network_namespaces():
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(PREFIX + "-"))
    except OSError:
        return []


def links():
    try:
        return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(PREFIX))
    except OSError:
        return []


def link_addresses(names):
    """The IPv4 addresses of the given links (the sandbox's bridges hold its node address)."""
    if not names:
        return set()
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return set()
    return {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3 and line.split()[1] in names}


def forward_pids():
    """Pids recorded in port_forward state files."""
    pids = set()
    for path in STATE_GLOBS:
        for state_file in glob.glob(path):
            try:
                with open(state_file) as handle:
                    pid = json.load(handle).get("pid")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(pid, int):
                pids.add(pid)
    return pids


# --- snapshot and check -----------------------------------------------------------------------------------------


def take_snapshot(marker):
    return {
        "marker": marker,
        "time": time.time(),
        "processes": sorted([p["pid"], p["start"]] for p in processes().values()),
        "sockets": sorted(listening_sockets()),
        "netns": network_namespaces(),
        "links": links(),
    }


def ancestors(pid, table):
    """The pids above pid, nearest first."""
    chain, seen = [], {pid}
    while pid in table and table[pid]["ppid"] not in seen and table[pid]["ppid"] > 0:
        pid = table[pid]["ppid"]
        seen.add(pid)
        chain.append(pid)
    return chain


def _is_sandbox_address(address, sandbox_ips):
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if host in sandbox_ips:
        return True
    return ip.version == 4 and ip in ipaddress.ip_network("127.0.0.0/8") and host != "127.0.0.1"


def find_leftovers(snapshot):
    """What the run left: {"processes": [info + "why", "ports"], "sockets": [...], "netns": [...], "links": [...]}."""
    ours = {snapshot["marker"]}
    before = {tuple(p) for p in snapshot["processes"]}
    table = processes()
    me = os.getpid()
    exempt = {me, *ancestors(me, table)}
    from_states = forward_pids()
    markers = {}

    def marker_of(pid):
        if pid not in markers:
            markers[pid] = process_marker(pid)
        return markers[pid]

    def belongs_elsewhere(pid):
        """Whether pid or a live ancestor carries another run's marker (nearest marker wins)."""
        for candidate in [pid] + ancestors(pid, table):
            marker = marker_of(candidate)
            if marker:
                return marker not in ours
        return False

    left = []
    for pid, info in sorted(table.items()):
        if pid in exempt or (pid, info["start"]) in before or info["state"] == "Z":
            continue
        command = " ".join(info["argv"])
        if not (SUITE_PROCESS.search(command) or SUITE_PROCESS.search(info["name"]) or pid in from_states):
            continue
        if belongs_elsewhere(pid):
            continue
        marker = marker_of(pid)
        info["why"] = "carries this run's marker" if marker in ours else "started after the snapshot"
        info["ports"] = []
        left.append(info)

    new_sockets = {inode: address for inode, address in listening_sockets().items() if inode not in set(snapshot["sockets"])}
    owners = socket_owners(new_sockets)
    left_pids = {p["pid"] for p in left}
    new_links = [name for name in links() if name not in snapshot["links"]]
    sandbox_ips = link_addresses(new_links)
    sockets = []
    for inode, address in sorted(new_sockets.items(), key=lambda item: item[1]):
        holders = owners.get(inode, set())
        held = holders & left_pids
        for info in left:
            if info["pid"] in held:
                info["ports"].append(address)
        if held or not _is_sandbox_address(address, sandbox_ips):
            continue
        # A sandbox address held by a process that is not ours (started before, or another run's) is not counted.
        if holders and all((h, table[h]["start"]) in before or belongs_elsewhere(h) for h in holders if h in table):
            continue
        sockets.append({"address": address, "holders": sorted(holders)})
    return {
        "processes": left,
        "sockets": sockets,
        "netns": [name for name in network_namespaces() if name not in snapshot["netns"]],
        "links": new_links,
    }


def report(found, label):
    lines = []
    for info in found["processes"]:
        lines.append("  process %d: %s" % (info["pid"], " ".join(info["argv"])))
        detail = "parent %d, session %d, %s" % (info["ppid"], info["sid"], info["why"])
        if info["ports"]:
            detail += ", listening on " + ", ".join(info["ports"])
        lines.append("      (%s)" % detail)
    for entry in found["sockets"]:
        held = ("held by pid " + ", ".join(map(str, entry["holders"]))) if entry["holders"] else "no process found"
        lines.append("  listening port %s (%s)" % (entry["address"], held))
    lines += ["  network namespace %s" % name for name in found["netns"]]
    lines += ["  link %s" % name for name in found["links"]]
    if not lines:
        return ""
    return "LEFTOVERS after %s: %d thing(s) it started are still there\n%s\n" % (label, count(found), "\n".join(lines))


def count(found):
    return sum(len(found[key]) for key in ("processes", "sockets", "netns", "links"))


def end(found):
    """End the leftover processes (by pid and start time) and remove the namespaces and links."""
    pids = {info["pid"]: info["start"] for info in found["processes"]}

    def alive():
        table = processes()
        return [pid for pid, start in pids.items() if pid in table and table[pid]["start"] == start and table[pid]["state"] != "Z"]

    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        for pid in alive():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while alive() and time.monotonic() < deadline:
            time.sleep(0.1)
    for name in found["netns"]:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
    for name in found["links"]:
        if os.path.exists("/sys/class/net/" + name):
            subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)
    return alive()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    snap = commands.add_parser("snapshot", help="record what runs now; print the run's marker")
    snap.add_argument("file")
    check = commands.add_parser("check", help="fail naming what the run started and left")
    check.add_argument("file")
    check.add_argument("--label", default="the test run", help="what ran, for the message")
    check.add_argument("--wait", type=float, default=5.0, help="seconds to let things end by themselves first")
    check.add_argument("--kill", action="store_true", help="then end what was left")
    options = parser.parse_args(argv)

    if options.command == "snapshot":
        marker = os.environ.get(MARKER_ENV) or "run-%d-%s" % (os.getpid(), secrets.token_hex(4))
        os.makedirs(os.path.dirname(os.path.abspath(options.file)), exist_ok=True)
        with open(options.file, "w") as out:
            json.dump(take_snapshot(marker), out)
        print(marker)
        return 0

    try:
        with open(options.file) as handle:
            snapshot = json.load(handle)
    except (OSError, ValueError) as exc:
        print("check_leftovers: no usable snapshot %s (%s): take one before the run" % (options.file, exc), file=sys.stderr)
        return 2
    deadline = time.monotonic() + options.wait
    found = find_leftovers(snapshot)
    while count(found) and time.monotonic() < deadline:
        time.sleep(0.25)
        found = find_leftovers(snapshot)
    if not count(found):
        print("no leftovers after %s" % options.label)
        return 0
    sys.stdout.write(report(found, options.label))
    if options.kill:
        survivors = end(found)
        print("  ended them%s" % ("; still alive: %s" % " ".join(map(str, survivors)) if survivors else ""))
    sys.stdout.flush()
    return 1


if __name__ == "__main__":
    sys.exit(main())
