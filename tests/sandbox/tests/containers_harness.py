"""Runs container programs the way the kubelet does (env JSON, `python -m llmd_sandbox.containers`),
each on its own random loopback pod IP, and stops every one of them at the end of the test."""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

IMAGES = {
    "vllm": "ghcr.io/llm-d/llm-d-inference-sim:v0.5.0",
    "routing-proxy": "ghcr.io/llm-d/llm-d-routing-sidecar:v0.2.0",
    "epp": "ghcr.io/llm-d/llm-d-inference-scheduler:v0.3.0",
    "fault": "llmd-sandbox-fault:latest",
}


def random_pod_ip() -> str:
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


def port_open(ip: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((ip, port)) == 0


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Container:
    def __init__(self, kind: str, args: list, pod_ip: str, pod: str, namespace: str = "ns", **extra):
        self.kind, self.pod_ip, self.pod = kind, pod_ip, pod
        spec = {"image": IMAGES[kind], "name": kind, "args": args, "env": {}, "pod": pod, "namespace": namespace,
                "pod_ip": pod_ip, "labels": {}, "api_server": "", "token": "", "ca_file": ""}
        spec.update(extra)
        env = dict(os.environ, LLMD_SANDBOX_CONTAINER=json.dumps(spec))
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "llmd_sandbox.containers"], env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = 10.0) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if regex.search(line)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no log line matching {pattern!r} in {timeout}s:\n" + self.log())
                self._changed.wait(remaining)

    def wait_for_port(self, port: int, timeout: float = 10.0) -> None:
        wait_until(lambda: port_open(self.pod_ip, port) or self.process.poll() is not None, timeout,
                   f"{self.kind} on {self.pod_ip}:{port}")
        assert self.process.poll() is None, f"{self.kind} exited early:\n{self.log()}"

    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_exit(self, timeout: float = 10.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self, timeout: float = 5.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        return self.process.returncode


@pytest.fixture
def containers():
    """start(kind, args, pod_ip=None, pod=..., **spec) -> Container; all are stopped after the test."""
    started = []

    def start(kind: str, args: list, pod_ip: str | None = None, pod: str = "pod-a", **extra) -> Container:
        container = Container(kind, [str(arg) for arg in args], pod_ip or random_pod_ip(), pod, **extra)
        started.append(container)
        return container

    yield start
    for container in started:
        container.stop()
