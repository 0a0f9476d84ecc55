"""The seed's steps done with the official clients against `sim`: the kubernetes package (CoreV1Api,
DynamicClient, stream.portforward) finds and reaches the gateway, the openai package talks to it."""

import ipaddress
import json
import os
import time

import openai
import pytest
from kubernetes import client, config, dynamic
from kubernetes.stream import portforward

from llmd_sandbox import cli
from llmd_sandbox.fixture import Sandbox

NAMESPACE = "llm-d-sim"
GATEWAY = "infra-sim-inference-gateway"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sim")
    cli.up("sim", directory, watch_pid=os.getpid(), lifetime=900)
    yield Sandbox(directory, "sim")
    cli.down(directory)


@pytest.fixture(scope="module")
def api_client(sim):
    return config.new_client_from_config(str(sim.kubeconfig))


@pytest.fixture(scope="module")
def endpoint(api_client):
    """The seed's second way: the Gateway's status address."""
    gateways = dynamic.DynamicClient(api_client).resources.get(api_version="gateway.networking.k8s.io/v1",
                                                               kind="Gateway")
    gateway = gateways.get(namespace=NAMESPACE, name=GATEWAY)
    assert {c.type: c.status for c in gateway.status.conditions}["Programmed"] == "True"
    return f"http://{gateway.status.addresses[0].value}"


@pytest.fixture(scope="module")
def openai_client(endpoint):
    return openai.OpenAI(base_url=f"{endpoint}/v1", api_key="unused", timeout=10, max_retries=0)


def test_core_api_lists_decode_and_prefill_pods_by_label(api_client, sim):
    core = client.CoreV1Api(api_client)
    for role, count in (("decode", 2), ("prefill", 1)):
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"llm-d.ai/role={role}").items
        assert len(pods) == count
        assert all(p.status.phase == "Running" and p.status.pod_ip == sim.state["pods"][f"{NAMESPACE}/{p.metadata.name}"]["ip"]
                   for p in pods)
    decode = core.list_namespaced_pod(NAMESPACE, label_selector="llm-d.ai/role=decode").items[0]
    assert [c.name for c in decode.spec.init_containers] == ["routing-proxy"]
    assert decode.spec.init_containers[0].restart_policy == "Always"
    assert decode.metadata.owner_references[0].kind == "ReplicaSet"
    assert decode.metadata.labels["pod-template-hash"] in decode.metadata.name


def test_gateway_service_is_a_load_balancer_with_the_gateway_address(api_client, endpoint, sim):
    service = client.CoreV1Api(api_client).read_namespaced_service(GATEWAY, NAMESPACE)
    # The real API server allocates the ClusterIP from the sandbox's own service range (a free /24 in
    # 10.96-127.x), not always from 10.96.0.0/16 as the old sandbox did.
    assert service.spec.type == "LoadBalancer"
    assert ipaddress.ip_address(service.spec.cluster_ip) in ipaddress.ip_network(sim.state["service_cidr"])
    assert f"http://{service.status.load_balancer.ingress[0].ip}" == endpoint
    assert service.metadata.labels["gateway.networking.k8s.io/gateway-name"] == GATEWAY


def test_dynamic_client_reads_the_route_and_the_pool_it_points_at(api_client):
    resources = dynamic.DynamicClient(api_client).resources
    route = resources.get(api_version="gateway.networking.k8s.io/v1", kind="HTTPRoute").get(namespace=NAMESPACE)
    backend = route.items[0].spec.rules[0].backendRefs[0]
    assert {c.type: c.status for c in route.items[0].status.parents[0].conditions}["ResolvedRefs"] == "True"
    pool = resources.get(api_version=f"{backend.group}/v1alpha2", kind="InferencePool").get(
        namespace=NAMESPACE, name=backend.name)
    assert pool.spec.targetPortNumber == 8000


def test_portforward_to_the_gateway_pod(api_client):
    core = client.CoreV1Api(api_client)
    pod = core.list_namespaced_pod(NAMESPACE, label_selector=f"gateway.networking.k8s.io/gateway-name={GATEWAY}").items[0]
    forward = portforward(core.connect_get_namespaced_pod_portforward, pod.metadata.name, NAMESPACE, ports="8080")
    sock = forward.socket(8080)
    sock.settimeout(10)
    try:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    finally:
        sock.close()
        forward.close()
    head, _sep, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b'"id":"random"' in body


def test_openai_models_completions_and_chat(openai_client):
    assert [m.id for m in openai_client.models.list()] == ["random"]
    completion = openai_client.completions.create(model="random", prompt="How are you today?", max_tokens=5)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    # The real simulator's random mode answers a random sentence cut at max_tokens: often shorter, then "stop"
    # (the old sandbox's always filled max_tokens).
    tokens, finish = completion.usage.completion_tokens, completion.choices[0].finish_reason
    assert 1 <= tokens <= 5 and finish in (("stop", "length") if tokens == 5 else ("stop",))
    chat = openai_client.chat.completions.create(model="random", max_tokens=8,
                                                 messages=[{"role": "user", "content": "Hello"}])
    assert chat.object == "chat.completion" and chat.choices[0].message.role == "assistant"
    with pytest.raises(openai.NotFoundError, match="The model `nope` does not exist."):
        openai_client.completions.create(model="nope", prompt="x")


def test_openai_streaming_ttft_matches_the_serving_pods_configuration(openai_client, sim):
    """TTFT measured through the LoadBalancer address is the pod's configured TTFT (state.json) plus little."""
    started = time.monotonic()
    with openai_client.chat.completions.with_streaming_response.create(
            model="random", stream=True, max_tokens=10, messages=[{"role": "user", "content": "Stream please"}],
            stream_options={"include_usage": True}) as response:
        pod = response.headers["x-inference-pod"]
        first, chunks = None, []
        for chunk in response.parse():
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.monotonic() - started
            chunks.append(chunk)
    configured = sim.state["pods"][f"{NAMESPACE}/{pod}"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert 1 <= chunks[-1].usage.completion_tokens <= 10  # random mode: up to max_tokens (see above)
    assert configured["ttft_ms"] / 1000 <= first < configured["ttft_ms"] / 1000 + 0.5
    assert json.loads(chunks[1].model_dump_json())["object"] == "chat.completion.chunk"
