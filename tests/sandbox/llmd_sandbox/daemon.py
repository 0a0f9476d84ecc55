"""The sandbox daemon: a real control plane, the node agent, the status controllers and the data plane.

Started detached by `llmd-sandbox up` (python -m llmd_sandbox.daemon ...). It tells `up` it is ready (or why
not) through an inherited pipe, keeps DIR/state.json current, and stops everything it started on SIGTERM,
when the watched pid is gone, or when its lifetime runs out. Its children die with it (PR_SET_PDEATHSIG);
the pod network is removed by it or, if it is killed, by the reaper netns.py started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from . import kubelet_api
from .cluster import CONTROL_PLANE, DATA_PLANE, ControlPlane, binaries, kubeconfig, write_secret_file
from .dataplane import Network
from .envoy_gateways import EnvoyGateways
from .gateways import StatusControllers
from .kube import (CRDS, DEPLOYMENTS, ENDPOINT_SLICES, EVENTS, GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES, INGRESSES,
                   PODS, POOLS, POOLS_ALPHA, ROUTES, SERVICES, Cache, Kube, KubeError, resource_for)
from .netns import PodNetwork
from .node import NodeAgent, flag_value, is_vllm, milliseconds
from .scenario import EXPECT_READY_ANNOTATION, Scenario, load
from .state import READY_TIMEOUT, alive, state_path, write_state
from .zygote import Zygote

log = logging.getLogger("llmd_sandbox")

WATCH_INTERVAL = 0.25
STATE_WRITE_INTERVAL = 0.1
MANAGER = "llmd-sandbox"
STOP_STEP_TIMEOUT = 8.0


class Daemon:
    def __init__(self, scenario: Scenario, directory: Path):
        self.scenario, self.directory = scenario, directory
        self.network = PodNetwork()
        self.control_plane: ControlPlane | None = None
        self.zygote = Zygote()
        self.kubes: list[Kube] = []
        self.agent: NodeAgent | None = None
        self.kubelet_runner = None
        self.cache: Cache | None = None
        self.data_plane: Network | None = None
        self.controllers: StatusControllers | None = None
        self.envoy_gateways: EnvoyGateways | None = None
        self.relay: asyncio.Server | None = None
        self.state_dirty = True
        self.api_restart: asyncio.Task | None = None
        self.api_restarts = 0  # completed ones: `restart-apiserver` waits for this count to grow

    def changed(self) -> None:
        self.state_dirty = True
        if self.controllers is not None:
            self.controllers.poke()

    async def _kube(self, role: str) -> Kube:
        kube = await Kube(self.control_plane.server, self.control_plane.tokens[role],
                          str(self.control_plane.ca_file)).__aenter__()
        self.kubes.append(kube)
        return kube

    # ---- start -----------------------------------------------------------------------------------

    async def start(self) -> None:
        paths = binaries(CONTROL_PLANE + DATA_PLANE)
        self.programs = {name: paths[name] for name in DATA_PLANE}
        zygote_started = asyncio.create_task(self.zygote.start())  # its imports overlap with the rest
        await asyncio.to_thread(self.network.create)
        self.control_plane = ControlPlane(self.directory, self.network.node_ip, str(self.network.services),
                                          str(self.network.pods))
        await self.control_plane.start(paths)
        log.info("control plane ready")
        self._write_kubeconfig()
        # Pods reach the API server at the node's address, as the `kubernetes` Service's endpoint says.
        self.relay = await asyncio.start_server(self._relay_to_api_server, self.network.node_ip,
                                                self.control_plane.api_port)
        admin = await self._kube("admin")
        crds = asyncio.create_task(self._install_crds(admin, paths["crds"]))
        # Namespaces first and early: the controller-manager gives each its `default` ServiceAccount,
        # without which the API server admits no pod there.
        namespaces = asyncio.create_task(self._create_namespaces(admin))
        try:
            await self._start_node_and_controllers(zygote_started, crds)
            await namespaces
        finally:
            crds.cancel()  # done by now, unless starting failed
            namespaces.cancel()
        log.info("node and controllers up, CRDs established")
        await self._apply_scenario(admin)
        log.info("scenario applied")
        await self.data_plane.start()

    async def _start_node_and_controllers(self, zygote_started: asyncio.Task, crds: asyncio.Task) -> None:
        await zygote_started
        node_kube = await self._kube("node")
        self.agent = NodeAgent(node_kube, network=self.network, directory=self.directory,
                               api_port=self.control_plane.api_port, ca_pem=self.control_plane.ca.cert_pem,
                               zygote=self.zygote, on_change=self.changed, programs=self.programs,
                               xds_root=self.directory / "xds",
                               container_env={"api_server": f"https://{self.network.node_ip}:{self.control_plane.api_port}",
                                              "token": self.control_plane.tokens["controllers"],
                                              "ca_file": str(self.control_plane.ca_file)})
        await self.agent.start()
        pki = self.control_plane.certs
        self.kubelet_runner = await kubelet_api.start(self.agent, pki / "kubelet.crt", pki / "kubelet.key",
                                                      self.control_plane.ca_file)
        await crds
        controllers_kube = await self._kube("controllers")
        self.cache = Cache(controllers_kube, [SERVICES, ENDPOINT_SLICES, GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES,
                                              POOLS, POOLS_ALPHA, INGRESSES, ROUTES])
        await self.cache.start()
        self.data_plane = Network(self.cache, node_ip=self.network.node_ip, ca=self.control_plane.ca,
                                  cert_dir=self.control_plane.certs, on_bound=self.changed)
        self.controllers = StatusControllers(controllers_kube, self.cache, self.data_plane.address)
        self.controllers.start()
        self.envoy_gateways = EnvoyGateways(self.cache, self.directory / "xds")
        self.envoy_gateways.start()

    async def _relay_to_api_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from .dataplane import _pipe
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.control_plane.api_port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            writer.close()
            upstream_writer.close()

    async def _install_crds(self, kube: Kube, crd_dir: str) -> None:
        """The upstream CRDs (tests/cluster/crds.txt), created and waited for until Established."""
        crds = [crd for path in sorted(Path(crd_dir).glob("*.yaml")) for crd in yaml.safe_load_all(path.read_text())
                if crd]
        names = [crd["metadata"]["name"] for crd in crds]

        async def create(crd: dict) -> None:
            try:
                await kube.create(crd, CRDS)
            except KubeError as exc:
                if exc.code != 409:
                    raise

        await asyncio.gather(*(create(crd) for crd in crds))  # the API server compiles their schemas in parallel
        deadline = time.monotonic() + 30
        for name in names:
            while True:
                crd = await kube.get(CRDS, None, name)
                conditions = (crd.get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRD {name} is not Established")
                await asyncio.sleep(0.05)

    async def _create_namespaces(self, kube: Kube) -> None:
        await asyncio.gather(*(kube.create(o) for o in self.scenario.objects if o["kind"] == "Namespace"))
        await self._grant_readonly(kube)

    async def _apply_scenario(self, kube: Kube) -> None:
        objects = self.scenario.objects
        # ServiceAccounts, RBAC and ConfigMaps before the workloads that use them, as `kubectl apply` of a
        # chart's output would order them.
        first = ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap", "Secret")
        rest = [o for o in objects if o["kind"] != "Namespace"]
        for obj in rest:
            if resource_for(obj["apiVersion"], obj["kind"]) is None:
                raise RuntimeError(f"the sandbox cannot create {obj['apiVersion']}/{obj['kind']}")
        for phase in ([o for o in rest if o["kind"] in first], [o for o in rest if o["kind"] not in first]):
            await asyncio.gather(*(self._create_with_retry(kube, obj) for obj in phase))

    async def _create_with_retry(self, kube: Kube, obj: dict) -> None:
        """Pods of a namespace need its `default` ServiceAccount, which the controller-manager makes just after
        the namespace: the admission plugin refuses them until then, as on a new cluster."""
        deadline = time.monotonic() + 20
        while True:
            try:
                await kube.create(obj)
                return
            except KubeError as exc:
                if exc.code not in (403, 500) or "serviceaccount" not in exc.message.lower() \
                        or time.monotonic() > deadline:
                    raise KubeError(exc.code, exc.reason,
                                    f"{obj['kind']} {obj['metadata']['name']}: {exc.message}") from None
                await asyncio.sleep(0.1)

    async def _grant_readonly(self, kube: Kube) -> None:
        """The `sandbox-readonly` user may read the readonly namespace (ClusterRole view), nothing else.

        `view` covers the llm-d CRDs because a ClusterRole aggregated into it grants reading them, as CRD
        installations often add (OpenShift's own view role covers Routes); without it, `view` would not."""
        namespace = self.scenario.readonly_namespace
        await kube.create({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "llm-d-crds-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"apiGroups": ["gateway.networking.k8s.io", "inference.networking.k8s.io",
                                     "inference.networking.x-k8s.io", "route.openshift.io"],
                       "resources": ["*"], "verbs": ["get", "list", "watch"]}]})
        await kube.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                           "metadata": {"name": "sandbox-readonly-view", "namespace": namespace},
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                         "name": "sandbox-readonly"}]})

    def _write_kubeconfig(self) -> None:
        tokens = self.control_plane.tokens
        namespaces = {"admin": self.scenario.namespace, "readonly": self.scenario.readonly_namespace,
                      "none": self.scenario.namespace}
        write_secret_file(self.directory / "kubeconfig", kubeconfig(
            self.control_plane.server, self.control_plane.ca.cert_pem,
            {role: tokens[role] for role in ("admin", "readonly", "none")}, namespaces, "sandbox"))

    # ---- readiness -------------------------------------------------------------------------------

    async def wait_ready(self, deadline: float) -> None:
        """Waits until the scenario serves, logging each new reason it does not yet, until `deadline` (monotonic)."""
        admin = self.kubes[0]
        logged = ""
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            while True:
                missing = await self._not_ready(admin, http)
                if not missing:
                    return
                if missing != logged:
                    log.info("waiting: %s", missing)
                    logged = missing
                if time.monotonic() > deadline:
                    log.error("pods not ready:%s", await self._unready_pods(admin))
                    raise TimeoutError(f"not ready after {READY_TIMEOUT:.0f} s: {missing}")
                await asyncio.sleep(0.1)

    async def _unready_pods(self, admin: Kube) -> str:
        """What `kubectl get pods -A` and the pods' Warning events would say of every pod not Ready, for the
        daemon log when `up` fails: pending, waiting and why, exited and how."""
        lines = []
        with contextlib.suppress(KubeError, aiohttp.ClientError, OSError, TimeoutError):
            warnings = [e for e in (await admin.list(EVENTS))["items"] if e.get("type") == "Warning"]
            for pod in (await admin.list(PODS))["items"]:
                status, meta = pod.get("status") or {}, pod["metadata"]
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
                    continue
                lines.append(f"{meta['namespace']}/{meta['name']}: {status.get('phase', 'no status')}"
                             f" on {pod['spec'].get('nodeName') or 'no node'}")
                for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
                    state = container.get("state") or {}
                    kind = next(iter(state), "unknown")
                    detail = state.get(kind) or {}
                    lines.append(f"  {container['name']}: {kind} {detail.get('reason', '')} "
                                 f"{detail.get('exitCode', '')} restarts {container.get('restartCount', 0)} "
                                 f"ready {container.get('ready')}".rstrip())
                for condition in status.get("conditions") or []:
                    if condition.get("status") != "True":
                        lines.append(f"  {condition['type']}: {condition.get('reason', '')} "
                                     f"{condition.get('message', '')}".rstrip())
                for event in warnings:
                    if event.get("involvedObject", {}).get("uid") == meta["uid"]:
                        lines.append(f"  event {event.get('reason')}: {event.get('message')}")
        return "".join("\n  " + line for line in lines) or " none (or the API server did not answer)"

    async def _not_ready(self, admin: Kube, http: aiohttp.ClientSession) -> str:
        for deployment in (await admin.list(DEPLOYMENTS))["items"]:
            annotations = deployment["spec"]["template"].get("metadata", {}).get("annotations") or {}
            if annotations.get(EXPECT_READY_ANNOTATION) == "false":
                continue
            if (deployment.get("status") or {}).get("readyReplicas", 0) < deployment["spec"].get("replicas", 1):
                return f"deployment {deployment['metadata']['name']} has no ready pods yet"
        for key in _wanted_listeners(self.scenario):
            if key not in self.data_plane.bound_ips:
                return f"{key} has no address yet"
        for serving in self.scenario.serving_checks:
            target = self.data_plane.endpoint(self.scenario.namespace, serving["service"], serving["port"])
            if target is None:
                return f"service {serving['service']} has no ready endpoint"
            try:
                async with http.get(f"http://{target[0]}:{target[1]}/v1/models",
                                    timeout=aiohttp.ClientTimeout(total=1)) as answer:
                    if answer.status not in serving.get("status", [200]):
                        return f"service {serving['service']} answers /v1/models with {answer.status}"
                    if answer.status != 200 and serving.get("body", "") not in await answer.text():
                        return f"service {serving['service']} answers /v1/models without {serving['body']!r} yet"
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                return f"service {serving['service']} does not answer: {exc!r}"
        return ""

    # ---- state.json ------------------------------------------------------------------------------

    def state(self) -> dict:
        pods = {}
        for runtime in self.agent.pods.values():
            vllm = next((c.spec for c in runtime.containers if is_vllm(c.spec)), None)
            entry = {"ip": runtime.ip, "uid": runtime.uid, "netns": runtime.netns,
                     "role": runtime.labels.get("llm-d.ai/role", ""),
                     "containers": {c.name: [p["containerPort"] for p in c.spec.get("ports") or []]
                                    for c in runtime.containers}}
            if vllm is not None:
                args = vllm.get("args") or []
                entry["ttft_ms"] = milliseconds(flag_value(args, "--time-to-first-token"))
                entry["itl_ms"] = milliseconds(flag_value(args, "--inter-token-latency"))
            pods[runtime.key] = entry
        cp = self.control_plane
        listeners = [f"127.0.0.1:{cp.api_port}", f"{self.network.node_ip}:{cp.api_port}"] + [
            f"{ip}:{port}" for key, ip in self.data_plane.bound_ips.items()
            for port in _listener_ports(self.cache, key)]
        tokens = {role: cp.tokens[role] for role in ("admin", "readonly", "none")}
        return {
            "pid": os.getpid(), "dir": str(self.directory), "scenario": self.scenario.name,
            "namespace": self.scenario.namespace, "readonly_namespace": self.scenario.readonly_namespace,
            "api_server": cp.server, "kubeconfig": str(self.directory / "kubeconfig"), "ca_file": str(cp.ca_file),
            "tokens": tokens, "node_ip": self.network.node_ip, "pod_cidr": str(self.network.pods),
            "service_cidr": str(self.network.services), "bridge": self.network.bridge,
            "external": {**self.data_plane.reserved, **self.data_plane.bound_ips}, "listeners": listeners, "pods": pods,
            "pod_restarts": self.agent.pod_restarts, "api_restarts": self.api_restarts,
            "processes": [{"pid": os.getpid(), "role": "daemon"}] + cp.pids() + self.agent.processes()}

    async def keep_state_written(self) -> None:
        while True:
            if self.state_dirty:
                self.state_dirty = False
                write_state(self.directory, self.state())
            await asyncio.sleep(STATE_WRITE_INTERVAL)

    # ---- faults on demand ------------------------------------------------------------------------

    def on_restart_api_server(self) -> None:
        """SIGUSR1 (`llmd-sandbox restart-apiserver`): one restart at a time; state.json gets its new pid."""
        if self.api_restart is None or self.api_restart.done():
            self.api_restart = asyncio.create_task(self._restart_api_server())

    async def _restart_api_server(self) -> None:
        log.info("restarting kube-apiserver")
        try:
            await self.control_plane.restart_api_server()
        except Exception:  # noqa: BLE001 - the sandbox runs on; the caller sees no new pid and says so
            log.exception("kube-apiserver did not come back")
        else:
            self.api_restarts += 1
            log.info("kube-apiserver restarted, and the controller-manager and scheduler after it")
        self.changed()

    # ---- stop ------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """In the reverse order of start; each step runs even when an earlier one failed or hung."""
        steps = [("controllers", self.controllers and self.controllers.stop),
                 ("gateway configuration", self.envoy_gateways and self.envoy_gateways.stop),
                 ("data plane", self.data_plane and self.data_plane.stop),
                 ("watch cache", self.cache and self.cache.stop),
                 ("node agent", self.agent and self.agent.stop),
                 ("kubelet API", self.kubelet_runner and self.kubelet_runner.cleanup),
                 ("zygote", self.zygote.stop),
                 ("API clients", self._close_clients),
                 ("control plane", self.control_plane and self.control_plane.stop),
                 ("pod network", lambda: asyncio.to_thread(self.network.destroy))]
        for name, step in steps:
            if not step:
                continue
            try:
                await asyncio.wait_for(step(), STOP_STEP_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - stopping goes on whatever one part did
                log.warning("stopping the %s: %r", name, exc)
        with contextlib.suppress(FileNotFoundError):
            state_path(self.directory).unlink()

    async def _close_clients(self) -> None:
        if self.relay is not None:
            self.relay.close()
        for kube in self.kubes:
            await kube.__aexit__(None, None, None)


def _wanted_listeners(scenario: Scenario) -> list[str]:
    keys = []
    for obj in scenario.objects:
        meta = obj["metadata"]
        if obj["kind"] == "Service" and obj.get("spec", {}).get("type") == "LoadBalancer" \
                and not obj["spec"].get("loadBalancerClass"):
            keys.append(f"Service/{meta['namespace']}/{meta['name']}")
        elif obj["kind"] == "Ingress":
            keys.append(f"Ingress/{meta['namespace']}/{meta['name']}")
        elif obj["kind"] == "Route":
            keys.append("Router/default")
    return keys


def _listener_ports(cache: Cache, key: str) -> list[int]:
    kind, _sep, rest = key.partition("/")
    if kind == "NodePort":
        return [int(rest)]
    if kind == "Service":
        namespace, name = rest.split("/")
        service = cache.get(SERVICES, namespace, name)
        return [p["port"] for p in (service or {}).get("spec", {}).get("ports") or []]
    if kind == "Ingress":
        namespace, name = rest.split("/")
        ingress = cache.get(INGRESSES, namespace, name) or {"spec": {}}
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
    daemon = Daemon(scenario, Path(options.dir).resolve())
    state_task = None
    started = time.monotonic()
    try:
        try:
            await daemon.start()
            await daemon.wait_ready(started + READY_TIMEOUT)
            write_state(daemon.directory, daemon.state())
        except Exception as exc:  # anything that stops `up` is reported to it, then everything is stopped
            log.exception("sandbox failed to start")
            if ready_pipe:
                ready_pipe.write(f"error: {exc}\n")
                ready_pipe.close()
            return 1
        state_task = asyncio.create_task(daemon.keep_state_written())
        if ready_pipe:
            ready_pipe.write("ready\n")
            ready_pipe.close()
        log.info("sandbox %s ready in %.1f s: %s", scenario.name, time.monotonic() - started,
                 daemon.control_plane.server)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, daemon.on_restart_api_server)
        reason = await _until_stopped(options.watch_pid, options.lifetime)
        log.info("stopping: %s", reason)
        return 0
    finally:
        if state_task is not None:
            state_task.cancel()
            await asyncio.gather(state_task, return_exceptions=True)
        if daemon.api_restart is not None:
            daemon.api_restart.cancel()
            await asyncio.gather(daemon.api_restart, return_exceptions=True)
        await daemon.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmd_sandbox.daemon")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--watch-pid", type=int)
    parser.add_argument("--lifetime", type=float, default=7200)
    parser.add_argument("--ready-fd", type=int)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.info("starting scenario %s in %s", options.scenario, options.dir)
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(main())
