"""The kubelet: runs each pod's containers as processes on the pod's loopback IP, writes their CRI log files,
probes readiness, restarts crashed containers with back-off, and reports all of it in the pod's status."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import datetime
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .resources import find_resource
from .store import ApiError, Store, now_rfc3339

log = logging.getLogger(__name__)

PODS = find_resource("", "v1", "pods")
NODE_NAME = "sandbox-control-plane"
# The real kubelet backs off 10 s, 20 s, 40 s ... up to 5 min; the sandbox shortens that to 1 s, 2 s, 4 s
# ... up to 8 s so tests see CrashLoopBackOff and the restart without waiting minutes.
BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS = 1.0, 8.0
# Probes run this many times faster than the manifests' periodSeconds (an integer in the API, so at least
# 1 s), so that `up` is ready in well under 3 seconds.
PROBE_SPEEDUP = 5
PROBE_TIMEOUT_SECONDS = 1.0
# The real kubelet waits terminationGracePeriodSeconds (30 s); the sandbox caps it.
MAX_GRACE_SECONDS = 2.0
# vLLM's /metrics is scraped as Prometheus would, which is the `GET /metrics HTTP/1.1` noise of the seed.
SCRAPE_SECONDS = 2.0
VLLM_IMAGES = ("vllm", "llm-d-inference-sim")

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: the kernel kills it when the supervisor dies, however."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


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


def is_vllm(container: dict) -> bool:
    return any(image in container.get("image", "") for image in VLLM_IMAGES)


def container_port(container: dict, port: int | str) -> int | None:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return declared["containerPort"]
    return None


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
    """One pod on this node: its containers' processes, probes and status."""

    def __init__(self, kubelet: Kubelet, pod: dict, ip: str):
        self.kubelet, self.ip = kubelet, ip
        self.name, self.namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        self.uid, self.labels = pod["metadata"]["uid"], pod["metadata"].get("labels") or {}
        self.spec = pod["spec"]
        self.start_time = now_rfc3339()
        self.containers = [Container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
                           for c in self.spec.get("initContainers") or []]
        self.containers += [Container(c, "main") for c in self.spec.get("containers") or []]
        self.initialized = not any(c.kind == "init" for c in self.containers)
        self.conditions: dict[str, dict] = {}
        self.deleted = False
        self.tasks: list[asyncio.Task] = []

    @property
    def log_dir(self) -> Path:
        return Path(self.kubelet.log_root, f"{self.namespace}_{self.name}_{self.uid}")

    # ---- life cycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        self.publish()
        for container in self.containers:
            if container.kind == "init":
                await self.supervise(container)  # returns once it has completed
                continue
            self.tasks.append(asyncio.create_task(self.supervise(container)))
            if container.spec.get("readinessProbe"):
                self.tasks.append(asyncio.create_task(self.probe_loop(container)))
            if container.kind == "sidecar":  # the next container starts once the sidecar has started
                while not container.started:
                    await asyncio.sleep(0.02)
        self.initialized = True
        self.publish()

    async def supervise(self, container: Container) -> None:
        """Runs the container; restarts it after it exits (restartPolicy Always), backing off on failures."""
        failures = 0
        while not self.deleted:
            exit_code, started_at = await self.run_once(container)
            if self.deleted:
                return
            finished_at = now_rfc3339()
            log.info("pod %s/%s: container %s exited with %d", self.namespace, self.name, container.name, exit_code)
            container.last_state = {"terminated": {
                "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": started_at, "finishedAt": finished_at, "containerID": container.container_id}}
            if container.kind == "init" and exit_code == 0:
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

    async def run_once(self, container: Container) -> tuple[int, str]:
        spec = container.spec
        config = json.dumps({
            "image": spec.get("image", ""), "name": container.name, "args": [str(a) for a in spec.get("args") or []],
            "env": {e["name"]: e.get("value", "") for e in spec.get("env") or [] if "name" in e},
            "pod": self.name, "namespace": self.namespace, "pod_ip": self.ip, "labels": self.labels,
            **self.kubelet.container_env})
        log_path = self.log_dir / container.name / f"{container.restart_count}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log_file:  # exists before the status says running
            process = await self.kubelet.zygote.spawn(config)
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
        return exit_code, started_at

    async def probe_loop(self, container: Container) -> None:
        probe = container.spec["readinessProbe"]
        period = max(int(probe.get("periodSeconds", 10)), 1) / PROBE_SPEEDUP
        failure_threshold = int(probe.get("failureThreshold", 3))
        await asyncio.sleep(int(probe.get("initialDelaySeconds", 0)) / PROBE_SPEEDUP)
        failures = 0
        while not self.deleted:
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
                async with self.kubelet.http.get(url, timeout=aiohttp.ClientTimeout(PROBE_TIMEOUT_SECONDS)) as answer:
                    return 200 <= answer.status < 400
            if "tcpSocket" in probe:
                port = container_port(container.spec, probe["tcpSocket"]["port"])
                _reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.ip, port, local_addr=(self.kubelet.node_ip, 0)), PROBE_TIMEOUT_SECONDS)
                writer.close()
                return True
        except (OSError, aiohttp.ClientError, TimeoutError):
            return False
        return True  # exec / grpc probes are not simulated: the container counts as ready once running

    async def stop(self) -> None:
        """SIGTERM every container, SIGKILL what is left after the grace period; their last words are logged."""
        self.deleted = True
        processes = [c.process for c in self.containers if c.process is not None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        grace = min(float(self.spec.get("terminationGracePeriodSeconds", 30)), MAX_GRACE_SECONDS)
        waits = [asyncio.create_task(p.wait()) for p in processes]
        if waits:
            _done, pending = await asyncio.wait(waits, timeout=grace)
            for process in processes:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*pending, return_exceptions=True)
        for task in self.tasks:  # probes, back-off sleeps, and an init sequence still waiting
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

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
                self.condition("PodReadyToStartContainers", True),
                self.condition("Initialized", self.initialized, "ContainersNotInitialized"),
                self.condition("Ready", containers_ready and self.initialized, "ContainersNotReady"),
                self.condition("ContainersReady", containers_ready and self.initialized, "ContainersNotReady"),
                self.condition("PodScheduled", True),
            ],
            "hostIP": self.kubelet.node_ip, "hostIPs": [{"ip": self.kubelet.node_ip}],
            "podIP": self.ip, "podIPs": [{"ip": self.ip}], "startTime": self.start_time, "qosClass": "BestEffort",
            "containerStatuses": [c.status() for c in main],
        }
        if init:
            status["initContainerStatuses"] = [c.status() for c in init]
        return status

    def publish(self) -> None:
        if self.deleted:
            return
        try:
            self.kubelet.store.update_status(PODS, self.namespace, self.name, self.status())
        except ApiError:  # deleted meanwhile: the kubelet stops it on the DELETED event
            return
        self.kubelet.changed()


async def _capture(stream: asyncio.StreamReader, name: str, log_file) -> None:
    """Each line a container prints becomes `<time> <stream> F <line>` in its CRI log file."""
    while line := await stream.readline():
        text = line.decode("utf-8", errors="replace").rstrip("\n")
        log_file.write(f"{cri_timestamp()} {name} F {text}\n")
        log_file.flush()


class ContainerProcess:
    """A container's process as the zygote forked it: its output pipes, its exit code, signals."""

    def __init__(self, pid: int, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader, exited: asyncio.Future):
        self.pid, self.stdout, self.stderr, self._exited = pid, stdout, stderr, exited

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """Forks container processes from one Python that has already imported the container programs.

    Each container is still its own process running `llmd_sandbox.containers` with LLMD_SANDBOX_CONTAINER, but
    forked instead of exec'd: a fresh interpreter spends ~0.3 s of CPU importing aiohttp, which made `up` of a
    7-container scenario take several seconds on 2 shared cores. The zygote dies with the supervisor
    (PR_SET_PDEATHSIG) and the containers with the zygote.
    """

    def __init__(self):
        self.process: asyncio.subprocess.Process | None = None
        self.socket: socket.socket | None = None
        self._started: collections.deque[asyncio.Future] = collections.deque()
        self._exits: dict[int, asyncio.Future] = {}

    @property
    def pid(self) -> int:
        return self.process.pid

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "llmd_sandbox.kubelet", "--zygote", str(theirs.fileno()),
            pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL, preexec_fn=_die_with_parent)
        theirs.close()
        ours.setblocking(False)
        self.socket = ours
        asyncio.get_running_loop().add_reader(ours, self._on_message)

    async def stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self.socket)
        self.socket.close()  # the zygote exits when its socket closes
        try:
            await asyncio.wait_for(self.process.wait(), MAX_GRACE_SECONDS)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    async def spawn(self, config: str) -> ContainerProcess:
        loop = asyncio.get_running_loop()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        started = loop.create_future()
        self._started.append(started)
        try:
            socket.send_fds(self.socket, [config.encode()], [out_write, err_write])
        finally:
            os.close(out_write)
            os.close(err_write)
        pid = await started
        readers = []
        for fd in (out_read, err_read):
            reader = asyncio.StreamReader(limit=1024 * 1024)
            await loop.connect_read_pipe(lambda r=reader: asyncio.StreamReaderProtocol(r), os.fdopen(fd, "rb", 0))
            readers.append(reader)
        return ContainerProcess(pid, readers[0], readers[1], self._exit_future(pid))

    def _exit_future(self, pid: int) -> asyncio.Future:
        if pid not in self._exits:
            self._exits[pid] = asyncio.get_running_loop().create_future()
        return self._exits[pid]

    def _on_message(self) -> None:
        try:
            data = self.socket.recv(4096)
        except BlockingIOError:
            return
        if not data:  # the zygote is gone: nothing it forked is left either
            asyncio.get_running_loop().remove_reader(self.socket)
            return
        message = json.loads(data)
        if "started" in message:
            self._started.popleft().set_result(message["started"])
        else:
            future = self._exit_future(message["exited"])
            if not future.done():
                future.set_result(message["code"])


def _zygote_main(fd: int) -> None:
    """The zygote's loop: fork a container per request, report its pid and, later, its exit code."""
    import importlib
    import select

    from .containers import __main__ as entry

    for _image_fragment, program in entry.PROGRAMS:
        importlib.import_module(f"llmd_sandbox.containers.{program}")
    channel = socket.socket(fileno=fd)
    children = 0
    while True:
        if select.select([channel], [], [], 0.05)[0]:
            config, fds, _flags, _address = socket.recv_fds(channel, 1024 * 1024, 2)
            if not config:
                return
            pid = os.fork()
            if pid == 0:
                _run_container(channel, config, fds, entry.main)
            for descriptor in fds:
                os.close(descriptor)
            children += 1
            channel.send(json.dumps({"started": pid}).encode())
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children -= 1
            code = os.waitstatus_to_exitcode(status)
            channel.send(json.dumps({"exited": pid, "code": code if code >= 0 else 128 - code}).encode())


def _run_container(channel: socket.socket, config: bytes, fds: list[int], main: Callable[[], int]) -> None:
    """In the forked child: become the container (stdout/stderr to the kubelet's pipes) and never return."""
    code = 1
    try:
        _die_with_parent()
        channel.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for descriptor in (devnull, *fds):
            os.close(descriptor)
        os.environ["LLMD_SANDBOX_CONTAINER"] = config.decode()
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code or 0)


class Kubelet:
    """Starts a PodRuntime for every pod the store gets and stops it when the pod is deleted."""

    def __init__(self, store: Store, *, node_ip: str, pod_prefix: str, log_root: Path, container_env: dict,
                 on_change: Callable[[], None], zygote: Zygote):
        """zygote: started by the caller (as early as it can: it takes a while to import everything)."""
        self.store, self.node_ip, self.pod_prefix = store, node_ip, pod_prefix
        self.log_root, self.container_env, self.changed = Path(log_root), container_env, on_change
        self.pods: dict[str, PodRuntime] = {}  # by uid
        self._used_ips: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._scraper: asyncio.Task | None = None
        self.http: aiohttp.ClientSession | None = None
        self.zygote = zygote

    async def start(self) -> None:
        # probes and scrapes come from the node's address, as from a real kubelet and Prometheus on the node
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True,
                                                                         local_addr=(self.node_ip, 0)))
        self.store.subscribe(self._on_event)
        for pod in self.store.list(PODS)[0]:
            self._on_event("ADDED", pod)
        self._scraper = asyncio.create_task(self._scrape_metrics())

    async def stop(self) -> None:
        self.store.unsubscribe(self._on_event)
        self._scraper.cancel()
        await asyncio.gather(*(pod.stop() for pod in self.pods.values()), return_exceptions=True)
        # what is left: the stops of pods deleted just before, and the cancelled pods' own tasks
        await asyncio.gather(self._scraper, *self._tasks, return_exceptions=True)
        await self.http.close()
        await self.zygote.stop()

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_event(self, event: str, pod: dict) -> None:
        if pod.get("kind") != "Pod":
            return
        uid = pod["metadata"]["uid"]
        if event == "DELETED" and uid in self.pods:
            runtime = self.pods.pop(uid)
            self._used_ips.discard(runtime.ip)
            self._spawn(runtime.stop()).add_done_callback(lambda _: self.changed())
        elif event == "ADDED" and uid not in self.pods:
            runtime = PodRuntime(self, pod, self._free_ip())
            self.pods[uid] = runtime
            runtime.tasks.append(self._spawn(self._bind_and_run(runtime)))

    async def _bind_and_run(self, runtime: PodRuntime) -> None:
        # The scheduler's binding: the pod is on our one node.
        with contextlib.suppress(ApiError):
            self.store.patch(PODS, runtime.namespace, runtime.name, {"spec": {"nodeName": NODE_NAME}}, "merge")
        await runtime.run()

    def _free_ip(self) -> str:
        for host in range(2, 255):
            ip = f"{self.pod_prefix}{host}"
            if ip not in self._used_ips:
                self._used_ips.add(ip)
                return ip
        raise RuntimeError("the sandbox node has no free pod IP left")

    def processes(self) -> list[dict]:
        return [{"pid": self.zygote.pid, "role": "zygote"}] + [
            {"pid": c.process.pid, "pod": f"{p.namespace}/{p.name}", "container": c.name}
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


if __name__ == "__main__":
    if sys.argv[1:2] == ["--zygote"]:
        _zygote_main(int(sys.argv[2]))
