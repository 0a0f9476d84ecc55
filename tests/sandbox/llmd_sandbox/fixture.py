"""pytest plugin (entry point pytest11): the `llmd_sandbox` factory fixture.

    def test_x(llmd_sandbox):
        sandbox = llmd_sandbox("inference-scheduling")
        sandbox.kubeconfig, sandbox.namespace, sandbox.state["pods"], sandbox.restart_pod(name)

Every sandbox a test starts is stopped when the test ends, and dies with the pytest process in any case.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import cli
from .state import read_state


@dataclass
class Sandbox:
    dir: Path
    scenario: str

    @property
    def state(self) -> dict:
        """state.json as it is now (the supervisor rewrites it as pods change)."""
        return read_state(self.dir)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def api_server(self) -> str:
        return self.state["api_server"]

    @property
    def tokens(self) -> dict[str, str]:
        return self.state["tokens"]

    @property
    def namespace(self) -> str:
        return self.state["namespace"]

    @property
    def ca_file(self) -> str | None:
        return self.state["ca_file"]

    def kubectl(self, *args: str) -> list[str]:
        """A kubectl command line for this sandbox, with a discovery cache of its own."""
        return ["kubectl", "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.dir / "kube-cache"), *args]

    def restart_pod(self, name: str, namespace: str | None = None) -> str:
        """Deletes the pod; returns the name of its Ready replacement."""
        return cli.restart_pod(self.dir, namespace or self.namespace, name)

    def restart_api_server(self) -> int:
        """Restarts kube-apiserver (and the controllers after it); returns its new pid."""
        return cli.restart_api_server(self.dir)

    def down(self) -> None:
        cli.down(self.dir)


@pytest.fixture
def llmd_sandbox(tmp_path_factory):
    started: list[Sandbox] = []

    def start(scenario: str, *, lifetime: float = 600) -> Sandbox:
        directory = tmp_path_factory.mktemp(f"sandbox-{scenario}")
        cli.up(scenario, directory, watch_pid=os.getpid(), lifetime=lifetime)
        sandbox = Sandbox(directory, scenario)
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.down()
