"""Shared pieces of the tests that run a sandbox: real kubectl (per minor and the dispatcher) with a private
HOME and discovery cache, background processes ended by a finalizer, waiting, and the `echo` sandbox: the
`echo` scenario (scenarios/echo.yaml), whose pods run the `llmd-sandbox-echo` container program
(llmd_sandbox/containers/echo.py), shared by every test module that only reads it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmd_sandbox import cli
from llmd_sandbox.fixture import Sandbox
from llmd_sandbox.state import alive

KUBECTL_DIR = "/usr/lib/google-cloud-sdk/bin"
KUBECTL_MINORS = (30, 31, 32, 33)
TIMEOUT = 30  # seconds, for any single wait

ECHO_IMAGE = "localhost/llmd-sandbox-echo:test"
HTTP_PORT, ECHO_PORT, REFUSED_PORT = 8080, 9000, 8999
ECHO_NAMESPACE = "sandbox-echo"  # the echo scenario's namespace (and its readonly one)


def pattern(size: int) -> bytes:
    """What the echo program's GET /bytes/N sends (echo.pattern)."""
    block = hashlib.sha256(str(size).encode()).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def wait_until(predicate, timeout: float = TIMEOUT, what: str = "", interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def kubectl_binary(minor: int | None = None) -> str:
    """`kubectl.1.MINOR`, or the dispatcher (`kubectl`, which picks the minor by the server's /version)."""
    binary = f"{KUBECTL_DIR}/kubectl" + (f".1.{minor}" if minor else "")
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} is not installed")
    return binary


def kubectl_env(sandbox: Sandbox) -> dict:
    """A HOME of the sandbox's own: the dispatcher caches the server's /version under ~/.kube/cache by address."""
    home = sandbox.dir / "home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "KUBECONFIG": str(sandbox.kubeconfig),
            "KUBECACHEDIR": str(sandbox.dir / "kube-cache")}


def kubectl_command(sandbox: Sandbox, *args: str, minor: int | None = None, context: str | None = None) -> list[str]:
    command = [kubectl_binary(minor), "--kubeconfig", str(sandbox.kubeconfig),
               "--cache-dir", str(sandbox.dir / "kube-cache")]
    return command + (["--context", context] if context else []) + list(args)


def kubectl(sandbox: Sandbox, *args: str, minor: int | None = None, context: str | None = None, check: bool = True,
            input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    result = subprocess.run(kubectl_command(sandbox, *args, minor=minor, context=context), env=kubectl_env(sandbox),
                            input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result


class Background:
    """Processes a test starts; the fixture's finalizer ends whatever is left (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.processes: list[subprocess.Popen] = []

    def start(self, command: list[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(command, **kwargs)
        self.processes.append(process)
        return process

    @staticmethod
    def end(process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream:
                stream.close()

    def end_all(self) -> None:
        for process in self.processes:
            self.end(process)


@pytest.fixture
def background():
    started = Background()
    yield started
    started.end_all()


@contextlib.contextmanager
def port_forward(background: Background, sandbox: Sandbox, target: str, ports: str, *, minor: int | None = None,
                 namespace: str = ECHO_NAMESPACE, env: dict | None = None, extra_args: tuple | list = ()):
    """`kubectl port-forward` until the block ends; yields (the local ports in order, the stderr file, the process).
    `env` adds to kubectl's environment (KUBECTL_PORT_FORWARD_WEBSOCKETS=false forces the SPDY upgrade)."""
    stderr = sandbox.dir / f"port-forward-{time.monotonic_ns()}.stderr"
    command = kubectl_command(sandbox, *extra_args, "port-forward", "-n", namespace, "--address", "127.0.0.1", target,
                              *ports.split(), minor=minor)
    with stderr.open("w") as stderr_file:
        process = background.start(command, stdout=subprocess.PIPE, stderr=stderr_file, text=True,
                                   env={**kubectl_env(sandbox), **(env or {})})
    lines: queue.Queue = queue.Queue()
    drain = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] + [lines.put(None)],
                             daemon=True)
    drain.start()
    local_ports = []
    try:
        while len(local_ports) < len(ports.split()):
            try:
                line = lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"kubectl printed no 'Forwarding from' line in {TIMEOUT} s: {stderr.read_text()}")
            if line is None:
                pytest.fail(f"kubectl exited with {process.wait()}: {stderr.read_text()}")
            if match := re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+", line):
                local_ports.append(int(match.group(1)))
        yield local_ports, stderr, process
    finally:
        Background.end(process)
        drain.join(timeout=TIMEOUT)


@dataclass
class EchoSandbox:
    sandbox: Sandbox

    @property
    def state(self) -> dict:
        return self.sandbox.state

    def pod(self, prefix: str = "echo-") -> str:
        """The name of the (one) pod of the echo Deployment, or of a pod named so."""
        names = [key.split("/")[1] for key in self.state["pods"] if key.split("/")[1].startswith(prefix)]
        assert len(names) == 1, names
        return names[0]

    def pod_ip(self, name: str) -> str:
        return self.state["pods"][f"{ECHO_NAMESPACE}/{name}"]["ip"]


def start_sandbox(directory: Path, scenario: str, lifetime: float = 1200) -> Sandbox:
    cli.up(scenario, directory, watch_pid=os.getpid(), lifetime=lifetime)
    return Sandbox(directory, scenario)


def stop_sandbox(sandbox: Sandbox) -> None:
    state = sandbox.state if (sandbox.dir / "state.json").exists() else None
    cli.down(sandbox.dir)
    if state and alive(state["pid"]):  # down waited for its processes; the daemon itself must be gone too
        os.kill(state["pid"], signal.SIGKILL)


@pytest.fixture(scope="session")
def echo_sandbox(tmp_path_factory):
    """The echo scenario, its bare pods Ready too. Tests may add objects of their own (uniquely named) but must
    not change or delete these."""
    sandbox = start_sandbox(tmp_path_factory.mktemp("echo-sandbox"), "echo")
    try:
        kubectl(sandbox, "wait", "-n", ECHO_NAMESPACE, "--for=condition=Ready", "pod/two-containers",
                "--timeout=60s", timeout=90)
        echo = EchoSandbox(sandbox)
        wait_until(lambda: f"Service/{ECHO_NAMESPACE}/echo-lb" in echo.state["external"]
                   and len([k for k in echo.state["pods"] if k.split("/")[1].startswith("echo-")]) == 1,
                   what="the echo-lb address and the echo pod in state.json")
        yield echo
    finally:
        stop_sandbox(sandbox)
