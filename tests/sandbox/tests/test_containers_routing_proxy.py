"""The routing sidecar in front of vLLM: its answers while vLLM is down, pass-through, and the P/D protocol."""

import json
import socket
import time

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from containers_harness import random_pod_ip, wait_until

KLOG = r"^E\d{4} \d\d:\d\d:\d\d\.\d{6} +1 proxy\.go:\d+\] "
REFUSED = r'err="dial tcp \[::1\]:8200: connect: connection refused"'


def start_proxy(containers, behaviour, pod_ip=None):
    proxy = containers("routing-proxy", ["--port=8000", "--vllm-port=8200", "--connector=nixlv2",
                                         "--secure-proxy=false", f"--behaviour={behaviour}", "-v=4"],
                       pod_ip=pod_ip, pod="decode-0")
    proxy.wait_for_port(8000)
    proxy.url = f"http://{proxy.pod_ip}:8000"
    return proxy


def counters(url: str) -> dict:
    text = requests.get(url + "/metrics", timeout=5).text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items())
                                        if k == "finished_reason")
            values[key] = values.get(key, 0) + sample.value
    return values


def test_legacy_answers_502_empty_and_logs_waiting_for_vllm(containers):
    proxy = start_proxy(containers, "legacy")
    assert requests.get(proxy.url + "/health", timeout=5).status_code == 200
    answer = requests.get(proxy.url + "/v1/models", timeout=5)
    assert answer.status_code == 502 and answer.content == b""
    proxy.wait_for_line(KLOG + r'"waiting for vLLM to be ready" ' + REFUSED + r' logger="proxy server"$')
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="none", max_retries=0, timeout=5)
    with pytest.raises(openai.InternalServerError) as caught:
        client.completions.create(model="m1", prompt="Hi", max_tokens=1)
    assert caught.value.status_code == 502


def test_current_answers_503_json_and_logs_failed_to_connect(containers):
    proxy = start_proxy(containers, "current")
    answer = requests.get(proxy.url + "/v1/models", timeout=5)
    assert answer.status_code == 503
    assert answer.json() == {"object": "error", "message": "The decode node is not ready. Please check that the "
                             "vLLM service is running and the port configuration is correct.",
                             "type": "ServiceUnavailable", "param": "", "code": 503}
    proxy.wait_for_line(KLOG + r'"failed to connect to vLLM decoder" ' + REFUSED
                        + r' decoderURL="http://localhost:8200" logger="proxy server"$')
    assert requests.get(proxy.url + "/health", timeout=5).status_code == 200
    assert proxy.stop() == 0


def test_passes_through_once_vllm_is_up_streaming_unbuffered(containers):
    proxy = start_proxy(containers, "legacy")
    vllm = containers("vllm", ["--model", "m1", "--port", "8200", "--startup-seconds", "0.5",
                               "--inter-token-latency", "30"], pod_ip=proxy.pod_ip, pod="decode-0")
    assert requests.get(proxy.url + "/v1/models", timeout=5).status_code == 502
    wait_until(lambda: requests.get(proxy.url + "/v1/models", timeout=5).status_code == 200, 10, "vLLM up")
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="none", max_retries=0, timeout=10)
    raw = client.completions.with_raw_response.create(model="m1", prompt="Hi", max_tokens=2)
    assert raw.headers["x-request-id"] and raw.parse().usage.completion_tokens == 2

    def content_arrivals():
        started = time.monotonic()
        return [time.monotonic() - started for chunk in client.chat.completions.create(
            model="m1", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True)
            if chunk.choices and chunk.choices[0].delta.content]

    content_arrivals()  # warm up the client's lazy imports
    arrivals = content_arrivals()
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert len(arrivals) == 4 and min(gaps) >= 0.02, gaps  # each token passes as soon as vLLM writes it
    vllm.wait_for_line(r'^INFO:     127\.\d+\.\d+\.\d+:\d+ - "POST /v1/chat/completions HTTP/1\.1" 200 OK$')


def test_pd_prefills_remotely_then_decodes_locally(containers):
    proxy = start_proxy(containers, "current")
    decode = containers("vllm", ["--model", "m1", "--port", "8200"], pod_ip=proxy.pod_ip, pod="decode-0")
    prefill = containers("vllm", ["--model", "m1", "--port", "8000"], pod_ip=random_pod_ip(), pod="prefill-0")
    decode.wait_for_port(8200)
    prefill.wait_for_port(8000)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="none", max_retries=0, timeout=10)
    prompt = " ".join(f"token{i}" for i in range(100))
    completion = client.completions.create(
        model="m1", prompt=prompt, max_tokens=5, extra_headers={"x-prefiller-host-port": f"{prefill.pod_ip}:8000"})
    assert completion.usage.completion_tokens == 5
    # The decode pod is told where the KV blocks are, so its prompt comes through the connector.
    assert completion.model_extra["kv_transfer_params"] is None
    proxy.wait_for_line(rf'"running NIXL protocol V2" url="{prefill.pod_ip}:8000"')
    prefilled, decoded = counters(f"http://{prefill.pod_ip}:8000"), counters(f"http://{decode.pod_ip}:8200")
    assert prefilled["vllm:request_success_total|finished_reason=length"] == 1
    assert prefilled["vllm:generation_tokens_total"] == 1
    assert decoded["vllm:request_success_total|finished_reason=length"] == 1
    assert decoded["vllm:external_prefix_cache_hits_total"] == completion.usage.prompt_tokens
    assert prefilled["vllm:external_prefix_cache_hits_total"] == 0


def test_pd_with_unreachable_prefiller_fails_with_its_status(containers):
    proxy = start_proxy(containers, "current")
    containers("vllm", ["--model", "m1", "--port", "8200"], pod_ip=proxy.pod_ip).wait_for_port(8200)
    answer = requests.post(proxy.url + "/v1/completions", timeout=5, data=json.dumps(
        {"model": "m1", "prompt": "Hi"}), headers={"x-prefiller-host-port": f"{random_pod_ip()}:8000"})
    assert answer.status_code == 502
    proxy.wait_for_line(r'"request failed" err="<nil>" code=502')


def test_a_client_gone_before_the_answer_is_no_error(containers):
    # Envoy closes its upstream connection when its own client goes away (the faults soak's pod restarts do):
    # the sidecar has nobody to answer then, and says nothing (Go's reverse proxy neither).
    proxy = start_proxy(containers, "legacy")
    containers("vllm", ["--model", "m1", "--port", "8200", "--startup-seconds", "0", "--time-to-first-token", "300"],
               pod_ip=proxy.pod_ip, pod="decode-0")
    wait_until(lambda: requests.get(proxy.url + "/v1/models", timeout=5).status_code == 200, 10, "vLLM up")
    body = json.dumps({"model": "m1", "prompt": "Hi", "max_tokens": 2}).encode()
    with socket.create_connection((proxy.pod_ip, 8000), timeout=5) as client:
        client.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: decode-0\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    time.sleep(1)  # past the 300 ms the answer takes, when the sidecar would write it
    assert requests.get(proxy.url + "/v1/models", timeout=5).status_code == 200
    assert "Traceback" not in proxy.log()
