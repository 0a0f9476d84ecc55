"""Serve the sandbox's API server (make_app) over TLS on 127.0.0.1 in a background thread, for tests.

    def test_x(apiserver):  # the pytest fixture (conftest.py loads this module); or use serve_apiserver()
        apiserver.run(apiserver.store.create, {...})          # store calls run on the server's loop
        subprocess.run(apiserver.kubectl("1.33", "get", "pods"), ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from llmd_sandbox.apiserver import make_app, start
from llmd_sandbox.auth import Authz
from llmd_sandbox.store import Store
from llmd_sandbox.tls import api_server_tls

KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.{}"
READONLY_NAMESPACE = "team"
STARTUP_TIMEOUT = 10


@dataclass
class ApiServer:
    url: str
    ca_path: Path
    tokens: dict[str, str]
    kubeconfig: Path  # admin; kubeconfig_for(role) for the others
    store: Store
    authz: Authz
    log_root: Path
    directory: Path
    loop: asyncio.AbstractEventLoop
    kubeconfigs: dict[str, Path] = field(default_factory=dict)
    cleanups: list[Callable] = field(default_factory=list)  # coroutine functions run on the loop at the end

    def run(self, fn: Callable, *args, timeout: float = 10, **kwargs):
        """Calls fn (a function or coroutine function) on the server's event loop and returns its result."""
        async def call():
            result = fn(*args, **kwargs)
            return await result if asyncio.iscoroutine(result) else result
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def kubeconfig_for(self, role: str) -> Path:
        return self.kubeconfigs[role]

    def kubectl(self, version: str, *args: str, role: str = "admin") -> list[str]:
        """A kubectl command line for this server with a private discovery cache."""
        return [KUBECTL.format(version), "--kubeconfig", str(self.kubeconfigs[role]),
                "--cache-dir", str(self.directory / f"kube-cache-{version}"), *args]


def write_kubeconfig(path: Path, url: str, ca_path: Path, token: str, namespace: str = "default") -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sandbox",
        "clusters": [{"name": "sandbox", "cluster": {"server": url, "certificate-authority": str(ca_path)}}],
        "users": [{"name": "sandbox", "user": {"token": token}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox",
                                                     "namespace": namespace}}],
    }
    path.write_text(yaml.safe_dump(config))
    os.chmod(path, 0o600)
    return path


@contextlib.contextmanager
def serve_apiserver(directory: Path, *, readonly_namespace: str = READONLY_NAMESPACE,
                    pod_connect=None) -> Iterator[ApiServer]:
    """Starts the API server in a thread with its own loop; stops it (and the thread) on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    log_root = directory / "logs"
    log_root.mkdir(exist_ok=True)
    store, authz = Store(), Authz(readonly_namespace)
    _ca, ca_path, ssl_context = api_server_tls(directory)
    loop = asyncio.new_event_loop()
    started: dict = {}
    ready, stop, server = threading.Event(), None, None

    async def main():
        nonlocal stop
        stop = asyncio.Event()
        runner, port = await start(make_app(store, authz=authz, log_root=log_root, pod_connect=pod_connect),
                                   ssl_context=ssl_context)
        started["port"] = port
        ready.set()
        try:
            await stop.wait()
        finally:
            for cleanup in server.cleanups:
                await cleanup()
            await runner.cleanup()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), name="apiserver", daemon=True)
    thread.start()
    if not ready.wait(STARTUP_TIMEOUT):
        raise RuntimeError("the API server did not start")
    url = f"https://127.0.0.1:{started['port']}"
    kubeconfigs = {role: write_kubeconfig(directory / f"kubeconfig-{role}", url, ca_path, token,
                                          readonly_namespace if role == "readonly" else "default")
                   for role, token in authz.tokens.items()}
    server = ApiServer(url, ca_path, authz.tokens, kubeconfigs["admin"], store, authz, log_root, directory, loop,
                       kubeconfigs)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(STARTUP_TIMEOUT)
        loop.close()


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServer]:
    with serve_apiserver(tmp_path / "apiserver") as server:
        yield server


# ---- objects and files the tests put in place of the runtime's --------------------------------------------

def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def running_pod(name: str, namespace_name: str, *, labels: dict | None = None, containers: dict | None = None,
                sidecars: dict | None = None, ip: str = "127.0.0.1", ready: bool = True,
                restarts: dict | None = None) -> dict:
    """A pod as the kubelet would report it: containers {name: port}, sidecars (native, in initContainers)
    {name: port}, every container running, restartCount from restarts {name: n}."""
    containers = containers or {"vllm": 8000}
    sidecars = sidecars or {}
    restarts = restarts or {}

    def spec(name_: str, port: int, sidecar: bool = False) -> dict:
        container = {"name": name_, "image": f"example/{name_}:1",
                     "ports": [{"name": "http" if not sidecar else "proxy", "containerPort": port}]}
        return dict(container, restartPolicy="Always") if sidecar else container

    def status(name_: str) -> dict:
        # image and imageID are required by the Python client's ContainerStatus model
        return {"name": name_, "ready": ready, "restartCount": restarts.get(name_, 0), "started": True,
                "image": f"example/{name_}:1", "imageID": f"example/{name_}@sha256:0",
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}

    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace_name, "labels": labels or {}},
            "spec": {"containers": [spec(n, p) for n, p in containers.items()],
                     "initContainers": [spec(n, p, True) for n, p in sidecars.items()],
                     "nodeName": "sandbox-control-plane"},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [status(n) for n in containers],
                       "initContainerStatuses": [status(n) for n in sidecars]}}


def write_cri_log(server: ApiServer, pod: dict, container: str, restart: int, lines: list[tuple[str, str]]) -> Path:
    """Appends (RFC3339Nano timestamp, message) lines in the CRI format to the file the kubelet would write."""
    meta = pod["metadata"]
    directory = server.log_root / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / container
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{restart}.log"
    with path.open("a") as out:
        for timestamp, message in lines:
            out.write(f"{timestamp} stdout F {message}\n")
    return path


def start_backend(server: ApiServer, app) -> int:
    """Serves an aiohttp app on 127.0.0.1:<free port> in the API server's loop, until the server stops."""
    from aiohttp import web

    async def serve():
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.cleanups.append(runner.cleanup)
        return runner.addresses[0][1]
    return server.run(serve)
