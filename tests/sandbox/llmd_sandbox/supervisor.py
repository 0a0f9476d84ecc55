"""The sandbox daemon: store, API server, controllers, kubelet and network in one asyncio loop.

Started detached by `llmd-sandbox up` (python -m llmd_sandbox.supervisor ...). It tells `up` it is ready (or
why not) through an inherited pipe, keeps DIR/state.json current, and stops everything it started on SIGTERM,
when the watched pid is gone, or when its lifetime runs out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import random
import signal
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from .apiserver import make_app, start
from .auth import Authz
from .controllers import Controllers
from .kubelet import NODE_NAME, Kubelet, Zygote, flag_value, is_vllm
from .network import Network
from .resources import find_resource
from .scenario import EXPECT_READY_ANNOTATION, Scenario, load
from .state import alive, state_path, write_state
from .store import Store
from .tls import CertificateAuthority, api_server_tls

log = logging.getLogger("llmd_sandbox")

DEPLOYMENTS = find_resource("apps", "v1", "deployments")
NODES = find_resource("", "v1", "nodes")
READY_TIMEOUT = 30.0
WATCH_INTERVAL = 0.25
STATE_WRITE_INTERVAL = 0.1


class Supervisor:
    def __init__(self, scenario: Scenario, directory: Path, *, tls: bool):
        self.scenario, self.directory, self.tls = scenario, directory, tls
        self.store = Store()
        self.authz = Authz(scenario.readonly_namespace)
        self.ca = CertificateAuthority.create()
        # Pod IPs 127.A.B.N with A.B random per sandbox, so parallel sandboxes do not collide.
        self.pod_prefix = f"127.{random.randint(16, 250)}.{random.randint(0, 255)}."
        self.node_ip = self.pod_prefix + "1"
        self.api_server = ""
        self.ca_file: Path | None = None
        self.runner = None
        self.state_dirty = True
        self.network = Network(self.store, node_ip=self.node_ip, ca=self.ca, cert_dir=directory / "certs",
                               on_bound=self._network_changed)
        self.controllers = Controllers(self.store, self.network.address)
        self.kubelet: Kubelet | None = None
        self.zygote = Zygote()
        self.pod_restarts = 0

    def _network_changed(self) -> None:
        self.controllers.poke()
        self.state_dirty = True

    # ---- start -----------------------------------------------------------------------------------

    async def start(self) -> None:
        zygote_started = asyncio.create_task(self.zygote.start())  # its imports overlap with our own setup
        (self.directory / "certs").mkdir(parents=True, exist_ok=True)
        ssl_context = None
        if self.tls:
            _ca, self.ca_file, ssl_context = api_server_tls(self.directory, ca=self.ca)
        elif self._has_tls_objects():  # routes and ingresses still need a CA to trust
            self.ca_file = self.ca.write_ca(self.directory / "ca.crt")
        log_root = self.directory / "logs"
        log_root.mkdir(exist_ok=True)
        app = make_app(self.store, authz=self.authz, log_root=log_root)
        self.runner, port = await start(app, ssl_context=ssl_context)
        self.api_server = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        self._write_kubeconfig()
        self.kubelet = Kubelet(self.store, node_ip=self.node_ip, pod_prefix=self.pod_prefix, log_root=log_root,
                               container_env={"api_server": self.api_server, "token": self.authz.tokens["admin"],
                                              "ca_file": str(self.ca_file) if self.tls else ""},
                               on_change=self._pods_changed, zygote=self.zygote)
        await zygote_started
        self.store.subscribe(self._count_restarts)
        self.store.create(_node(self.node_ip))
        self.controllers.start()
        await self.kubelet.start()
        objects = self.scenario.objects
        for obj in sorted(objects, key=lambda o: o["kind"] != "Namespace"):
            self.store.create(obj)
        await self.network.start()

    def _has_tls_objects(self) -> bool:
        return any(o["kind"] in ("Route", "Ingress") and o.get("spec", {}).get("tls") for o in self.scenario.objects)

    def _pods_changed(self) -> None:
        self.state_dirty = True

    def _count_restarts(self, event: str, obj: dict) -> None:
        if event == "DELETED" and obj.get("kind") == "Pod":
            self.pod_restarts += 1

    def _write_kubeconfig(self) -> None:
        cluster = {"server": self.api_server}
        if self.tls:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca.cert_pem).decode()
        namespaces = {"admin": self.scenario.namespace, "readonly": self.scenario.readonly_namespace,
                      "none": self.scenario.namespace}
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "sandbox", "cluster": cluster}],
            "users": [{"name": f"sandbox-{role}", "user": {"token": token}} for role, token in self.authz.tokens.items()],
            "contexts": [{"name": "sandbox" if role == "admin" else f"sandbox-{role}",
                          "context": {"cluster": "sandbox", "user": f"sandbox-{role}", "namespace": namespaces[role]}}
                         for role in self.authz.tokens],
            "current-context": "sandbox"}
        fd = os.open(self.directory / "kubeconfig", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(config, out, sort_keys=False)

    # ---- readiness -------------------------------------------------------------------------------

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            while True:
                missing = await self._not_ready(http)
                if not missing:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {timeout:.0f} s: {missing}")
                await asyncio.sleep(0.05)

    async def _not_ready(self, http: aiohttp.ClientSession) -> str:
        for deployment in self.store.list(DEPLOYMENTS)[0]:
            annotations = deployment["spec"]["template"].get("metadata", {}).get("annotations") or {}
            if annotations.get(EXPECT_READY_ANNOTATION) == "false":
                continue
            if deployment.get("status", {}).get("readyReplicas", 0) < deployment["spec"].get("replicas", 1):
                return f"deployment {deployment['metadata']['name']} has no ready pods yet"
        wanted = _wanted_listeners(self.scenario)
        for key in wanted:
            if key not in self.network.bound_ips:
                return f"{key} has no address yet"
        for key, ip in self.network.bound_ips.items():
            if key.startswith("NodePort/"):
                continue
            try:
                _reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, _listener_ports(self.store, key)[0]), 1)
                writer.close()
            except (OSError, TimeoutError):
                return f"{key} does not answer on {ip}"
        for serving in self.scenario.serving_checks:
            target = self.network.endpoint(self.scenario.namespace, serving["service"], serving["port"])
            if target is None:
                return f"service {serving['service']} has no ready endpoint"
            try:
                async with http.get(f"http://{target[0]}:{target[1]}/v1/models",
                                    timeout=aiohttp.ClientTimeout(total=1)) as answer:
                    if answer.status not in serving.get("status", [200]):
                        return f"service {serving['service']} answers /v1/models with {answer.status}"
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                return f"service {serving['service']} does not answer: {exc!r}"
        return ""

    # ---- state.json ------------------------------------------------------------------------------

    def state(self) -> dict:
        pods = {}
        for runtime in self.kubelet.pods.values():
            vllm = next((c.spec for c in runtime.containers if is_vllm(c.spec)), None)
            entry = {"ip": runtime.ip, "uid": runtime.uid, "role": runtime.labels.get("llm-d.ai/role", ""),
                     "containers": {c.name: [p["containerPort"] for p in c.spec.get("ports") or []]
                                    for c in runtime.containers}}
            if vllm is not None:
                args = vllm.get("args") or []
                entry["ttft_ms"] = float(flag_value(args, "--time-to-first-token") or 0)
                entry["itl_ms"] = float(flag_value(args, "--inter-token-latency") or 0)
            pods[f"{runtime.namespace}/{runtime.name}"] = entry
        api_port = self.api_server.rsplit(":", 1)[1]
        listeners = [f"127.0.0.1:{api_port}"] + [
            f"{ip}:{port}" for key, ip in self.network.bound_ips.items() for port in _listener_ports(self.store, key)]
        return {
            "pid": os.getpid(), "dir": str(self.directory), "scenario": self.scenario.name,
            "namespace": self.scenario.namespace, "readonly_namespace": self.scenario.readonly_namespace,
            "api_server": self.api_server, "kubeconfig": str(self.directory / "kubeconfig"),
            "ca_file": str(self.ca_file) if self.ca_file else None, "tokens": dict(self.authz.tokens),
            "node_ip": self.node_ip, "external": dict(self.network.bound_ips), "listeners": listeners,
            "pods": pods, "pod_restarts": self.pod_restarts,
            "processes": [{"pid": os.getpid(), "role": "supervisor"}] + self.kubelet.processes()}

    async def keep_state_written(self) -> None:
        while True:
            if self.state_dirty:
                self.state_dirty = False
                write_state(self.directory, self.state())
            await asyncio.sleep(STATE_WRITE_INTERVAL)

    # ---- stop ------------------------------------------------------------------------------------

    async def stop(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.stop()
        elif self.zygote.process is not None:
            await self.zygote.stop()
        await self.network.stop()
        await self.controllers.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            state_path(self.directory).unlink()


def _node(ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                                                       "node-role.kubernetes.io/control-plane": ""}},
            "spec": {"podCIDR": ip.rsplit(".", 1)[0] + ".0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": NODE_NAME}],
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.4", "containerRuntimeVersion": "containerd://1.7.24",
                                    "operatingSystem": "linux", "architecture": "amd64"}}}


def _wanted_listeners(scenario: Scenario) -> list[str]:
    keys = []
    for obj in scenario.objects:
        meta = obj["metadata"]
        if obj["kind"] == "Service" and obj.get("spec", {}).get("type") == "LoadBalancer":
            keys.append(f"Service/{meta['namespace']}/{meta['name']}")
        elif obj["kind"] == "Ingress":
            keys.append(f"Ingress/{meta['namespace']}/{meta['name']}")
        elif obj["kind"] == "Route":
            keys.append("Router/default")
    return keys


def _listener_ports(store: Store, key: str) -> list[int]:
    kind, _sep, rest = key.partition("/")
    if kind == "NodePort":
        return [int(rest)]
    if kind == "Service":
        namespace, name = rest.split("/")
        return [p["port"] for p in store.get(find_resource("", "v1", "services"), namespace, name)["spec"]["ports"]]
    if kind == "Ingress":
        namespace, name = rest.split("/")
        ingress = store.get(find_resource("networking.k8s.io", "v1", "ingresses"), namespace, name)
        return [80, 443] if ingress["spec"].get("tls") else [80]
    return [80, 443]


async def _until_stopped(watch_pid: int | None, lifetime: float) -> str:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    deadline = time.monotonic() + lifetime
    while not stop.is_set():
        if watch_pid and not alive(watch_pid):
            return f"watched pid {watch_pid} is gone"
        if time.monotonic() > deadline:
            return "lifetime is over"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_INTERVAL)
    return "asked to stop"


async def run(options: argparse.Namespace) -> int:
    ready_pipe = os.fdopen(options.ready_fd, "w") if options.ready_fd is not None else None
    scenario = load(options.scenario)
    supervisor = Supervisor(scenario, Path(options.dir).resolve(), tls=scenario.tls and not options.no_tls)
    state_task = None
    try:
        try:
            await supervisor.start()
            await supervisor.wait_ready(READY_TIMEOUT)
            write_state(supervisor.directory, supervisor.state())
        except Exception as exc:  # anything that stops `up` is reported to it, then everything is stopped
            log.exception("sandbox failed to start")
            if ready_pipe:
                ready_pipe.write(f"error: {exc}\n")
                ready_pipe.close()
            return 1
        state_task = asyncio.create_task(supervisor.keep_state_written())
        if ready_pipe:
            ready_pipe.write("ready\n")
            ready_pipe.close()
        log.info("sandbox %s ready: %s", scenario.name, supervisor.api_server)
        reason = await _until_stopped(options.watch_pid, options.lifetime)
        log.info("stopping: %s", reason)
        return 0
    finally:
        if state_task is not None:
            state_task.cancel()
            await asyncio.gather(state_task, return_exceptions=True)
        await supervisor.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmd_sandbox.supervisor")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--watch-pid", type=int)
    parser.add_argument("--lifetime", type=float, default=7200)
    parser.add_argument("--no-tls", action="store_true")
    parser.add_argument("--ready-fd", type=int)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("llmd_sandbox.apiserver.access").setLevel(logging.WARNING)
    log.info("starting scenario %s in %s", options.scenario, options.dir)
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(main())
