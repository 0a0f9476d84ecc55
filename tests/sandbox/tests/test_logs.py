"""Container logs through the real API server, which asks the node agent's kubelet API (`containerLogs`) and
answers some cases itself: kubectl logs with --tail, --timestamps, --since, -f, -c, --all-containers,
--previous after a crash (the crashloop scenario), and the real error messages."""

import datetime
import queue
import re
import subprocess
import threading
import time

import pytest
import requests
from cluster_harness import ECHO_NAMESPACE, HTTP_PORT, TIMEOUT, kubectl, kubectl_command, kubectl_env, start_sandbox, \
    stop_sandbox, wait_until
from kubernetes import client, config
from kubernetes.client.rest import ApiException

CRASHLOOP_NAMESPACE = "llm-d-crashloop"
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z ")  # RFC3339Nano, always 9 digits


@pytest.fixture(scope="module")
def echo(echo_sandbox):
    return echo_sandbox


@pytest.fixture(scope="module")
def core(echo):
    api_client = config.new_client_from_config(str(echo.sandbox.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def logs(echo, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return kubectl(echo.sandbox, "logs", "-n", ECHO_NAMESPACE, *args, check=check)


def stamp(line: str) -> datetime.datetime:
    match = TIMESTAMP.match(line)
    assert match, f"no RFC3339Nano timestamp: {line!r}"
    return datetime.datetime.fromisoformat(match.group(1) + "+00:00") + \
        datetime.timedelta(microseconds=int(match.group(2)[:6]))


def test_tail_and_timestamps(echo):
    lines = logs(echo, echo.pod(), "--tail=3", "--timestamps").stdout.splitlines()
    assert len(lines) == 3
    stamps = [stamp(line) for line in lines]
    assert stamps == sorted(stamps)
    assert all(TIMESTAMP.sub("", line) for line in lines)
    everything = logs(echo, echo.pod()).stdout.splitlines()
    assert everything[0].startswith(f"echo echo of pod {echo.pod()} serving http [{HTTP_PORT}]")
    assert not TIMESTAMP.match(everything[0])


def test_since_keeps_only_recent_lines(echo):
    started = datetime.datetime.now(datetime.UTC)
    time.sleep(1.2)  # the echo program prints a tick every 0.25 s (and the probe's requests)
    recent = logs(echo, echo.pod(), "--since=1s", "--timestamps").stdout.splitlines()
    assert recent and len(recent) < len(logs(echo, echo.pod()).stdout.splitlines())
    assert all(stamp(line) >= started for line in recent)


def test_follow_streams_new_lines_as_they_are_written(echo, background):
    process = background.start(kubectl_command(echo.sandbox, "logs", "-n", ECHO_NAMESPACE, "-f", "--tail=0",
                                               echo.pod()), env=kubectl_env(echo.sandbox), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    first = lines.get(timeout=TIMEOUT)  # a tick: following works, and --tail=0 sent nothing old
    assert first.startswith(("tick ", "GET /hello 200"))
    marker = 12345 + time.monotonic_ns() % 1000
    pod_ip = echo.pod_ip(echo.pod())  # the host reaches pods on the bridge, as a node does
    assert len(requests.get(f"http://{pod_ip}:{HTTP_PORT}/bytes/{marker}", timeout=10).content) == marker
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if lines.get(timeout=TIMEOUT).strip() == f"GET /bytes/{marker} 200 port={HTTP_PORT}":
            break
    else:
        pytest.fail("the request's log line never came through kubectl logs -f")
    assert process.poll() is None  # still following


def test_several_containers_kubectl_picks_the_first_and_says_so(echo):
    result = logs(echo, "two-containers")
    assert result.stderr.strip() == 'Defaulted container "first" out of: first, second'
    assert result.stdout.startswith("echo first of pod two-containers")
    assert logs(echo, "two-containers", "-c", "second").stdout.startswith("echo second of pod two-containers")
    both = logs(echo, "two-containers", "--all-containers", "--prefix", "--tail=1").stdout.splitlines()
    assert sorted(line.split(" ", 1)[0] for line in both) == ["[pod/two-containers/first]",
                                                              "[pod/two-containers/second]"]


def test_several_containers_and_none_named_is_the_api_servers_400(core):
    with pytest.raises(ApiException) as failure:
        core.read_namespaced_pod_log("two-containers", ECHO_NAMESPACE)
    assert failure.value.status == 400
    assert '"message":"a container name must be specified for pod two-containers, choose one of: [first second]"' \
        in failure.value.body


def test_an_unknown_container_is_refused_by_kubectl_and_by_the_api_server(echo, core):
    result = logs(echo, "two-containers", "-c", "third", check=False)
    assert result.returncode == 1  # kubectl read the pod and checks the name itself
    assert result.stderr.strip() == "error: container third is not valid for pod two-containers"
    with pytest.raises(ApiException) as failure:
        core.read_namespaced_pod_log("two-containers", ECHO_NAMESPACE, container="third")
    assert failure.value.status == 400
    assert '"message":"container third is not valid for pod two-containers"' in failure.value.body


def test_previous_without_a_previous_container_is_a_400(echo):
    pod = echo.pod()
    result = logs(echo, pod, "--previous", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (f'Error from server (BadRequest): previous terminated container "echo" in pod '
                                     f'"{pod}" not found')


def test_a_pod_not_scheduled_has_empty_logs(echo, core):
    # The API server answers itself, 200 with nothing (there is no node to ask).
    result = logs(echo, "unscheduled")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# ---- a container that crashes: the crashloop scenario ----------------------------------------------------

@pytest.fixture(scope="module")
def crashloop(tmp_path_factory):
    sandbox = start_sandbox(tmp_path_factory.mktemp("crashloop"), "crashloop")
    yield sandbox
    stop_sandbox(sandbox)


def crashing_pod(sandbox) -> str:
    [name] = [key.split("/")[1] for key, pod in sandbox.state["pods"].items() if pod["role"] == "decode"]
    return name


def test_crashloop_pod_status(crashloop):
    api = client.CoreV1Api(config.new_client_from_config(str(crashloop.kubeconfig)))
    name = crashing_pod(crashloop)

    def crashlooping():
        pod = api.read_namespaced_pod(name, CRASHLOOP_NAMESPACE)
        vllm = next(s for s in pod.status.container_statuses if s.name == "vllm")
        waiting = vllm.state.waiting
        return pod if vllm.restart_count >= 2 and waiting and waiting.reason == "CrashLoopBackOff" else None

    pod = wait_until(crashlooping, 30, "vllm in CrashLoopBackOff after two restarts", interval=0.1)
    vllm = next(s for s in pod.status.container_statuses if s.name == "vllm")
    assert "back-off" in vllm.state.waiting.message and not vllm.ready
    terminated = vllm.last_state.terminated
    assert terminated.exit_code == 1 and terminated.reason == "Error"
    assert terminated.started_at <= terminated.finished_at
    assert pod.status.phase == "Running"
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
    proxy = pod.status.init_container_statuses[0]
    assert proxy.name == "routing-proxy" and proxy.state.running and proxy.restart_count == 0
    # kubectl's STATUS column reads the waiting reason
    # (read until the back-off shows: the container may be restarting at the moment kubectl asks)

    def backing_off():
        listing = kubectl(crashloop, "get", "pod", "-n", CRASHLOOP_NAMESPACE, name, "--no-headers").stdout
        return listing if re.search(r"\s1/2\s+CrashLoopBackOff\s+\d+ \(", listing) else None

    assert wait_until(backing_off, 30, "kubectl's STATUS CrashLoopBackOff", interval=0.2)


def test_previous_shows_the_crashed_containers_log(crashloop):
    name = crashing_pod(crashloop)
    api = client.CoreV1Api(config.new_client_from_config(str(crashloop.kubeconfig)))
    wait_until(lambda: next(s for s in api.read_namespaced_pod(name, CRASHLOOP_NAMESPACE).status.container_statuses
                            if s.name == "vllm").restart_count >= 1, what="vllm restarted once")
    previous = kubectl(crashloop, "logs", "-n", CRASHLOOP_NAMESPACE, name, "-c", "vllm", "--previous").stdout
    assert "torch.OutOfMemoryError: CUDA out of memory" in previous
    also = api.read_namespaced_pod_log(name, CRASHLOOP_NAMESPACE, container="vllm", previous=True)
    assert "torch.OutOfMemoryError: CUDA out of memory" in also


def test_the_daemon_log_carries_a_failed_containers_last_words(crashloop):
    # What `up` prints when a scenario does not start is this log's tail: it says why a container failed.
    name = crashing_pod(crashloop)
    log = crashloop.dir / "daemon.log"
    wait_until(lambda: f"{name}: container vllm exited with 1" in log.read_text(), 30, "vllm's exit in the daemon log")
    exit_line, *rest = log.read_text().split(f"{name}: container vllm exited with 1", 1)[1].splitlines()[:4]
    assert exit_line == "" and len(rest) == 3 and all(line.startswith("    | ") for line in rest)
    assert any("EngineDeadError" in line or "OutOfMemoryError" in line for line in rest)
