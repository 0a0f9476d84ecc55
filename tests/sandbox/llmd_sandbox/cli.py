"""`llmd-sandbox`: up, down, restart-pod, restart-apiserver, scenarios, status. The functions are also what the pytest fixture calls."""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import scenario as scenarios
from .state import READY_TIMEOUT, alive, read_state, state_path

UP_TIMEOUT = READY_TIMEOUT + 15  # the daemon gives up first and says what it waited for
DOWN_TIMEOUT = 10.0
RESTART_TIMEOUT = 20.0
API_RESTART_TIMEOUT = 60.0


class SandboxError(RuntimeError):
    pass


def up(scenario: str, directory: str | os.PathLike, *, watch_pid: int | None = None, lifetime: float = 7200,
       timeout: float = UP_TIMEOUT) -> dict:
    """Starts the daemon detached and returns state.json once it says it is ready."""
    scenarios.load(scenario)  # a bad name fails here, with the list of known ones
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if state_path(directory).exists() and alive(read_state(directory)["pid"]):
        raise SandboxError(f"a sandbox already runs in {directory}; `llmd-sandbox down --dir {directory}` first")
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "llmd_sandbox.daemon", "--scenario", scenario, "--dir", str(directory),
               "--lifetime", str(lifetime), "--ready-fd", str(write_end)]
    if watch_pid:
        command += ["--watch-pid", str(watch_pid)]
    with open(directory / "daemon.log", "ab") as log_file:
        process = subprocess.Popen(command, pass_fds=(write_end,), start_new_session=True,
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    os.close(write_end)
    with os.fdopen(read_end) as ready:
        answer = ready.readline().strip() if select.select([ready], [], [], timeout)[0] else ""
    if answer != "ready":
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(DOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
        log_tail = (directory / "daemon.log").read_text(errors="replace")[-4000:]
        raise SandboxError(f"sandbox {scenario!r} did not start: {answer or f'no answer in {timeout:.0f} s'}\n"
                           f"{log_tail}")
    return read_state(directory)


def down(directory: str | os.PathLike, timeout: float = DOWN_TIMEOUT) -> bool:
    """Stops the sandbox in directory and waits until none of its processes is left; False if none ran."""
    if not state_path(directory).exists():
        return False
    state = read_state(directory)
    pids = [p["pid"] for p in state["processes"]]
    if alive(state["pid"]):
        os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:  # only what the supervisor itself failed to stop: it and its own containers
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    state_path(directory).unlink(missing_ok=True)  # a supervisor that was killed could not remove it
    return True


def _api(state: dict, method: str, path: str) -> dict:
    request = urllib.request.Request(state["api_server"] + path, method=method,
                                     headers={"Authorization": f"Bearer {state['tokens']['admin']}",
                                              "Accept": "application/json"})
    context = ssl.create_default_context(cafile=state["ca_file"])
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        return json.load(answer)


def restart_pod(directory: str | os.PathLike, namespace: str, name: str, timeout: float = RESTART_TIMEOUT) -> str:
    """Deletes the pod through the API (as `kubectl delete pod` does) and returns the name of the Ready pod its
    ReplicaSet creates instead."""
    state = read_state(directory)
    pods_path = f"/api/v1/namespaces/{namespace}/pods"
    try:
        pod = _api(state, "GET", f"{pods_path}/{name}")
    except urllib.error.HTTPError as exc:
        raise SandboxError(f"pod {namespace}/{name}: {exc.code} {exc.reason}") from None
    owners = [ref["uid"] for ref in pod["metadata"].get("ownerReferences") or [] if ref.get("controller")]
    if not owners:
        raise SandboxError(f"pod {namespace}/{name} has no controller to replace it")
    before = {p["metadata"]["name"] for p in _owned_pods(state, pods_path, owners[0])}
    _api(state, "DELETE", f"{pods_path}/{name}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for candidate in _owned_pods(state, pods_path, owners[0]):
            ready = any(c["type"] == "Ready" and c["status"] == "True"
                        for c in candidate.get("status", {}).get("conditions") or [])
            if ready and candidate["metadata"]["name"] not in before:
                return candidate["metadata"]["name"]
        time.sleep(0.1)
    raise SandboxError(f"no replacement for pod {namespace}/{name} became Ready in {timeout:.0f} s")


def restart_api_server(directory: str | os.PathLike, timeout: float = API_RESTART_TIMEOUT) -> int:
    """Asks the daemon to restart kube-apiserver (SIGUSR1; the controllers after it) and returns the new pid once
    the whole restart is done and the API server answers /readyz."""
    state = read_state(directory)
    before = state["api_restarts"]
    os.kill(state["pid"], signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(directory)
        pid = _api_server_pid(state)
        if pid and state["api_restarts"] > before:
            try:
                request = urllib.request.Request(state["api_server"] + "/readyz",
                                                 headers={"Authorization": f"Bearer {state['tokens']['admin']}"})
                with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=state["ca_file"]),
                                            timeout=5) as answer:
                    if answer.status == 200:
                        return pid
            except OSError:
                pass
        time.sleep(0.2)
    raise SandboxError(f"kube-apiserver did not come back in {timeout:.0f} s (see {directory}/daemon.log)")


def _api_server_pid(state: dict) -> int:
    return next((p["pid"] for p in state["processes"] if p["role"] == "kube-apiserver"), 0)


def _owned_pods(state: dict, pods_path: str, owner_uid: str) -> list[dict]:
    return [pod for pod in _api(state, "GET", pods_path)["items"]
            if any(ref.get("uid") == owner_uid for ref in pod["metadata"].get("ownerReferences") or [])]


def _init_name() -> str:
    try:
        with open("/proc/1/comm") as comm:
            return comm.read().strip()
    except OSError:
        return ""


def _print_up(state: dict) -> None:
    print(f"sandbox {state['scenario']!r} is up (daemon pid {state['pid']})")
    print(f"  export KUBECONFIG={state['kubeconfig']}   # context sandbox, namespace {state['namespace']}")
    print(f"  API server {state['api_server']}" + (f" (CA {state['ca_file']})" if state["ca_file"] else ""))
    for key, address in sorted(state["external"].items()):
        print(f"  {key}: {address}")
    print(f"  stop it with: llmd-sandbox down --dir {state['dir']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmd-sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start a scenario in the background and wait until it is ready")
    start.add_argument("--scenario", required=True)
    start.add_argument("--dir", required=True)
    start.add_argument("--watch-pid", type=int, default=os.getppid(),
                       help="stop when this process is gone (default: the caller of llmd-sandbox, 0: never)")
    start.add_argument("--lifetime", type=float, default=7200, help="seconds before it stops by itself")
    stop = commands.add_parser("down", help="stop a sandbox and everything it started")
    stop.add_argument("--dir", required=True)
    restart = commands.add_parser("restart-pod", help="delete a pod and wait for its Ready replacement")
    restart.add_argument("--dir", required=True)
    restart.add_argument("-n", "--namespace")
    restart.add_argument("pod")
    api_restart = commands.add_parser("restart-apiserver", help="restart kube-apiserver and wait until it is ready")
    api_restart.add_argument("--dir", required=True)
    commands.add_parser("scenarios", help="list the scenarios")
    status = commands.add_parser("status", help="print state.json of a running sandbox")
    status.add_argument("--dir", required=True)
    options = parser.parse_args(argv)
    try:
        if options.command in ("restart-pod", "restart-apiserver") and not state_path(options.dir).exists():
            raise SandboxError(f"no sandbox runs in {options.dir}")
        if options.command == "up":
            if options.watch_pid == 1 and _init_name() in ("systemd", "init"):
                # the caller is gone already (init adopted us): its sandbox would outlive it for its lifetime
                raise SandboxError("the process that ran `llmd-sandbox up` is gone (its parent is now pid 1); "
                                   "pass --watch-pid 0 to run a sandbox that only ends by `down` or --lifetime")
            _print_up(up(options.scenario, options.dir, watch_pid=options.watch_pid, lifetime=options.lifetime))
        elif options.command == "down":
            if not down(options.dir):
                print(f"no sandbox runs in {options.dir}")
        elif options.command == "restart-pod":
            namespace = options.namespace or read_state(options.dir)["namespace"]
            print(restart_pod(options.dir, namespace, options.pod))
        elif options.command == "restart-apiserver":
            print(restart_api_server(options.dir))
        elif options.command == "scenarios":
            for name in scenarios.names():
                print(f"{name:22} {scenarios.load(name).description.split('. ')[0]}")
        elif options.command == "status":
            if not state_path(options.dir).exists():
                print(f"no sandbox runs in {options.dir}")
                return 1
            print(json.dumps(read_state(options.dir), indent=2))
    except (SandboxError, scenarios.ScenarioError) as exc:
        print(f"llmd-sandbox: {exc}", file=sys.stderr)
        return 1
    return 0
