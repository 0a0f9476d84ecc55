"""The fault program (containers/fault.py) in front of the vLLM stand-in: each port's fault, as the faults target
relies on it (tests/integration/targets/faults)."""

import socket

import pytest
import requests

from containers_harness import random_pod_ip, wait_until

PORTS = {"burst": 9001, "backlog": 9002, "hang": 9003, "stall": 9004, "cut": 9005, "html": 9006, "slow": 9007}
STREAM = {"model": "m1", "prompt": "hi", "max_tokens": 8, "stream": True}


@pytest.fixture
def fault(containers):
    pod_ip = random_pod_ip()
    server = containers("vllm", ["--model", "m1", "--port", 8000, "--time-to-first-token", 5,
                                 "--inter-token-latency", 5], pod_ip=pod_ip)
    server.wait_for_port(8000)
    args = ["--upstream", f"http://{pod_ip}:8000", "--burst-count", 2, "--slow-interval", 0.2]
    for name, port in PORTS.items():
        args += [f"--{name}-port", port]
    program = containers("fault", args, pod_ip=pod_ip)
    program.wait_for_port(PORTS["burst"])
    program.url = lambda name: f"http://{pod_ip}:{PORTS[name]}"
    return program


def test_a_burst_of_envoy_503s_then_the_answers_and_a_reset(fault):
    statuses = [requests.get(fault.url("burst") + "/v1/models", timeout=5).status_code for _attempt in range(3)]
    assert statuses == [503, 503, 200]
    assert requests.post(fault.url("burst") + "/fault/reset", timeout=5).text == "burst reset\n"
    answer = requests.get(fault.url("burst") + "/v1/models", timeout=5)
    assert answer.status_code == 503 and answer.text.startswith("upstream connect error")


def test_a_full_accept_queue_times_connects_out_and_a_hang_gives_no_first_byte(fault):
    host = fault.pod_ip
    with pytest.raises(requests.exceptions.ConnectTimeout):
        requests.get(fault.url("backlog") + "/v1/models", timeout=(0.5, 0.5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(fault.url("hang") + "/v1/models", timeout=(2, 0.5))
    with socket.create_connection((host, PORTS["hang"]), 2):
        pass  # the hang accepts


def test_streams_stall_or_are_cut_after_their_first_event(fault):
    with requests.post(fault.url("stall") + "/v1/completions", json=STREAM, stream=True, timeout=(2, 0.5)) as answer:
        lines = answer.iter_lines()
        assert next(lines).startswith(b"data: {")
        with pytest.raises(requests.exceptions.ConnectionError):  # urllib3's read timeout, mid-body
            list(lines)
    with requests.post(fault.url("cut") + "/v1/completions", json=STREAM, stream=True, timeout=5) as answer:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            answer.content  # noqa: B018 - reading it is the test
    assert requests.get(fault.url("stall") + "/v1/models", timeout=5).json()["data"][0]["id"] == "m1"


def test_an_html_page_and_a_slow_stream_that_is_cut_when_the_container_stops(fault):
    page = requests.get(fault.url("html") + "/v1/models", timeout=5)
    assert page.status_code == 502 and page.headers["Content-Type"].startswith("text/html") and "<html>" in page.text
    with requests.post(fault.url("slow") + "/v1/completions", json=STREAM, stream=True, timeout=5) as answer:
        lines = answer.iter_lines()
        assert next(lines).startswith(b"data: {")
        wait_until(lambda: any("slow stream started" in line for line in fault.lines), 5, "the slow stream's log line")
        fault.process.terminate()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            list(lines)
