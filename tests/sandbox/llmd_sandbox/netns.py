"""The pod network: a bridge on the host that holds the node's address, and one network namespace per pod
joined to it by a veth pair, as a CNI bridge plugin makes them.

The API server refuses loopback addresses as endpoints and proxy targets, so pods get addresses in a
10.x.y.0/24 of their own, routed to the bridge; the Service ClusterIP range is routed to the bridge too. No
route sends any of these ranges anywhere else, so no packet for them leaves the machine. Pod namespaces have
no default route. Several sandboxes at once each pick a free /24.

If the supervisor dies without cleaning up (SIGKILL), a reaper process it started, in a session of its own,
sees its pipe close and removes the namespaces and links: `python -m llmd_sandbox.netns reap ID FD`.
"""

from __future__ import annotations

import ipaddress
import os
import random
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass, field

PREFIX = "llmd"


def _ip(*args: str, batch: str | None = None, check: bool = True) -> str:
    command = ["ip", *args] + (["-batch", "-"] if batch is not None else [])
    done = subprocess.run(command, input=batch, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}\n{batch or ''}")
    return done.stdout


def used_networks() -> list[ipaddress.IPv4Network]:
    networks = []
    for line in _ip("-4", "route", "show", "table", "all").splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "blackhole"):
            word = line.split()[1]
        try:
            networks.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    return networks


def _free_network(first: int, used: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    for _attempt in range(200):
        candidate = ipaddress.ip_network(f"10.{first}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(u) for u in used if u.prefixlen > 0):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 for the sandbox's pods")


@dataclass
class PodNetwork:
    """One sandbox's bridge and its pods' namespaces."""

    id: str = field(default_factory=lambda: secrets.token_hex(3))
    pods: ipaddress.IPv4Network | None = None
    services: ipaddress.IPv4Network | None = None
    namespaces: dict[str, str] = field(default_factory=dict)  # pod uid -> namespace name
    addresses: dict[str, str] = field(default_factory=dict)  # pod uid -> IP
    _next: int = 2
    _reaper: subprocess.Popen | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def bridge(self) -> str:
        return f"{PREFIX}br{self.id}"

    @property
    def node_ip(self) -> str:
        return str(self.pods.network_address + 1)

    def create(self) -> None:
        used = used_networks()
        self.pods = _free_network(random.randint(200, 250), used)
        self.services = _free_network(random.randint(96, 127), used + [self.pods])
        self._start_reaper()
        _ip(batch=f"link add {self.bridge} type bridge\n"
                  f"addr add {self.node_ip}/24 dev {self.bridge}\n"
                  f"link set {self.bridge} up\n"
                  f"route add {self.services} dev {self.bridge}\n")

    def _start_reaper(self) -> None:
        read_end, write_end = os.pipe()
        self._reaper = subprocess.Popen([sys.executable, "-m", "llmd_sandbox.netns", "reap", self.id, str(read_end)],
                                        pass_fds=(read_end,), start_new_session=True, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(read_end)
        self._reaper_pipe = write_end  # never written: the reaper waits for it to close
        os.set_inheritable(write_end, False)

    def add_pod(self, uid: str) -> tuple[str, str]:
        """A namespace and an address for a pod: (namespace name, IP). Pods are added from several threads at
        once: the address is taken under a lock, and given back, with what was made, if making it fails."""
        with self._lock:
            if uid in self.namespaces:
                return self.namespaces[uid], self.addresses[uid]
            taken = set(self.addresses.values())
            hosts = [str(h) for h in self.pods.hosts()][1:]
            ip = next(h for h in hosts[self._next - 2:] + hosts if h not in taken)
            self._next = hosts.index(ip) + 3
            self.addresses[uid] = ip
        number = int(ipaddress.ip_address(ip)) & 0xFF
        name = f"{PREFIX}-{self.id}-{number}"
        veth = f"{PREFIX}v{self.id}{number}"
        try:
            _ip("netns", "add", name)
            _ip(batch=f"link add {veth} type veth peer name eth0 netns {name}\n"
                      f"link set {veth} master {self.bridge} up\n")
            _ip("-n", name, batch=f"addr add {ip}/24 dev eth0\nlink set eth0 up\nlink set lo up\n")
            with self._lock:
                if self.addresses.get(uid) != ip:
                    raise RuntimeError(f"pod {uid} was removed while its network was being made")
                self.namespaces[uid] = name
        except BaseException:
            _ip("link", "del", veth, check=False)
            _ip("netns", "del", name, check=False)
            with self._lock:
                if self.addresses.get(uid) == ip:
                    del self.addresses[uid]
            raise
        return name, ip

    def remove_pod(self, uid: str) -> None:
        with self._lock:
            name = self.namespaces.pop(uid, None)
            self.addresses.pop(uid, None)  # a pod still being added sees this and undoes its own work
        if name:
            # The veth pair goes with the namespace only once no process is left in it (a container being
            # reaped still holds it): delete the pair itself, so no link outlives the pod.
            _ip("link", "del", f"{PREFIX}v{self.id}{name.rsplit('-', 1)[1]}", check=False)
            _ip("netns", "del", name, check=False)

    def destroy(self) -> None:
        for uid in list(self.namespaces):
            self.remove_pod(uid)
        if self.pods is not None:
            _ip("link", "del", self.bridge, check=False)
        if self._reaper is not None:
            os.close(self._reaper_pipe)
            self._reaper.wait(5)
            self._reaper = None


def reap(sandbox_id: str) -> None:
    """Removes every namespace and link of one sandbox (what is already gone is skipped)."""
    for line in _ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"{PREFIX}-{sandbox_id}-"):
            _ip("link", "del", f"{PREFIX}v{sandbox_id}{name.rsplit('-', 1)[1]}", check=False)
            _ip("netns", "del", name, check=False)
    _ip("link", "del", f"{PREFIX}br{sandbox_id}", check=False)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "reap":
        with os.fdopen(int(argv[2]), "rb") as pipe:
            pipe.read()  # returns when the supervisor has closed it or died
        reap(argv[1])
        return 0
    print("usage: python -m llmd_sandbox.netns reap ID FD", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
