"""Port-forward as real kubectl speaks it: SPDY/3.1 after a POST upgrade (1.30, and the fallback of newer
ones) or SPDY tunnelled in a WebSocket (1.31+)."""

import contextlib
import hashlib
import os
import queue
import re
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from fake_apiserver import ECHO_PORT, HTTP_PORT, FakeApiServer, pattern_bytes

KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"
TUNNEL = "SPDY/3.1+portforward.k8s.io"
TIMEOUT = 20  # seconds, for any single wait in these tests

# What each kubectl speaks by default: 1.30 has the WebSocket tunnel only behind an alpha gate.
TRANSPORTS = {30: ("POST", "portforward.k8s.io"), 31: ("GET", TUNNEL), 33: ("GET", TUNNEL)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with FakeApiServer(tmp_path_factory.mktemp("fake-apiserver")) as server:
        yield server


@contextlib.contextmanager
def kubectl_port_forward(cluster: FakeApiServer, workdir: Path, minor: int, target: str, ports: str):
    """Run `kubectl port-forward` until the block ends; yields (local port, stderr file)."""
    binary = KUBECTL.format(minor=minor)
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} is not installed")
    stderr = workdir / f"kubectl-1.{minor}.stderr"
    command = [
        binary,
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--cache-dir",
        str(workdir / "kube-cache"),
        "port-forward",
        "--address",
        "127.0.0.1",
        target,
        ports,
    ]
    with stderr.open("w") as stderr_file:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr_file, text=True, env={**os.environ, "HOME": str(workdir)}
        )
    lines: queue.Queue = queue.Queue()
    drain = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] + [lines.put(None)])
    drain.start()
    try:
        while True:
            try:
                line = lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"kubectl printed no 'Forwarding from' line in {TIMEOUT}s: {stderr.read_text()}")
            if line is None:
                pytest.fail(f"kubectl exited with {process.wait()}: {stderr.read_text()}")
            if match := re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+", line):
                break
        yield int(match.group(1)), stderr
    finally:
        process.terminate()
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=TIMEOUT)
        drain.join(timeout=TIMEOUT)
        process.stdout.close()


def assert_transport(cluster: FakeApiServer, since: int, minor: int) -> None:
    """The one portforward connection this kubectl made used its version's transport, and was upgraded."""
    records = cluster.portforwards[since:]
    assert cluster.wait_for(lambda: all(r["status"] is not None for r in records))  # session ended
    assert [(r["method"], r["protocol"], r["status"]) for r in records] == [(*TRANSPORTS[minor], 101)]


@pytest.mark.parametrize("minor", sorted(TRANSPORTS))
def test_pod_forward_carries_concurrent_and_large_http(cluster, tmp_path, minor):
    since = len(cluster.portforwards)
    with kubectl_port_forward(cluster, tmp_path, minor, "pod/web-0", f"0:{HTTP_PORT}") as (port, _stderr):
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/hello", timeout=TIMEOUT).text == "hello from web-0\n"

        # Each request on its own local connection: kubectl opens an error+data stream pair for each.
        def fetch(size: int) -> bytes:
            return requests.get(f"{base}/bytes/{size}", headers={"Connection": "close"}, timeout=TIMEOUT).content

        sizes = [1000 * n + 7 for n in range(1, 25)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            bodies = list(pool.map(fetch, sizes))
        assert [len(b) for b in bodies] == sizes
        assert all(body == pattern_bytes(size) for body, size in zip(bodies, sizes))

        upload = os.urandom(4 * 1024 * 1024)  # 4 MiB up, the same 4 MiB back
        response = requests.post(f"{base}/echo", data=upload, timeout=TIMEOUT)
        assert response.headers["X-Body-Sha256"] == hashlib.sha256(upload).hexdigest()
        assert hashlib.sha256(response.content).digest() == hashlib.sha256(upload).digest()

        download = requests.get(f"{base}/bytes/{4 * 1024 * 1024}", timeout=TIMEOUT).content
        assert download == pattern_bytes(4 * 1024 * 1024)
    assert_transport(cluster, since, minor)


@pytest.mark.parametrize("minor", sorted(TRANSPORTS))
def test_service_forward_reaches_the_selected_pod(cluster, tmp_path, minor):
    since, calls = len(cluster.portforwards), len(cluster.requests)
    with kubectl_port_forward(cluster, tmp_path, minor, "service/web", "0:80") as (port, _stderr):
        assert requests.get(f"http://127.0.0.1:{port}/hello", timeout=TIMEOUT).text == "hello from web-0\n"
    # kubectl read the Service, listed pods by its selector and mapped port 80 to the named target port.
    assert ("GET", "/api/v1/namespaces/default/services/web") in cluster.requests[calls:]
    assert ("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb") in cluster.requests[calls:]
    assert_transport(cluster, since, minor)


@pytest.mark.parametrize("minor", [30, 33])
def test_half_close_reaches_the_backend_and_its_close_reaches_us(cluster, tmp_path, minor):
    with kubectl_port_forward(cluster, tmp_path, minor, "pod/web-0", f"0:{ECHO_PORT}") as (port, _stderr):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
            payload = os.urandom(300 * 1024)
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)  # DATA+FIN on the stream; the echo server sees EOF and closes
            echoed = bytearray()
            while chunk := conn.recv(65536):  # ends at our DATA+FIN after the backend closed
                echoed += chunk
        assert bytes(echoed) == payload


def test_newer_kubectl_falls_back_to_spdy_upgrade(cluster, tmp_path):
    since = len(cluster.portforwards)
    cluster.refuse_websocket_portforward = True
    try:
        with kubectl_port_forward(cluster, tmp_path, 33, "pod/web-0", f"0:{HTTP_PORT}") as (port, _stderr):
            assert requests.get(f"http://127.0.0.1:{port}/hello", timeout=TIMEOUT).text == "hello from web-0\n"
    finally:
        cluster.refuse_websocket_portforward = False
    records = cluster.portforwards[since:]
    assert cluster.wait_for(lambda: all(r["status"] is not None for r in records))
    assert [(r["method"], r["status"]) for r in records] == [("GET", 403), ("POST", 101)]


@pytest.mark.parametrize("minor", [30, 33])
def test_refused_pod_port_is_reported_by_kubectl(cluster, tmp_path, minor):
    with kubectl_port_forward(cluster, tmp_path, minor, "pod/web-0", "0:8999") as (port, stderr):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/hello", timeout=TIMEOUT)
        assert cluster.wait_for(lambda: "connection refused" in stderr.read_text(), timeout=TIMEOUT)
    assert "error forwarding port 8999 to pod web-0" in stderr.read_text()
