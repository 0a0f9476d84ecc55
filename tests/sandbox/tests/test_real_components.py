"""The real llm-d components in the sandbox answer as themselves: llm-d-inference-sim v0.10, GAIE's EPP and Envoy
as the kgateway gateway's proxy in the sim scenario, the EPP and Envoy of the llm-d-router-standalone render in
optimized-baseline.
Every expectation here is what the real binary does; none is the sandbox's own."""

import json
import os
import subprocess
import time

import pytest
import requests

from llmd_sandbox import cli
from llmd_sandbox.fixture import Sandbox

SIM_NAMESPACE = "llm-d-sim"
BASELINE_NAMESPACE = "llm-d-optimized-baseline"
GATEWAY_SERVICE = "Service/llm-d-sim/infra-sim-inference-gateway"
SIM_ROUTE = "httproute/ms-sim-llm-d-modelservice"
# A pod of the sim's pool whose simulator serves but which never becomes Ready (its probe asks a closed port).
UNREADY_POD = """
apiVersion: v1
kind: Pod
metadata: {name: unready-sim, namespace: llm-d-sim, labels: {llm-d.ai/inferenceServing: "true", llm-d.ai/role: decode}}
spec:
  containers:
  - name: vllm
    image: ghcr.io/llm-d/llm-d-inference-sim:v0.10.2
    args: [--model, random, --port, "8000", --force-dummy-tokenizer]
    env: [{name: POD_NAME, value: unready-sim}]
    readinessProbe: {httpGet: {path: /health, port: 8999}, periodSeconds: 1}
"""
FAILING_POD = """
apiVersion: v1
kind: Pod
metadata: {name: failing-sim, namespace: llm-d-sim, labels: {app: failing-sim}}
spec:
  containers:
  - name: vllm
    image: ghcr.io/llm-d/llm-d-inference-sim:v0.10.2
    args: [--model, random, --port, "8000", --force-dummy-tokenizer, --failure-injection-rate, "100",
           --failure-types, rate_limit]
    readinessProbe: {httpGet: {path: /health, port: 8000}, periodSeconds: 1}
"""


def _sandbox(tmp_path_factory, scenario):
    directory = tmp_path_factory.mktemp(scenario)
    cli.up(scenario, directory, watch_pid=os.getpid(), lifetime=900)
    return Sandbox(directory, scenario)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    sandbox = _sandbox(tmp_path_factory, "sim")
    yield sandbox
    sandbox.down()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    sandbox = _sandbox(tmp_path_factory, "optimized-baseline")
    yield sandbox
    sandbox.down()


def _prefill(sandbox):
    """(pod name, URL) of the prefill pod: the simulator alone on 8000, no sidecar in front."""
    name, pod = next((k, v) for k, v in sandbox.state["pods"].items() if v["role"] == "prefill")
    return name.split("/")[1], f"http://{pod['ip']}:8000"


def _kubectl(sandbox, *args, check=True):
    return subprocess.run(sandbox.kubectl(*args), capture_output=True, text=True, timeout=60, check=check)


def test_the_processes_are_the_real_binaries(sim, baseline):
    def programs(sandbox):
        """container -> the basename of the program its process runs."""
        out = {}
        for entry in sandbox.state["processes"]:
            try:
                with open(f"/proc/{entry['pid']}/cmdline", "rb") as cmdline:
                    out[entry.get("container") or entry.get("role") or str(entry["pid"])] = os.path.basename(
                        cmdline.read().split(b"\0")[0].decode())
            except FileNotFoundError:
                continue
        return out

    in_sim, in_baseline = programs(sim), programs(baseline)
    names = set(in_sim.values()) | set(in_baseline.values())
    assert any(n.startswith("llm-d-inference-sim-v0.10") for n in names), names
    assert any(n.startswith("kube-apiserver-v1.33") for n in names), names
    # the kgateway gateway's proxy and its v1alpha2 pool's picker; the standalone chart's Envoy and EPP
    assert in_sim["kgateway-proxy"] == "envoy" and in_sim["epp"] == "epp-v1alpha2-v1.3.0", in_sim
    assert in_baseline["envoy-proxy"] == "envoy" and in_baseline["epp"] == "epp-v1.5.0", in_baseline


def test_each_container_has_its_own_dev_shm(baseline):
    # The chart's Envoy keeps hot restart on: its shared memory region is in its container's /dev/shm, as in a
    # pod, not in the host's, where every sandbox's Envoys would share one name and leave it behind.
    [envoy] = [p["pid"] for p in baseline.state["processes"] if p.get("container") == "envoy-proxy"]
    inside = subprocess.run(["nsenter", "-t", str(envoy), "-m", "ls", "/dev/shm"], capture_output=True, text=True,
                            check=True, timeout=10).stdout.split()
    assert "envoy_shared_memory_0" in inside
    assert os.readlink(f"/proc/{envoy}/ns/mnt") != os.readlink("/proc/self/ns/mnt")  # a mount namespace of its own


def test_the_simulator_serves_the_openai_api(sim):
    pod, url = _prefill(sim)
    models = requests.get(f"{url}/v1/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == ["random"]
    answer = requests.post(f"{url}/v1/completions", json={"model": "random", "prompt": "hi", "max_tokens": 4},
                           timeout=10)
    assert answer.status_code == 200 and answer.json()["object"] == "text_completion"
    # x-inference-pod: only because the pod spec gives POD_NAME from the downward API
    assert answer.headers["x-inference-pod"] == pod
    assert answer.headers["x-inference-namespace"] == SIM_NAMESPACE
    chat = requests.post(f"{url}/v1/chat/completions", timeout=10, json={
        "model": "random", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert chat.json()["choices"][0]["message"]["role"] == "assistant"
    with requests.post(f"{url}/v1/chat/completions", stream=True, timeout=10, json={
            "model": "random", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
            "stream": True}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [line for line in stream.iter_lines() if line]
    assert events[-1] == b"data: [DONE]"
    assert json.loads(events[0][len(b"data: "):])["object"] == "chat.completion.chunk"


def test_the_simulator_refuses_what_go_refuses(sim):
    _pod, url = _prefill(sim)
    string_tokens = requests.post(f"{url}/v1/completions", timeout=5,
                                  json={"model": "random", "prompt": "hi", "max_tokens": "1"})
    assert string_tokens.status_code == 400  # the seed's "1": vLLM's lax pydantic takes it, the simulator not
    unknown = requests.post(f"{url}/v1/completions", timeout=5, json={"model": "gpt-9", "prompt": "hi"})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "NotFoundError"


def test_the_simulator_metrics_have_vllms_names(sim):
    _pod, url = _prefill(sim)
    text = requests.get(f"{url}/metrics", timeout=5).text
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:time_to_first_token_seconds"):
        assert name in text, name


def test_the_simulator_starts_with_no_route_out_and_injects_failures(sim):
    subprocess.run(sim.kubectl("apply", "-f", "-"), input=FAILING_POD, text=True, check=True, timeout=60,
                   capture_output=True)
    _kubectl(sim, "wait", "-n", SIM_NAMESPACE, "--for=condition=Ready", "pod/failing-sim", "--timeout=60s")
    pod = json.loads(_kubectl(sim, "get", "-n", SIM_NAMESPACE, "pod/failing-sim", "-o", "json").stdout)
    state = sim.state["pods"][f"{SIM_NAMESPACE}/failing-sim"]
    routes = subprocess.run(["ip", "-n", state["netns"], "route"], capture_output=True, text=True, check=True)
    assert "default" not in routes.stdout  # it never had a way to a model hub
    answer = requests.post(f"http://{pod['status']['podIP']}:8000/v1/completions", timeout=5,
                           json={"model": "random", "prompt": "hi", "max_tokens": 2})
    assert answer.status_code == 429
    assert answer.json()["error"]["type"]
    _kubectl(sim, "delete", "-n", SIM_NAMESPACE, "pod/failing-sim", "--wait=false")


def test_the_epp_and_envoy_route_to_a_ready_pod(baseline):
    proxy = f"/api/v1/namespaces/{BASELINE_NAMESPACE}/services/optimized-baseline-epp:http/proxy"
    body = _kubectl(baseline, "get", "--raw", f"{proxy}/v1/models").stdout
    assert json.loads(body)["data"][0]["id"] == "Qwen/Qwen3-32B"
    logs = _kubectl(baseline, "logs", "-n", BASELINE_NAMESPACE, "deploy/optimized-baseline-epp", "-c", "epp").stdout
    assert "EPP received request" in logs  # the request went through the real EPP's ext_proc


def test_the_epp_answers_for_itself_when_no_pod_is_ready(baseline):
    proxy = f"/api/v1/namespaces/{BASELINE_NAMESPACE}/services/optimized-baseline-epp:http/proxy"
    _kubectl(baseline, "scale", "-n", BASELINE_NAMESPACE, "deployment/optimized-baseline-decode", "--replicas=0")
    try:
        deadline, last = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            last = _kubectl(baseline, "get", "--raw", f"{proxy}/v1/models", check=False).stderr
            if "no pods available in datastore" in last:
                break
            time.sleep(0.5)
        # GET: the EPP's own 500, not Envoy's `no healthy upstream`
        assert "no pods available in datastore" in last, last
        state = baseline.state
        post = requests.post(f"{state['api_server']}{proxy}/v1/completions", timeout=10,
                             verify=state["ca_file"], headers={"Authorization": f"Bearer {state['tokens']['admin']}"},
                             json={"model": "Qwen/Qwen3-32B", "prompt": "hi", "max_tokens": 2})
        assert post.status_code == 503 and "failed to find endpoint candidates" in post.text  # POST: 503
    finally:
        _kubectl(baseline, "scale", "-n", BASELINE_NAMESPACE, "deployment/optimized-baseline-decode", "--replicas=2")
        _kubectl(baseline, "rollout", "status", "-n", BASELINE_NAMESPACE, "deployment/optimized-baseline-decode",
                 "--timeout=60s")


def test_the_epps_metrics_want_a_token(baseline):
    """The API server proxy does not pass the caller's token on: the EPP's authenticated metrics say 401."""
    metrics = f"/api/v1/namespaces/{BASELINE_NAMESPACE}/services/optimized-baseline-epp:http-metrics/proxy/metrics"
    refused = _kubectl(baseline, "get", "--raw", metrics, check=False)
    # kubectl renders the EPP's 401 as if the API server had refused the kubeconfig's credentials
    assert refused.returncode != 0 and "You must be logged in to the server" in refused.stderr, refused.stderr
    state = baseline.state
    answer = requests.get(f"{state['api_server']}{metrics}", timeout=10, verify=state["ca_file"],
                          headers={"Authorization": f"Bearer {state['tokens']['admin']}"})
    assert answer.status_code == 401 and "Unauthorized" in answer.text


def _gateway(sandbox) -> str:
    return f"http://{sandbox.state['external'][GATEWAY_SERVICE]}"


def _answer_of(status, get):
    """check() for _until: the answer of get() when it has this status, else None."""
    def check():
        answer = get()
        return answer if answer.status_code == status else None
    return check


def _until(check, seconds=30.0):
    """The last answer of check() once it is truthy (or when time is up): Envoy reloads its files within ~1 s."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def _completion(url, max_tokens=2):
    return requests.post(f"{url}/v1/completions", timeout=10,
                         json={"model": "random", "prompt": "hi", "max_tokens": max_tokens, "ignore_eos": True})


def test_the_gateway_is_envoy_routing_where_the_epp_says(sim):
    url = _gateway(sim)
    models = requests.get(f"{url}/v1/models", timeout=5)
    assert models.status_code == 200 and models.json()["data"][0]["id"] == "random"
    assert models.headers["server"] == "envoy" and models.headers["x-went-into-resp-headers"] == "true"
    answer = _completion(url)
    assert answer.status_code == 200 and answer.headers["x-inference-pod"].startswith("ms-sim-llm-d-modelservice-")
    bad = requests.post(f"{url}/v1/completions", data="not json", timeout=5)  # the EPP refuses it, Envoy says so
    assert bad.status_code == 400 and bad.text.startswith("inference gateway: BadRequest"), bad.text


def test_envoy_follows_the_route_its_match_and_timeout(sim):
    """A changed HTTPRoute reaches the running Envoy: no match is Envoy's 404, the route's timeout its 504."""
    url = _gateway(sim)
    _kubectl(sim, "patch", "-n", SIM_NAMESPACE, SIM_ROUTE, "--type=json", "-p", json.dumps([
        {"op": "replace", "path": "/spec/rules/0/matches/0/path/value", "value": "/v1"},
        {"op": "replace", "path": "/spec/rules/0/timeouts/request", "value": "100ms"}]))
    try:
        outside = _until(_answer_of(404, lambda: requests.get(f"{url}/metrics", timeout=5)))
        assert outside is not None and outside.text == "" and outside.headers["server"] == "envoy"
        cut = _completion(url, max_tokens=200)  # 20 ms + 200 x 5 ms, past the 100 ms route timeout
        assert cut.status_code == 504 and cut.text == "upstream request timeout"
    finally:
        _kubectl(sim, "patch", "-n", SIM_NAMESPACE, SIM_ROUTE, "--type=json", "-p", json.dumps([
            {"op": "replace", "path": "/spec/rules/0/matches/0/path/value", "value": "/"},
            {"op": "replace", "path": "/spec/rules/0/timeouts/request", "value": "0s"}]))
    assert _until(lambda: _completion(url, max_tokens=200).status_code == 200)


def test_the_epp_picks_ready_pods_only(sim):
    subprocess.run(sim.kubectl("apply", "-f", "-"), input=UNREADY_POD, text=True, check=True, capture_output=True,
                   timeout=60)
    try:
        _until(lambda: _kubectl(sim, "get", "-n", SIM_NAMESPACE, "pod/unready-sim", "-o",
                                "jsonpath={.status.podIP}").stdout)
        pods = {_completion(_gateway(sim)).headers.get("x-inference-pod") for _attempt in range(12)}
        assert pods and "unready-sim" not in pods and None not in pods, pods
    finally:
        _kubectl(sim, "delete", "-n", SIM_NAMESPACE, "pod/unready-sim", "--wait=false")


def test_without_its_picker_the_gateway_answers_as_the_pools_failure_mode_says(sim):
    """FailClose: Envoy's 500 with no body; FailOpen: Envoy routes without a destination, `no healthy upstream`."""
    url = _gateway(sim)
    _kubectl(sim, "scale", "-n", SIM_NAMESPACE, "deployment/gaie-sim-epp", "--replicas=0")
    try:
        closed = _until(_answer_of(500, lambda: requests.get(f"{url}/v1/models", timeout=5)))
        assert closed is not None and closed.text == ""
        _kubectl(sim, "patch", "-n", SIM_NAMESPACE, "inferencepool.inference.networking.x-k8s.io/gaie-sim",
                 "--type=merge", "-p", '{"spec": {"extensionRef": {"failureMode": "FailOpen"}}}')
        opened = _until(_answer_of(503, lambda: requests.get(f"{url}/v1/models", timeout=5)))
        assert opened is not None and opened.text == "no healthy upstream"
    finally:
        _kubectl(sim, "patch", "-n", SIM_NAMESPACE, "inferencepool.inference.networking.x-k8s.io/gaie-sim",
                 "--type=merge", "-p", '{"spec": {"extensionRef": {"failureMode": "FailClose"}}}')
        _kubectl(sim, "scale", "-n", SIM_NAMESPACE, "deployment/gaie-sim-epp", "--replicas=1")
        _kubectl(sim, "rollout", "status", "-n", SIM_NAMESPACE, "deployment/gaie-sim-epp", "--timeout=60s")
    # The new picker must be in its Service's EndpointSlice, in Envoy's files, and have listed the pool's pods.
    answers = []

    def models():
        answers.append(requests.get(f"{url}/v1/models", timeout=5))
        return answers[-1]
    back = _until(_answer_of(200, models), seconds=90)
    assert back is not None, (answers[-1].status_code, answers[-1].text[:200], _kubectl(
        sim, "logs", "-n", SIM_NAMESPACE, "deployment/gaie-sim-epp", "--tail=20", check=False).stdout)
