"""Fail when a test run left something of the suite's running: processes, listening ports, network namespaces, links.

    python3 tests/tools/check_leftovers.py snapshot FILE          # before the run; prints the run's marker
    export LLMD_VERIFY_LEFTOVER_RUN=<marker>                       # processes started from here on carry it
    ...run tests...
    python3 tests/tools/check_leftovers.py check FILE --label "integration target port_forward" [--wait 5] [--kill]

The snapshot records every process (pid and start time, so a reused pid is new), every listening TCP socket,
network namespace and link there is: none of them is ever counted. What is new is the run's when it carries the
run's marker (the variable above, exported by make and by the integration targets' sandbox.sh), on itself or on a
live ancestor: only that is counted, and only that is ended. So a sandbox or a play that a developer starts beside
the tests, before or during the run, never fails them and is never touched; it is shown as a note.

`check` names each leftover of the run's still there after --wait seconds, with its pid and full command line,
and exits 1 (2 on bad use). With --kill it then ends them (SIGTERM, SIGKILL after 3 s) and removes the network
namespaces and links that they held, so that the next target starts clean.

The suite's processes are recognised by their command line (ansible-playbook, ansible, ansible-test and its
pytest workers, Ansible modules -- the port_forward daemons are forked modules, AnsiballZ_port_forward.py --,
kubectl, llmd-sandbox and `python -m llmd_sandbox...`, the sandbox's kube-apiserver, etcd,
kube-controller-manager, kube-scheduler, llm-d-inference-sim, epp and envoy, files of the test tree), or by
being the pid of a port_forward state file. The checker's own ancestors (make, the shell) are never counted.
Listening ports count when a leftover process holds them (they are listed with it), or when they are on a
sandbox address (127.0.0.0/8 other than 127.0.0.1, or an address of a new `llmd*` link) and held by a process of
the run's or by none. Network namespaces `llmd-*` and links `llmd*` (the sandbox's pod network) count when new,
unless only processes of someone else's are inside them or name their sandbox id.
"""

from __future__ import annotations

import argparse
import glob
import ipaddress
import json
import os
import re
import secrets
import shlex
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
    r"(^|[/\s])(kube-apiserver|etcd|kube-controller-manager|kube-scheduler|llm-d-inference-sim|epp|envoy)(-v?[0-9][^\s/]*)?(\s|$)",
    r"\.cache/llmd-verify/",  # where the sandbox's binaries are built
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


def _sandbox_id(name):
    """The sandbox id in a namespace or link name (llmd-ID-N, llmdbrID, llmdvIDN), or None."""
    match = re.match(r"llmd-([0-9a-f]+)-[0-9]+$|llmdbr([0-9a-f]+)$|llmdv([0-9a-f]{6})[0-9]+$", name)
    return next((g for g in match.groups() if g), None) if match else None


def _netns_inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


class Attribution:
    """Who started a process: this run (its marker, on it or a live ancestor), another run, or nobody known."""

    def __init__(self, snapshot, table):
        self.ours, self.table, self.markers = snapshot["marker"], table, {}

    def marker(self, pid):
        if pid not in self.markers:
            self.markers[pid] = process_marker(pid)
        return self.markers[pid]

    def of(self, pid):
        """"ours", "another run's" or "unmarked" (nearest marker wins)."""
        for candidate in [pid] + ancestors(pid, self.table):
            marker = self.marker(candidate)
            if marker:
                return "ours" if marker == self.ours else "another run's"
        return "unmarked"


def find_leftovers(snapshot):
    """What the run left, and what is new but not the run's.

    {"processes": [info + "ports"], "sockets": [...], "netns": [...], "links": [...],
     "not_ours": [lines]}: the first four are counted; the processes and the namespaces and links that one of
    them holds are the ones --kill ends.
    """
    before = {tuple(p) for p in snapshot["processes"]}
    table = processes()
    me = os.getpid()
    exempt = {me, *ancestors(me, table)}
    from_states = forward_pids()
    who = Attribution(snapshot, table)
    new = {pid: info for pid, info in table.items()
           if pid not in exempt and (pid, info["start"]) not in before and info["state"] != "Z"}

    left, not_ours = [], []
    for pid, info in sorted(new.items()):
        command = " ".join(info["argv"])
        if not (SUITE_PROCESS.search(command) or SUITE_PROCESS.search(info["name"]) or pid in from_states):
            continue
        owner = who.of(pid)
        if owner == "ours":
            info["ports"] = []
            left.append(info)
        else:
            not_ours.append("process %d (%s, not counted): %s" % (pid, owner, _shorten(command_line(info["argv"]))))
    left_pids = {p["pid"] for p in left}

    new_sockets = {inode: address for inode, address in listening_sockets().items() if inode not in set(snapshot["sockets"])}
    owners = socket_owners(new_sockets)
    new_links = [name for name in links() if name not in snapshot["links"]]
    sandbox_ips = link_addresses(new_links)
    sockets = []
    for inode, address in sorted(new_sockets.items(), key=lambda item: item[1]):
        holders = owners.get(inode, set())
        for info in left:
            if info["pid"] in holders:
                info["ports"].append(address)
        if holders & left_pids or not _is_sandbox_address(address, sandbox_ips):
            continue
        if any(h in new and who.of(h) == "ours" for h in holders) or not holders:
            sockets.append({"address": address, "holders": sorted(holders)})
        else:
            not_ours.append("listening port %s (held by pid %s, not this run's: not counted)"
                            % (address, ", ".join(map(str, sorted(holders)))))

    # Namespaces and links are the run's when a process of the run is inside one of the sandbox's namespaces or
    # names its id (the sandbox's reaper), another's when only other processes do; with no process at all
    # they count, but are left in place.
    new_netns = [name for name in network_namespaces() if name not in snapshot["netns"]]
    inside = {}  # network namespace inode -> pids in it
    for pid in new:
        inode = _netns_inode("/proc/%d/ns/net" % pid)
        if inode is not None:
            inside.setdefault(inode, set()).add(pid)
    by_id = {}
    for name in new_netns:
        by_id.setdefault(_sandbox_id(name), set()).update(inside.get(_netns_inode("/run/netns/" + name), set()))
    for pid, info in new.items():
        for sandbox_id in list(by_id) + [_sandbox_id(n) for n in new_links]:
            if sandbox_id and re.search(r"(^|\s)%s(\s|$)" % sandbox_id, " ".join(info["argv"])):
                by_id.setdefault(sandbox_id, set()).add(pid)
    found = {"netns": [], "links": []}
    for kind, names in (("netns", new_netns), ("links", new_links)):
        for name in names:
            related = by_id.get(_sandbox_id(name), set())
            owners_of = {who.of(pid) for pid in related}
            if "ours" in owners_of:
                found[kind].append({"name": name, "owned": True})
            elif related:
                not_ours.append("%s %s (of pid %s, not this run's: not counted)"
                                % ("network namespace" if kind == "netns" else "link", name,
                                   ", ".join(map(str, sorted(related)))))
            else:
                found[kind].append({"name": name, "owned": False})
    return {"processes": left, "sockets": sockets, "netns": found["netns"], "links": found["links"],
            "not_ours": not_ours}


def command_line(argv):
    """A command line on one line, quoted as a shell would need it."""
    return shlex.join(argv).replace("\n", "\\n")


def _shorten(text, width=160):
    return text if len(text) <= width else text[:width - 3] + "..."


NOTES_SHOWN = 12


def report(found, label):
    lines = []
    for info in found["processes"]:
        lines.append("  process %d: %s" % (info["pid"], command_line(info["argv"])))
        detail = "parent %d, session %d" % (info["ppid"], info["sid"])
        if info["ports"]:
            detail += ", listening on " + ", ".join(info["ports"])
        lines.append("      (%s)" % detail)
    for entry in found["sockets"]:
        held = ("held by pid " + ", ".join(map(str, entry["holders"]))) if entry["holders"] else "no process found"
        lines.append("  listening port %s (%s)" % (entry["address"], held))
    for kind, title in (("netns", "network namespace"), ("links", "link")):
        for entry in found[kind]:
            lines.append("  %s %s%s" % (title, entry["name"], "" if entry["owned"] else " (no process holds it)"))
    text = ""
    if lines:
        text = "LEFTOVERS after %s: %d thing(s) it started are still there\n%s\n" % (label, count(found), "\n".join(lines))
    notes = found["not_ours"]
    text += "".join("note: new since the snapshot but not %s's: %s\n" % (label, line) for line in notes[:NOTES_SHOWN])
    if len(notes) > NOTES_SHOWN:
        text += "note: and %d more of someone else's\n" % (len(notes) - NOTES_SHOWN)
    return text


def count(found):
    return sum(len(found[key]) for key in ("processes", "sockets", "netns", "links"))


def end(found):
    """End the run's leftover processes (by pid and start time), then remove the namespaces and links they held."""
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
    for entry in found["netns"]:
        if entry["owned"]:
            subprocess.run(["ip", "netns", "del", entry["name"]], check=False, capture_output=True)
    for entry in found["links"]:
        if entry["owned"] and os.path.exists("/sys/class/net/" + entry["name"]):
            subprocess.run(["ip", "link", "del", entry["name"]], check=False, capture_output=True)
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
    check.add_argument("--kill", action="store_true",
                       help="then end the leftover processes, and the namespaces and links that they held")
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
        sys.stdout.write(report(found, options.label))
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
