"""Port-forward as the official kubernetes Python client speaks it (WebSocket, `v4.channel.k8s.io`): the real
kube-apiserver proxies the upgrade to the node agent's kubelet API as is."""

import hashlib
import os
import socket
import threading

import pytest
import websocket
from cluster_harness import ECHO_NAMESPACE, ECHO_PORT, HTTP_PORT, REFUSED_PORT, pattern
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward


@pytest.fixture(scope="module")
def echo(echo_sandbox):
    return echo_sandbox


@pytest.fixture(scope="module")
def core(echo):
    api_client = config.new_client_from_config(config_file=str(echo.sandbox.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


@pytest.fixture
def forward(core, echo):
    """Opens a port-forward to a pod (the echo pod by default); each is closed when the test ends."""
    opened = []

    def open_forward(ports: str, pod: str | None = None):
        opened.append(portforward(core.connect_get_namespaced_pod_portforward, pod or echo.pod(), ECHO_NAMESPACE,
                                  ports=ports))
        return opened[-1]

    yield open_forward
    for pf in opened:
        pf.close()
        pf.websocket.shutdown()  # the client leaves its socket open when the server closed first


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(65536, size - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def http_get(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n".encode())
    return read_to_eof(sock)


def test_http_request_through_the_forward(echo, forward):
    sock = forward(str(HTTP_PORT)).socket(HTTP_PORT)
    sock.settimeout(10)
    response = http_get(sock, "/hello")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(f"\r\n\r\nhello from {echo.pod()}\n".encode())


def test_one_mebibyte_echoed_intact(forward):
    sock = forward(str(ECHO_PORT)).socket(ECHO_PORT)
    sock.settimeout(20)
    payload = os.urandom(1024 * 1024)
    sender = threading.Thread(target=sock.sendall, args=(payload,))
    sender.start()
    echoed = read_exactly(sock, len(payload))
    sender.join(timeout=20)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()


def test_large_download_intact(forward):
    sock = forward(str(HTTP_PORT)).socket(HTTP_PORT)
    sock.settimeout(20)
    head, _sep, body = http_get(sock, "/bytes/3000000").partition(b"\r\n\r\n")
    assert b"Content-Length: 3000000" in head
    assert body == pattern(3000000)


def test_two_ports_in_one_forward(echo, forward):
    pf = forward(f"{HTTP_PORT},{ECHO_PORT}")
    echo_sock, web = pf.socket(ECHO_PORT), pf.socket(HTTP_PORT)
    echo_sock.settimeout(10)
    web.settimeout(10)
    echo_sock.sendall(b"ping over channel 2")
    assert read_exactly(echo_sock, 19) == b"ping over channel 2"
    # v4 cannot tell the client that one port's backend closed (the socket stays open for the other
    # port), so read the response by what it says, as an HTTP client would, rather than to EOF.
    web.sendall(b"GET /hello HTTP/1.1\r\nHost: pod\r\n\r\n")
    response = b""
    while f"hello from {echo.pod()}\n".encode() not in response:
        chunk = web.recv(65536)
        assert chunk, f"connection closed after {response!r}"
        response += chunk
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_port_nobody_listens_on_is_reported_on_the_error_channel(echo, forward):
    pod = echo.pod()
    pf = forward(f"{REFUSED_PORT}")
    sock = pf.socket(REFUSED_PORT)
    sock.settimeout(10)
    assert sock.recv(1) == b""  # the client closes the port's socket when its error channel speaks
    uid = echo.state["pods"][f"{ECHO_NAMESPACE}/{pod}"]["uid"]
    error = pf.error(REFUSED_PORT)
    assert error.startswith(f"error forwarding port {REFUSED_PORT} to pod {pod}, uid {uid}: "
                            f"failed to connect to localhost:{REFUSED_PORT} inside namespace")
    assert error.endswith("connect: connection refused")


def test_a_pod_not_scheduled_is_a_bad_request_before_the_upgrade(core):
    # The API server answers itself: it has no node to send the request to.
    with pytest.raises(ApiException) as failure:
        portforward(core.connect_get_namespaced_pod_portforward, "unscheduled", ECHO_NAMESPACE, ports=str(HTTP_PORT))
    assert "Handshake status 400 Bad Request" in str(failure.value)
    assert '"message":"pod unscheduled does not have a host assigned"' in str(failure.value)


def websocket_to_pod(echo, pod: str, query: str, subprotocols: list[str], token: str | None = None):
    url = echo.sandbox.api_server.replace("https://", "wss://") + \
        f"/api/v1/namespaces/{ECHO_NAMESPACE}/pods/{pod}/portforward{query}"
    return websocket.create_connection(url, header=[f"Authorization: Bearer {token or echo.sandbox.tokens['admin']}"],
                                       subprotocols=subprotocols, sslopt={"ca_certs": echo.sandbox.ca_file},
                                       timeout=10)


def test_the_port_is_announced_on_both_channels_first(echo):
    ws = websocket_to_pod(echo, echo.pod(), f"?ports={ECHO_PORT}", ["v4.channel.k8s.io"])
    try:
        assert ws.subprotocol == "v4.channel.k8s.io"
        port_bytes = ECHO_PORT.to_bytes(2, "little")
        assert [ws.recv_data()[1], ws.recv_data()[1]] == [b"\x00" + port_bytes, b"\x01" + port_bytes]
        ws.send_binary(b"\x00" + b"raw frame")
        assert ws.recv_data()[1] == b"\x00raw frame"
    finally:
        ws.shutdown()


def test_portforward_without_ports_is_a_bad_request(echo):
    with pytest.raises(websocket.WebSocketBadStatusException) as failure:
        websocket_to_pod(echo, echo.pod(), "", ["v4.channel.k8s.io"])
    assert failure.value.status_code == 400


def test_readonly_user_may_not_port_forward(echo):
    # ClusterRole `view` grants no pods/portforward: the API server refuses before any upgrade.
    with pytest.raises(websocket.WebSocketBadStatusException) as failure:
        websocket_to_pod(echo, echo.pod(), f"?ports={HTTP_PORT}", ["v4.channel.k8s.io"],
                         token=echo.sandbox.tokens["readonly"])
    assert failure.value.status_code == 403
