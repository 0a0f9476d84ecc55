# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the relay picks pods and ports (as kubectl does), reads the v4 channels, and builds kubectl's argv."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import kubernetes
import pytest
import websocket

from ansible_collections.llmd.verify.plugins.module_utils import _port_forward_relay as relay
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError


def _pod(name, ready=True, phase="Running", created="2026-01-01T00:00:00Z", deleting=False, ports=()):
    pod = {"metadata": {"name": name, "creationTimestamp": created},
           "spec": {"containers": [{"name": "c", "ports": [{"name": n, "containerPort": p} for n, p in ports]}]},
           "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    return pod


@pytest.mark.parametrize("pod, ready", [
    (_pod("a"), True), (_pod("a", ready=False), False), (_pod("a", phase="Pending"), False),
    (_pod("a", deleting=True), False), ({"metadata": {"name": "a"}, "status": {"phase": "Running"}}, False)])
def test_pod_is_ready(pod, ready):
    assert relay.pod_is_ready(pod) is ready


def test_pick_pod_takes_the_oldest_ready_one_not_excluded():
    pods = [_pod("new", created="2026-01-02T00:00:00Z"), _pod("old-unready", ready=False, created="2025-01-01T00:00:00Z"),
            _pod("old", created="2026-01-01T00:00:00Z")]
    assert relay.pick_pod(pods)["metadata"]["name"] == "old"
    assert relay.pick_pod(pods, exclude={"old"})["metadata"]["name"] == "new"
    assert relay.pick_pod(pods, exclude={"old", "new"}) is None


SERVICE = {"metadata": {"name": "gw"}, "spec": {"ports": [
    {"name": "http", "port": 80, "targetPort": "web"},
    {"name": "status", "port": 15021, "targetPort": 15021},
    {"port": 9090},
]}}


@pytest.mark.parametrize("port, target", [(80, "web"), ("80", "web"), ("http", "web"), ("status", 15021), (9090, 9090)])
def test_service_port_maps_to_target_port(port, target):
    assert relay.service_target_port(SERVICE, port) == target


def test_unknown_service_port_lists_the_ports():
    with pytest.raises(LlmdError, match=r"no port 81 \(it has: 80/http, 15021/status, 9090\)"):
        relay.service_target_port(SERVICE, 81)


def test_container_port_by_number_or_name_including_native_sidecars():
    pod = _pod("p", ports=[("http", 8200)])
    pod["spec"]["initContainers"] = [{"name": "routing-proxy", "restartPolicy": "Always",
                                      "ports": [{"name": "proxy", "containerPort": 8000}]}]
    assert relay.container_port(pod, 8080) == 8080
    assert relay.container_port(pod, "8080") == 8080
    assert relay.container_port(pod, "http") == 8200
    assert relay.container_port(pod, "proxy") == 8000
    with pytest.raises(LlmdError, match="no container port named metrics"):
        relay.container_port(pod, "metrics")


def test_label_selector_is_sorted():
    assert relay.label_selector({"b": "2", "a": "1"}) == "a=1,b=2"


class _FakeWebSocket:
    """Frames as a v4 server sends them: (opcode, payload)."""

    def __init__(self, frames):
        self.frames = list(frames)
        self.sock = None
        self.connected = True

    def recv_data(self, control_frame=False):
        if not self.frames:
            raise websocket.WebSocketConnectionClosedException("closed")
        return self.frames.pop(0)

    def settimeout(self, timeout):
        pass


BINARY, CLOSE = websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_CLOSE


def test_stream_skips_the_port_numbers_then_relays_data():
    ws = _FakeWebSocket([(BINARY, b"\x00\x50\x00"), (BINARY, b"\x01\x50\x00"), (BINARY, b"\x00hello"), (CLOSE, b"")])
    stream = relay.WebSocketStream(ws, "pod")
    stream.read_preamble(1)
    assert stream.recv() == b"hello"
    assert stream.recv() is None and stream.error is None


def test_stream_port_number_may_arrive_with_data():
    stream = relay.WebSocketStream(_FakeWebSocket([(BINARY, b"\x00\x50\x00hi"), (BINARY, b"\x01\x50"), (BINARY, b"\x01\x00")]), "p")
    assert stream.recv() == b"hi"
    assert stream.recv() == b"" and stream.recv() == b""


def test_stream_error_channel_ends_it_with_the_message():
    ws = _FakeWebSocket([(BINARY, b"\x00\x50\x00"), (BINARY, b"\x01\x50\x00"), (BINARY, b"\x01error forwarding port 80")])
    stream = relay.WebSocketStream(ws, "pod")
    stream.read_preamble(1)
    assert stream.recv() is None
    assert stream.error == "error forwarding port 80"


def test_preamble_failure_is_an_upstream_error():
    stream = relay.WebSocketStream(_FakeWebSocket([(BINARY, b"\x00\x50\x00"), (BINARY, b"\x01\x50\x00dial tcp: refused")]), "p")
    with pytest.raises(relay.UpstreamError, match="dial tcp: refused"):
        stream.read_preamble(1)


def test_kubectl_argv_has_files_and_names_only():
    params = {"kubeconfig": "~/kc", "context": "ctx", "validate_certs": False, "impersonate_user": "u",
              "impersonate_groups": ["g1", "g2"]}
    argv = relay.kubectl_argv("kubectl", params)
    assert argv[:2] == ["kubectl", "--kubeconfig"] and argv[2].endswith("/kc") and "~" not in argv[2]
    assert argv[3:] == ["--context", "ctx", "--insecure-skip-tls-verify", "--as", "u", "--as-group", "g1", "--as-group", "g2"]


@pytest.mark.parametrize("params", [{"api_key": "secret"}, {"host": "https://k", "password": "pw", "username": "u"},
                                    {"kubeconfig": {"apiVersion": "v1"}}])
def test_kubectl_refuses_credentials_it_would_need_on_its_command_line(params):
    with pytest.raises(LlmdError, match="kubeconfig file only") as caught:
        relay.kubectl_argv("kubectl", params)
    assert "secret" not in str(caught.value) and "pw" not in str(caught.value)


# ---- a handshake the API server refuses ----------------------------------------------------------------

def _forbidden_body(user, verb):
    """The API server's Status body for a refused WebSocket upgrade (kube-apiserver 1.34: get; 1.35: create)."""
    message = ('pods "gw-0" is forbidden: User "%s" cannot %s resource "pods/portforward" in API group "" '
               'in the namespace "llm-d"' % (user, verb))
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                       "reason": "Forbidden", "details": {"name": "gw-0", "kind": "pods"}, "code": 403}).encode()


def _refusing_upstream(monkeypatch, status, status_message, body):
    class RefusingWebSocket:
        def __init__(self, **_kwargs):
            pass

        def connect(self, url, **_options):
            raise websocket.WebSocketBadStatusException(
                "Handshake status %d %s -+-+- {'audit-id': 'x'} -+-+- %r" % (status, status_message, body),
                status, status_message, {"audit-id": "x"}, body)

    monkeypatch.setattr(websocket, "WebSocket", RefusingWebSocket)
    configuration = kubernetes.client.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    return relay.WebSocketUpstream(kubernetes.client.ApiClient(configuration), "llm-d", ssl_context=None)


@pytest.mark.parametrize("verb", ["get", "create"])
def test_websocket_403_is_the_collections_rbac_message_not_the_raw_handshake(monkeypatch, verb):
    upstream = _refusing_upstream(monkeypatch, 403, "Forbidden", _forbidden_body("sandbox-none", verb))
    with pytest.raises(LlmdError) as caught:
        upstream.open("gw-0", 8000)
    error = caught.value
    assert not isinstance(error, relay.UpstreamError)  # no other pod would be accepted: no retry
    assert error.msg == ('the Kubernetes credentials may not %s pods/portforward in namespace llm-d (403 Forbidden): '
                         'pods "gw-0" is forbidden: User "sandbox-none" cannot %s resource "pods/portforward" in API '
                         'group "" in the namespace "llm-d"' % (verb, verb))
    assert error.hint == "grant '%s' on 'pods/portforward' to this user (see docs/rbac.md) or use other credentials" % verb
    assert error.details == {"status": 403, "verb": verb, "resource": "pods/portforward"}
    assert "Handshake" not in str(error) and "audit-id" not in str(error)


def test_websocket_403_as_system_anonymous_says_no_credentials_arrived(monkeypatch):
    upstream = _refusing_upstream(monkeypatch, 403, "Forbidden", _forbidden_body("system:anonymous", "get"))
    with pytest.raises(LlmdError, match="no credentials reached the Kubernetes API server") as caught:
        upstream.open("gw-0", 8000)
    assert caught.value.details["anonymous"] is True


def test_websocket_401_says_the_credentials_were_rejected(monkeypatch):
    body = b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}'
    upstream = _refusing_upstream(monkeypatch, 401, "Unauthorized", body)
    with pytest.raises(LlmdError, match=r"^the Kubernetes API server at https://127.0.0.1:6443 rejected the credentials"):
        upstream.open("gw-0", 8000)


def test_websocket_403_without_a_status_body_still_names_get_on_pods_portforward(monkeypatch):
    upstream = _refusing_upstream(monkeypatch, 403, "Forbidden", b"<html>denied</html>")
    with pytest.raises(LlmdError) as caught:
        upstream.open("gw-0", 8000)
    assert caught.value.msg == "the Kubernetes credentials may not get pods/portforward in namespace llm-d (403 Forbidden): Forbidden"


def test_other_handshake_failures_stay_upstream_errors(monkeypatch):
    upstream = _refusing_upstream(monkeypatch, 400, "Bad Request", b'{"kind":"Status","message":"pod gw-0 does not have a host assigned"}')
    with pytest.raises(relay.UpstreamError, match="port-forward to pod gw-0 refused"):
        upstream.open("gw-0", 8000)


def test_a_refused_connection_is_not_retried_on_other_pods(monkeypatch):
    upstream = _refusing_upstream(monkeypatch, 403, "Forbidden", _forbidden_body("sandbox-none", "get"))
    forwarder = relay.Forwarder(None, None, upstream, reconnect=True, lifetime=60, idle_timeout=0)
    forwarder.pod, forwarder.pod_port = "gw-0", 8000
    started = time.monotonic()
    assert forwarder._open() is None  # pylint: disable=protected-access
    assert time.monotonic() - started < 1 and forwarder.reconnects == 0 and not forwarder.failed
    assert forwarder.last_error.startswith("the Kubernetes credentials may not get pods/portforward")


class _IdleUpstream:
    def take_exit(self):
        return None

    def stop(self):
        pass


def _catches_sigterm(pid):
    with open("/proc/%d/status" % pid) as status:
        caught = next(line.split()[1] for line in status if line.startswith("SigCgt:"))
    return int(caught, 16) & (1 << (signal.SIGTERM - 1))


def test_sigterm_ends_the_daemon_with_its_reason():
    # The wait is woken by the signal (set_wakeup_fd), not left to its next tick: port_forward state=absent waits
    # for the daemon to exit.
    listener = socket.create_server(("127.0.0.1", 0))
    reason_read, reason_write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the forked child
        try:
            forwarder = relay.Forwarder(listener, None, _IdleUpstream(), reconnect=True, lifetime=60, idle_timeout=0)
            forwarder.serve()
            os.write(reason_write, forwarder.end_reason.encode())
        finally:
            os._exit(0)
    os.close(reason_write)
    listener.close()
    deadline = time.monotonic() + 10
    while not _catches_sigterm(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child, signal.SIGTERM)
    _pid, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.read(reason_read, 200) == b"stopped (SIGTERM)"
    os.close(reason_read)
