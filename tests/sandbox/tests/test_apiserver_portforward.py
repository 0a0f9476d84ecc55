"""Port-forward through the sandbox's API server (its routing, RBAC and pod_connect; the protocols themselves
are tested in test_portforward_*.py), with the official Python client and real kubectl."""

from __future__ import annotations

import re
import subprocess
import urllib.request

import pytest
from aiohttp import web
from kubernetes import client, config
from kubernetes.stream import portforward

from apiserver_harness import (READONLY_NAMESPACE, ApiServer, namespace, running_pod,
                               start_backend)

NS = READONLY_NAMESPACE  # the readonly user may read here, but not forward
TIMEOUT = 15


@pytest.fixture
def web_pod(apiserver: ApiServer) -> int:
    async def hello(_request):
        return web.Response(text="hello from web-0\n")

    backend = web.Application()
    backend.router.add_get("/hello", hello)
    port = start_backend(apiserver, backend)
    apiserver.run(apiserver.store.create, namespace(NS))
    apiserver.run(apiserver.store.create, running_pod("web-0", NS, containers={"web": port}))
    return port


def test_python_client_forwards_to_the_pod_ip(apiserver, web_pod):
    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        core = client.CoreV1Api(api_client)
        forward = portforward(core.connect_get_namespaced_pod_portforward, "web-0", NS, ports=str(web_pod))
        sock = forward.socket(web_pod)
        sock.settimeout(TIMEOUT)
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
        forward.close()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello from web-0\n")
    finally:
        api_client.close()


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_kubectl_port_forward(apiserver, web_pod, version):
    process = subprocess.Popen(apiserver.kubectl(version, "port-forward", "-n", NS, "pod/web-0", f"0:{web_pod}"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
        assert match, line + process.stderr.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/hello", timeout=TIMEOUT) as response:
            assert response.read() == b"hello from web-0\n"
    finally:
        process.kill()
        process.communicate(timeout=TIMEOUT)


def test_readonly_may_not_forward(apiserver, web_pod):
    result = subprocess.run(apiserver.kubectl("1.33", "port-forward", "-n", NS, "pod/web-0", f"0:{web_pod}",
                                              role="readonly"), check=False, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode != 0
    assert ('pods "web-0" is forbidden: User "system:serviceaccount:llmd-sandbox:readonly" cannot create resource '
            f'"pods/portforward" in API group "" in the namespace "{NS}"') in result.stderr
