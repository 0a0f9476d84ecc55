"""The seed's commands (seeds/inference-against-llm-d.md) as written, in bash with kubectl, yq, jq and curl,
against running scenarios.

The only change to the seed's text: this machine's `yq` is the jq wrapper (kislyuk/yq), which prints strings
JSON-quoted, so it gets `-r`; the seed was written for mikefarah/yq, which prints them raw.
"""

import json
import os
import select
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmd_sandbox import cli
from llmd_sandbox.state import read_state

GATEWAY_SVC = ("""GATEWAY_SVC=$(kubectl get svc -n "${NAMESPACE}" -o yaml | yq -r '.items[] | """
               """select(.metadata.name | test(".*-inference-gateway(-.*)?$")).metadata.name' | head -n1)""")
GATEWAY_ENDPOINT = """export ENDPOINT=$(kubectl get gateway --no-headers -n ${NAMESPACE} -o jsonpath='{.items[].status.addresses[0].value}')"""
DECODE_PODS = """DECODE_PODS=$(kubectl get pods --no-headers -n ${NAMESPACE} -l "llm-d.ai/role=decode" -o custom-columns=":metadata.name")"""
PREFILL_PODS = """PREFILL_PODS=$(kubectl get pods --no-headers -n ${NAMESPACE} -l "llm-d.ai/role=prefill" -o custom-columns=":metadata.name")"""


MOST_UP = 3  # each idle sandbox is a control plane, an EPP and Envoys: more at once starve a 2-core machine


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory):
    """One sandbox per scenario, started on first use; the least recently used is stopped beyond MOST_UP."""
    started = {}  # name -> directory, least recently used first

    def get(name: str) -> dict:
        if name in started:
            started[name] = started.pop(name)
        else:
            if len(started) >= MOST_UP:
                cli.down(started.pop(next(iter(started))))
            directory = tmp_path_factory.mktemp(name)
            cli.up(name, directory, watch_pid=os.getpid(), lifetime=900)
            started[name] = directory
        return read_state(started[name])

    yield get
    with ThreadPoolExecutor(max_workers=len(started) or 1) as pool:  # each down waits seconds for its processes
        list(pool.map(cli.down, started.values()))


def bash(state: dict, script: str, timeout: float = 60) -> str:
    env = dict(os.environ, KUBECONFIG=state["kubeconfig"], KUBECACHEDIR=os.path.join(state["dir"], "kube-cache"),
               NAMESPACE=state["namespace"])
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, check=False, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name, expected", [
    ("sim", "infra-sim-inference-gateway"),
    ("inference-scheduling", "infra-inference-scheduling-inference-gateway-istio"),
    # the seed's note: with two gateways the first in alphabetical order wins
    ("two-gateways", "infra-inference-scheduling-inference-gateway-istio"),
])
def test_gateway_service_found_by_the_seed_regex(sandboxes, name, expected):
    assert bash(sandboxes(name), GATEWAY_SVC + '\necho "$GATEWAY_SVC"').strip() == expected


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_port_forward_to_the_gateway_service_then_models_and_completions(sandboxes):
    state = sandboxes("inference-scheduling")
    gateway_svc = bash(state, GATEWAY_SVC + '\necho "$GATEWAY_SVC"').strip()
    port = free_port()  # the seed's 8000 may be taken on a shared machine
    env = dict(os.environ, KUBECONFIG=state["kubeconfig"], KUBECACHEDIR=os.path.join(state["dir"], "kube-cache"))
    forward = subprocess.Popen(["kubectl", "port-forward", "-n", state["namespace"], f"service/{gateway_svc}",
                                f"{port}:80"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert select.select([forward.stdout], [], [], 30)[0], "kubectl port-forward said nothing"
        assert forward.stdout.readline().startswith(f"Forwarding from 127.0.0.1:{port} -> 80")
        models = json.loads(bash(state, f'export ENDPOINT="http://localhost:{port}"\n'
                                        'curl -s ${ENDPOINT}/v1/models -H "Content-Type: application/json" | jq'))
        assert [m["id"] for m in models["data"]] == ["Qwen/Qwen3-0.6B"]
        completion = json.loads(bash(state, f'export ENDPOINT="http://localhost:{port}"\n' + """
curl -X POST ${ENDPOINT}/v1/completions \\
  -H 'Content-Type: application/json' \\
  -d '{
        "model": "Qwen/Qwen3-0.6B",
        "prompt": "How are you today?"
      }' | jq"""))
        assert completion["object"] == "text_completion" and completion["choices"][0]["text"]
    finally:
        forward.kill()
        forward.wait(10)


def test_gateway_external_ip_then_completions(sandboxes):
    state = sandboxes("sim")
    endpoint = bash(state, GATEWAY_ENDPOINT + '\necho "$ENDPOINT"').strip()
    assert endpoint == state["external"]["Service/llm-d-sim/infra-sim-inference-gateway"]
    models = json.loads(bash(state, f'ENDPOINT={endpoint}\n'
                                    'curl -s ${ENDPOINT}/v1/models -H "Content-Type: application/json" | jq'))
    assert models["data"][0]["id"] == "random"
    # the seed's TTFT trick sends max_tokens as a string, which a strict server rejects; as an integer it works.
    # Its seed, $(date +%M%H%M%S), has a leading zero in the first ten minutes of an hour, which is not a
    # JSON number: read it in base 10 as a user fixing the command would.
    as_string = json.loads(bash(state, f'ENDPOINT={endpoint}\n' + """
curl -s http://${ENDPOINT}/v1/completions \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "random",
    "prompt": "Hi, how are you?",
    "max_tokens": "1"
  }' | jq"""))
    assert as_string["error"]["code"] == 400
    seeded = json.loads(bash(state, f'ENDPOINT={endpoint}\n' + """
curl -s http://${ENDPOINT}/v1/completions \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "random",
    "prompt": "Hi, how are you?",
    "max_tokens": 1,
    "seed": '$((10#$(date +%M%H%M%S)))'
  }' | jq"""))
    assert seeded["usage"]["completion_tokens"] == 1 and seeded["choices"][0]["finish_reason"] == "length"


def test_named_gateway_when_there_are_two(sandboxes):
    state = sandboxes("two-gateways")
    listing = bash(state, "kubectl get gateway -n ${NAMESPACE}")
    assert "infra-inference-scheduling-inference-gateway   istio" in listing
    assert "infra-sim-inference-gateway" in listing and listing.count("True") == 2
    endpoint = bash(state, """GATEWAY_NAME=infra-inference-scheduling-inference-gateway
export ENDPOINT=$(kubectl get gateway ${GATEWAY_NAME} --no-headers -n ${NAMESPACE} -o jsonpath='{.status.addresses[0].value}')
echo "$ENDPOINT"
curl -s ${ENDPOINT}/v1/models | jq -r '.data[0].id'""").split()
    assert endpoint[1] == "Qwen/Qwen3-0.6B"


def test_ingress_address_as_ip(sandboxes):
    state = sandboxes("ingress")
    out = bash(state, """export ENDPOINT=$(kubectl get ingress --no-headers -o jsonpath='{.items[].status.loadBalancer.ingress[0].ip}')
echo "$ENDPOINT"
curl -s ${ENDPOINT}/v1/models | jq -r '.data[0].id'""").split()
    assert out == [state["external"]["Ingress/llm-d-ingress/infra-ingress-inference-gateway"], "random"]


def test_ingress_address_as_hostname(sandboxes):
    state = sandboxes("ingress-hostname")
    script = "kubectl get ingress --no-headers -o jsonpath='{.items[].status.loadBalancer.ingress[0].%s}'"
    assert bash(state, script % "ip") == ""  # the seed's command finds nothing: the address is a hostname
    out = bash(state, f"export ENDPOINT=$({script % 'hostname'})\n"
                      "echo \"$ENDPOINT\"\ncurl -s ${ENDPOINT}/v1/models | jq -r '.data[0].id'").split()
    assert out == ["localhost", "random"]


def test_nodeport_on_the_node_address(sandboxes):
    state = sandboxes("nodeport")
    out = bash(state, GATEWAY_SVC + """
NODE_IP=$(kubectl get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
NODE_PORT=$(kubectl get svc -n ${NAMESPACE} ${GATEWAY_SVC} -o jsonpath='{.spec.ports[0].nodePort}')
kubectl get svc -n ${NAMESPACE} ${GATEWAY_SVC} -o jsonpath='{.spec.type}{"\\n"}'
curl -s http://${NODE_IP}:${NODE_PORT}/v1/models | jq -r '.data[0].id'""").split()
    assert out == ["NodePort", "random"]


def test_decode_and_prefill_pods_by_label_and_their_logs(sandboxes):
    state = sandboxes("sim")
    decode = bash(state, DECODE_PODS + '\necho "$DECODE_PODS"').split()
    prefill = bash(state, PREFILL_PODS + '\necho "$PREFILL_PODS"').split()
    by_role = {role: sorted(k.split("/")[1] for k, p in state["pods"].items() if p["role"] == role)
               for role in ("decode", "prefill")}
    assert sorted(decode) == by_role["decode"] and len(decode) == 2
    assert prefill == by_role["prefill"]
    endpoint = state["external"]["Service/llm-d-sim/infra-sim-inference-gateway"]
    for i in range(4):  # reach both decode pods (prompts differ at the start, so affinity spreads them)
        bash(state, f"curl -sf -X POST http://{endpoint}/v1/completions -H 'Content-Type: application/json' "
                    f"-d '{{\"model\": \"random\", \"prompt\": \"{i} hello\", \"max_tokens\": 2}}'")
    for pod in decode:
        # The sim scenario's model servers are the real llm-d-inference-sim, which logs its start-up (klog) and
        # no line per request: the seed's filter of vLLM's `GET /metrics` access-log noise has nothing to take
        # out here (the old sandbox imitated vLLM's uvicorn access log for the simulator's image too).
        vllm = bash(state, f"kubectl logs -n ${{NAMESPACE}} {pod} -c vllm")
        assert '"Server starting" protocol="HTTP" port=8200' in vllm and "GET /metrics" not in vllm
        filtered = bash(state, f'kubectl logs -n ${{NAMESPACE}} {pod} -c vllm | grep -v "GET /metrics HTTP/1.1"')
        assert filtered == vllm
        proxy = bash(state, f"kubectl logs -n ${{NAMESPACE}} {pod} -c routing-proxy")
        assert '"starting" addr="[::]:8000" logger="proxy server"' in proxy


def test_guide_verification_of_pd_through_the_api_server_proxy(sandboxes, tmp_path):
    """The pd-disaggregation guide's own check: requests to the router, then P/D metrics read through the
    API server proxy with kubectl get --raw (no port-forward)."""
    state = sandboxes("pd-disaggregation")
    body = tmp_path / "request.json"
    body.write_text(json.dumps({"model": "meta-llama/Llama-3.1-8B-Instruct", "prompt": "word " * 200, "max_tokens": 5}))
    path = "/api/v1/namespaces/${NAMESPACE}/services/pd-disaggregation-epp:80/proxy/v1/completions"
    answer = json.loads(bash(state, f"kubectl create --raw {path} -f {body}"))
    assert answer["usage"]["completion_tokens"] == 5
    router = bash(state, "kubectl get --raw /api/v1/namespaces/${NAMESPACE}/services/pd-disaggregation-epp:9090/proxy/metrics")
    decisions = [line for line in router.splitlines() if line.startswith("llm_d_epp_disagg_decision_total")]
    assert any('decision_type="prefill-decode"' in line and not line.endswith(" 0.0") for line in decisions)
    prefill = bash(state, PREFILL_PODS + '\necho "$PREFILL_PODS"').strip()
    metrics = bash(state, f"kubectl get --raw /api/v1/namespaces/${{NAMESPACE}}/pods/{prefill}:8000/proxy/metrics")
    successes = [line for line in metrics.splitlines() if line.startswith("vllm:request_success_total")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in successes) >= 1
