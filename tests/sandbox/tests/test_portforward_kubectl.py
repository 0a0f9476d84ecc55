"""`kubectl port-forward` 1.30 .. 1.33 through the real kube-apiserver to the node agent's kubelet API.

Transports, as kubectl -v=6 reports them: 1.30 POSTs an `Upgrade: SPDY/3.1` (its WebSocket tunnel is alpha,
KUBECTL_PORT_FORWARD_WEBSOCKETS=true); 1.31+ GET a WebSocket carrying `SPDY/3.1+portforward.k8s.io`, which the
API server translates into SPDY to the kubelet, and fall back to the SPDY POST when the upgrade fails (here:
RBAC allows `create` on pods/portforward but not `get`, which the WebSocket GET needs). Both end in the
kubelet's SPDY.
"""

import hashlib
import os
import re
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cluster_harness import (ECHO_NAMESPACE, ECHO_PORT, HTTP_PORT, KUBECTL_MINORS, REFUSED_PORT, TIMEOUT, kubectl,
                             pattern, port_forward, wait_until)

DEFAULT_VERB = {30: "POST", 31: "GET", 32: "GET", 33: "GET"}
CREATE_ONLY = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: pf-create-only, namespace: {ECHO_NAMESPACE}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pf-create-only, namespace: {ECHO_NAMESPACE}}}
rules:
- {{apiGroups: [""], resources: [pods], verbs: [get, list]}}
- {{apiGroups: [""], resources: [pods/portforward], verbs: [create]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: pf-create-only, namespace: {ECHO_NAMESPACE}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pf-create-only}}
subjects: [{{kind: ServiceAccount, name: pf-create-only, namespace: {ECHO_NAMESPACE}}}]
"""


@pytest.fixture(scope="module")
def echo(echo_sandbox):
    return echo_sandbox


def upgrades(stderr_text: str) -> list[tuple[str, str]]:
    """(verb, status) of each portforward request in kubectl -v=6 output, both klog formats (1.30/1.31:
    `GET URL 101 Switching Protocols in 7 milliseconds`; 1.32+: `"Response" verb="GET" url="URL" status="101 ..."`);
    the status is "" when the request got no upgrade."""
    found = []
    for line in stderr_text.splitlines():
        if match := re.search(r'\b(GET|POST)"? (?:url=")?https://\S+/portforward"?(?: status=")? ?(\d{3})?', line):
            found.append((match.group(1), match.group(2) or ""))
    return found


def transport_env(websockets: str | None) -> dict:
    return {} if websockets is None else {"KUBECTL_PORT_FORWARD_WEBSOCKETS": websockets}


@pytest.mark.parametrize("minor", KUBECTL_MINORS)
def test_pod_forward_of_two_ports_carries_concurrent_and_large_transfers(echo, background, minor):
    pod = echo.pod()
    with port_forward(background, echo.sandbox, f"pod/{pod}", f"0:{HTTP_PORT} 0:{ECHO_PORT}", minor=minor,
                      extra_args=["-v=6"]) as ((http, raw), stderr, _process):
        base = f"http://127.0.0.1:{http}"
        assert requests.get(f"{base}/hello", timeout=TIMEOUT).text == f"hello from {pod}\n"

        def fetch(size: int) -> bytes:  # each on its own local connection: its own error+data stream pair
            return requests.get(f"{base}/bytes/{size}", headers={"Connection": "close"}, timeout=TIMEOUT).content

        sizes = [1000 * n + 7 for n in range(1, 25)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            bodies = list(pool.map(fetch, sizes))
        assert [len(b) for b in bodies] == sizes
        assert all(body == pattern(size) for body, size in zip(bodies, sizes))

        upload = os.urandom(4 * 1024 * 1024)  # 4 MiB up, the same 4 MiB back
        response = requests.post(f"{base}/echo", data=upload, timeout=TIMEOUT)
        assert response.headers["X-Body-Sha256"] == hashlib.sha256(upload).hexdigest()
        assert hashlib.sha256(response.content).digest() == hashlib.sha256(upload).digest()
        assert requests.get(f"{base}/bytes/{4 * 1024 * 1024}", timeout=TIMEOUT).content == pattern(4 * 1024 * 1024)

        with socket.create_connection(("127.0.0.1", raw), timeout=TIMEOUT) as conn:  # the second port
            conn.sendall(b"ping on the second port")
            assert conn.recv(100) == b"ping on the second port"
    # One upgrade for the whole session, in this kubectl's own transport.
    assert upgrades(stderr.read_text()) == [(DEFAULT_VERB[minor], "101")]


@pytest.mark.parametrize("minor, websockets, verb", [(30, "true", "GET"), (31, "false", "POST"), (33, "false", "POST")])
def test_the_other_transport_works_too(echo, background, minor, websockets, verb):
    pod = echo.pod()
    with port_forward(background, echo.sandbox, f"pod/{pod}", f"0:{HTTP_PORT}", minor=minor,
                      env=transport_env(websockets), extra_args=["-v=6"]) as ((http,), stderr, _process):
        base = f"http://127.0.0.1:{http}"
        assert requests.get(f"{base}/hello", timeout=TIMEOUT).text == f"hello from {pod}\n"
        assert requests.get(f"{base}/bytes/1048576", timeout=TIMEOUT).content == pattern(1048576)
    assert upgrades(stderr.read_text()) == [(verb, "101")]


@pytest.fixture(scope="module")
def create_only_token(echo):
    kubectl(echo.sandbox, "apply", "-f", "-", input=CREATE_ONLY)
    return kubectl(echo.sandbox, "create", "token", "-n", ECHO_NAMESPACE, "pf-create-only").stdout.strip()


@pytest.mark.parametrize("minor", [31, 33])
def test_websocket_refused_by_rbac_falls_back_to_spdy(echo, background, create_only_token, minor):
    pod = echo.pod()
    with port_forward(background, echo.sandbox, f"pod/{pod}", f"0:{HTTP_PORT}", minor=minor,
                      extra_args=["-v=6", f"--token={create_only_token}"]) as ((http,), stderr, _process):
        assert requests.get(f"http://127.0.0.1:{http}/hello", timeout=TIMEOUT).text == f"hello from {pod}\n"
    text = stderr.read_text()
    # The WebSocket GET is refused (403), then the POST is upgraded.
    assert upgrades(text) == [("GET", ""), ("POST", "101")]
    assert "fallback to secondary dialer" in text
    # 1.31 logs only the handshake's status; 1.33 the API server's reason
    assert {31: "websocket: bad handshake (403 Forbidden)",
            33: f'pods "{pod}" is forbidden: User "system:serviceaccount:{ECHO_NAMESPACE}:pf-create-only" '
                'cannot get resource "pods/portforward"'}[minor] in text


@pytest.mark.parametrize("minor", KUBECTL_MINORS)
def test_service_forward_maps_service_ports_to_the_pods_target_ports(echo, background, minor):
    pod = echo.pod()
    with port_forward(background, echo.sandbox, "service/echo", f"0:80 0:{ECHO_PORT}", minor=minor) as (
            (http, raw), _stderr, process):
        assert requests.get(f"http://127.0.0.1:{http}/hello", timeout=TIMEOUT).text == f"hello from {pod}\n"
        with socket.create_connection(("127.0.0.1", raw), timeout=TIMEOUT) as conn:
            conn.sendall(b"through the service")
            assert conn.recv(100) == b"through the service"
    # kubectl resolved port 80 to the targetPort named `http` of the pod it picked
    assert process.args[-2:] == ["0:80", f"0:{ECHO_PORT}"]


@pytest.mark.parametrize("minor, websockets", [(30, None), (33, None), (33, "false")])
def test_half_close_reaches_the_backend_and_its_close_reaches_us(echo, background, minor, websockets):
    with port_forward(background, echo.sandbox, f"pod/{echo.pod()}", f"0:{ECHO_PORT}", minor=minor,
                      env=transport_env(websockets)) as ((port,), _stderr, _process):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
            payload = os.urandom(300 * 1024)
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)  # DATA+FIN on the stream; the echo server sees EOF and closes
            echoed = bytearray()
            while chunk := conn.recv(65536):  # ends at the FIN kubectl gets once the backend closed
                echoed += chunk
        assert bytes(echoed) == payload


@pytest.mark.parametrize("minor", [30, 33])
def test_a_port_nobody_listens_on_is_reported_and_ends_kubectl(echo, background, minor):
    pod = echo.pod()
    uid = echo.state["pods"][f"{ECHO_NAMESPACE}/{pod}"]["uid"]
    with port_forward(background, echo.sandbox, f"pod/{pod}", f"0:{REFUSED_PORT}", minor=minor) as (
            (port,), stderr, process):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/hello", timeout=TIMEOUT)
        # The kubelet writes the error on the error stream; client-go then closes the whole connection.
        assert process.wait(TIMEOUT) == 1
    text = stderr.read_text()
    assert (f"error forwarding port {REFUSED_PORT} to pod {pod}, uid {uid}: "
            f"failed to connect to localhost:{REFUSED_PORT} inside namespace") in text
    assert "connection refused" in text and "error: lost connection to pod" in text


@pytest.mark.parametrize("minor", [30, 33])
def test_a_pod_not_scheduled_is_refused_by_kubectl_itself(echo, minor):
    # kubectl reads the pod first and refuses a Pending one; the API server's own answer (400, no host
    # assigned) is in test_portforward_python_client.py.
    result = subprocess.run(
        [f"/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}", "--kubeconfig", str(echo.sandbox.kubeconfig),
         "--cache-dir", str(echo.sandbox.dir / "kube-cache"), "port-forward", "-n", ECHO_NAMESPACE, "pod/unscheduled",
         f"0:{HTTP_PORT}"], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: unable to forward port because pod is not running. Current status=Pending"


def test_forward_ends_when_its_pod_is_deleted(echo, background):
    """kubectl forwards to one pod: once it is gone, the next connection fails and kubectl ends."""
    kubectl(echo.sandbox, "run", "-n", ECHO_NAMESPACE, "doomed", "--image=localhost/llmd-sandbox-echo:test",
            "--restart=Never", "--", "--http-port", str(HTTP_PORT))
    kubectl(echo.sandbox, "wait", "-n", ECHO_NAMESPACE, "--for=condition=Ready", "pod/doomed", "--timeout=30s")
    with port_forward(background, echo.sandbox, "pod/doomed", f"0:{HTTP_PORT}") as ((port,), stderr, process):
        assert requests.get(f"http://127.0.0.1:{port}/hello", timeout=TIMEOUT).text == "hello from doomed\n"
        kubectl(echo.sandbox, "delete", "pod", "-n", ECHO_NAMESPACE, "doomed", "--wait=true")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/hello", timeout=TIMEOUT)
        wait_until(lambda: process.poll() is not None, what="kubectl port-forward ends with its pod")
    assert "lost connection to pod" in stderr.read_text()
