"""Port-forward as the official kubernetes Python client speaks it (WebSocket, v4.channel.k8s.io)."""

import hashlib
import os
import socket
import threading

import pytest
import websocket
from fake_apiserver import ECHO_PORT, HTTP_PORT, NAMESPACE, POD, TOKEN, FakeApiServer
from kubernetes import client, config
from kubernetes.stream import portforward


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with FakeApiServer(tmp_path_factory.mktemp("fake-apiserver")) as server:
        yield server


@pytest.fixture(scope="module")
def core(cluster):
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


@pytest.fixture
def forward(core):
    """Open a port-forward to the pod; every one opened is closed at the end of the test."""
    opened = []

    def open_forward(ports: str):
        opened.append(portforward(core.connect_get_namespaced_pod_portforward, POD, NAMESPACE, ports=ports))
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
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {POD}\r\nConnection: close\r\n\r\n".encode())
    return read_to_eof(sock)


def test_http_request_through_the_forward_uses_v4(cluster, forward):
    before = len(cluster.portforwards)
    sock = forward(str(HTTP_PORT)).socket(HTTP_PORT)
    sock.settimeout(10)

    response = http_get(sock, "/hello")

    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b"\r\n\r\nhello from web-0\n")
    # The client offers v5 and v4; the kubelet knows only v4 for port-forward, and so do we.
    [record] = cluster.portforwards[before:]
    assert record["offered"] == "v5.channel.k8s.io,v4.channel.k8s.io"
    assert cluster.wait_for(lambda: record["status"] is not None)
    assert (record["method"], record["status"], record["protocol"]) == ("GET", 101, "v4.channel.k8s.io")


def test_one_mebibyte_echoed_intact(forward):
    sock = forward(str(ECHO_PORT)).socket(ECHO_PORT)
    sock.settimeout(20)
    payload = os.urandom(1024 * 1024)
    sender = threading.Thread(target=sock.sendall, args=(payload,))
    sender.start()

    echoed = read_exactly(sock, len(payload))

    sender.join(timeout=20)
    assert len(echoed) == len(payload)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()


def test_large_download_intact(forward):
    sock = forward(str(HTTP_PORT)).socket(HTTP_PORT)
    sock.settimeout(20)

    response = http_get(sock, "/bytes/3000000")

    head, _sep, body = response.partition(b"\r\n\r\n")
    assert b"Content-Length: 3000000" in head
    assert len(body) == 3000000 and body[:32] == hashlib.sha256(b"3000000").digest()


def test_two_ports_in_one_forward(forward):
    pf = forward(f"{HTTP_PORT},{ECHO_PORT}")
    echo, web = pf.socket(ECHO_PORT), pf.socket(HTTP_PORT)
    echo.settimeout(10)
    web.settimeout(10)

    echo.sendall(b"ping over channel 2")
    assert read_exactly(echo, 19) == b"ping over channel 2"
    # v4 cannot tell the client that one port's backend closed (the socket stays open for the other
    # port), so read the response by its length, as an HTTP client would, rather than to EOF.
    web.sendall(f"GET /hello HTTP/1.1\r\nHost: {POD}\r\n\r\n".encode())
    response = b""
    while b"hello from web-0\n" not in response:
        chunk = web.recv(65536)
        assert chunk, f"connection closed after {response!r}"
        response += chunk
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")


def test_refused_port_is_reported_on_the_error_channel(cluster, forward):
    refused = 8999
    pf = forward(str(refused))
    sock = pf.socket(refused)
    sock.settimeout(10)

    assert sock.recv(1) == b""  # the client closes the port's socket when its error channel speaks
    error = pf.error(refused)
    assert error.startswith(f"error forwarding port {refused} to pod {POD}, uid ")
    assert "connect: connection refused" in error


def websocket_to_pod(cluster, query: str, subprotocols: list[str]) -> websocket.WebSocket:
    url = cluster.url.replace("https://", "wss://") + f"/api/v1/namespaces/{NAMESPACE}/pods/{POD}/portforward{query}"
    return websocket.create_connection(
        url,
        header=[f"Authorization: Bearer {TOKEN}"],
        subprotocols=subprotocols,
        sslopt={"ca_certs": str(cluster.ca_file)},
        timeout=10,
    )


def test_v5_only_client_gets_v5_and_its_close_signal_half_closes(cluster):
    ws = websocket_to_pod(cluster, f"?ports={ECHO_PORT}", ["v5.channel.k8s.io"])
    try:
        assert ws.subprotocol == "v5.channel.k8s.io"
        port_bytes = ECHO_PORT.to_bytes(2, "little")
        assert [ws.recv_data()[1], ws.recv_data()[1]] == [b"\x00" + port_bytes, b"\x01" + port_bytes]

        ws.send_binary(b"\x00" + b"first ")
        ws.send_binary(b"\x00" + b"second")
        ws.send_binary(bytes([255, 0]))  # no more data from us on channel 0: the echo server sees EOF

        received = b""
        while True:  # the echo server closes after our EOF, the port is done, the server closes the socket
            opcode, data = ws.recv_data(control_frame=False)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            assert data[0] == 0, f"unexpected message on channel {data[0]}: {data[1:]!r}"
            received += data[1:]
        assert received == b"first second"
    finally:
        ws.shutdown()  # close() does nothing once the server's close frame has arrived


def test_portforward_without_ports_is_a_bad_request(cluster):
    with pytest.raises(websocket.WebSocketBadStatusException) as failure:
        websocket_to_pod(cluster, "", ["v4.channel.k8s.io"])
    assert failure.value.status_code == 400
