"""The sandbox's API server as real kubectl (1.30 and 1.33) sees it: the seed's commands, apply/delete, logs,
the API server proxy and `auth can-i`."""

from __future__ import annotations

import datetime
import os
import subprocess

import pytest
from aiohttp import web
from llmd_sandbox.resources import find_resource

from apiserver_harness import (READONLY_NAMESPACE, ApiServer, namespace, running_pod,
                               start_backend, write_cri_log)

NS = "llm-d"
TIMEOUT = 30
VERSIONS = ["1.30", "1.33"]
GATEWAY_SERVICE = "infra-sim-inference-gateway"
METRICS = b"# TYPE llm_d_epp_disagg_decision_total counter\nllm_d_epp_disagg_decision_total 3\n"


@pytest.fixture
def cluster(apiserver: ApiServer) -> ApiServer:
    """A namespace shaped like the seed's: EPP and gateway services, a Gateway, decode and prefill pods."""
    async def metrics(_request):
        return web.Response(body=METRICS, content_type="text/plain")

    backend = web.Application()
    backend.router.add_get("/metrics", metrics)
    metrics_port = start_backend(apiserver, backend)
    store = apiserver.store
    objects = [
        namespace(NS), namespace(READONLY_NAMESPACE),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gaie-sim-epp", "namespace": NS},
         "spec": {"selector": {"app": "epp"}, "ports": [{"name": "grpc", "port": 9002},
                                                        {"name": "metrics", "port": 9090, "targetPort": metrics_port}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": GATEWAY_SERVICE, "namespace": NS},
         "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": GATEWAY_SERVICE, "namespace": NS}, "spec": {"gatewayClassName": "kgateway"}},
        running_pod("gaie-sim-epp-6d9f-abcde", NS, labels={"app": "epp"}, containers={"epp": metrics_port}),
        running_pod("ms-sim-decode-7b9-aaaaa", NS, labels={"llm-d.ai/role": "decode"}, containers={"vllm": 8200},
                    sidecars={"routing-proxy": 8000}, restarts={"vllm": 2}),
        running_pod("ms-sim-decode-7b9-bbbbb", NS, labels={"llm-d.ai/role": "decode"}, containers={"vllm": 8200},
                    sidecars={"routing-proxy": 8000}),
        running_pod("ms-sim-prefill-5c4-ccccc", NS, labels={"llm-d.ai/role": "prefill"}),
    ]
    for obj in objects:
        apiserver.run(store.create, obj)
    services, gateways = find_resource("", "v1", "services"), find_resource("gateway.networking.k8s.io", "v1",
                                                                            "gateways")
    apiserver.run(store.update_status, services, NS, GATEWAY_SERVICE, {"loadBalancer": {"ingress": [{"ip": "127.0.0.7"}]}})
    apiserver.run(store.update_status, gateways, NS, GATEWAY_SERVICE, {
        "addresses": [{"type": "IPAddress", "value": "127.0.0.7"}],
        "conditions": [{"type": "Programmed", "status": "True"}]})
    return apiserver


def kubectl(server: ApiServer, version: str, *args: str, role: str = "admin", check: bool = True) -> str:
    result = subprocess.run(server.kubectl(version, *args, role=role), check=False, capture_output=True, text=True,
                            timeout=TIMEOUT)
    if check:
        assert result.returncode == 0, result.stderr
    return result.stdout if check else result.stdout + result.stderr


def shell(server: ApiServer, version: str, script: str) -> str:
    """Runs a seed command line with `kubectl` meaning this kubectl version against this server."""
    kubectl_cmd = " ".join(server.kubectl(version))
    result = subprocess.run(["bash", "-o", "pipefail", "-c", script], check=False, capture_output=True, text=True, timeout=TIMEOUT,
                            env=dict(os.environ, KUBECTL=kubectl_cmd))
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_seed_commands(cluster, version):
    found = shell(cluster, version, f"""$KUBECTL get svc -n {NS} -o yaml | yq '.items[] | select(.metadata.name | \
test(".*-inference-gateway(-.*)?$")).metadata.name' | head -n1""")
    assert found.strip().strip('"') == GATEWAY_SERVICE  # Debian's yq (the jq wrapper) prints JSON strings
    endpoint = kubectl(cluster, version, "get", "gateway", "--no-headers", "-n", NS,
                       "-o", "jsonpath={.items[].status.addresses[0].value}")
    assert endpoint == "127.0.0.7"
    decode = kubectl(cluster, version, "get", "pods", "--no-headers", "-n", NS, "-l", "llm-d.ai/role=decode",
                     "-o", "custom-columns=:metadata.name")
    assert decode.split() == ["ms-sim-decode-7b9-aaaaa", "ms-sim-decode-7b9-bbbbb"]


@pytest.mark.parametrize("version", VERSIONS)
def test_get_prints_the_real_columns(cluster, version):
    services = kubectl(cluster, version, "get", "services", "-n", NS).splitlines()
    assert services[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    gateway_row = next(line.split() for line in services if line.startswith(GATEWAY_SERVICE))
    assert gateway_row[1] == "LoadBalancer" and gateway_row[2].startswith("10.96.")
    assert gateway_row[3] == "127.0.0.7" and gateway_row[4].startswith("80:") and gateway_row[4].endswith("/TCP")
    epp_row = next(line.split() for line in services if line.startswith("gaie-sim-epp"))
    assert epp_row[1:5:2] == ["ClusterIP", "<none>"] and epp_row[4] == "9002/TCP,9090/TCP"
    pods = kubectl(cluster, version, "get", "pods", "-n", NS, "-l", "llm-d.ai/role=decode").splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1].split()[:4] == ["ms-sim-decode-7b9-aaaaa", "2/2", "Running", "2"]
    gateways = kubectl(cluster, version, "get", "gateway", "-n", NS).splitlines()
    assert gateways[0].split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    assert gateways[1].split()[:4] == [GATEWAY_SERVICE, "kgateway", "127.0.0.7", "True"]


@pytest.mark.parametrize("version", VERSIONS)
def test_apply_and_delete(cluster, version, tmp_path):
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(f"""
apiVersion: v1
kind: Service
metadata: {{name: extra, namespace: {NS}, labels: {{app: extra}}}}
spec: {{ports: [{{name: http, port: 8000}}], selector: {{app: extra}}}}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {{name: pool, namespace: {NS}}}
spec: {{targetPorts: [{{number: 8000}}], selector: {{matchLabels: {{llm-d.ai/role: decode}}}}}}
---
apiVersion: route.openshift.io/v1
kind: Route
metadata: {{name: route, namespace: {NS}}}
spec: {{host: llm-d.apps.example, to: {{kind: Service, name: extra}}, tls: {{termination: edge}}}}
""")
    assert "service/extra created" in kubectl(cluster, version, "apply", "-f", str(manifest))
    assert "service/extra unchanged" in kubectl(cluster, version, "apply", "-f", str(manifest))
    manifest.write_text(manifest.read_text().replace("port: 8000}]", "port: 8001}]"))
    assert "service/extra configured" in kubectl(cluster, version, "apply", "-f", str(manifest))
    ports = kubectl(cluster, version, "get", "svc", "extra", "-n", NS, "-o", "jsonpath={.spec.ports[*].port}")
    assert ports == "8001"
    assert "serverside-applied" in kubectl(cluster, version, "apply", "--server-side", "-f", str(manifest))
    assert kubectl(cluster, version, "get", "inferencepool", "-n", NS, "-o", "name") == \
        "inferencepool.inference.networking.k8s.io/pool\n"
    assert "route.route.openshift.io/route" in kubectl(cluster, version, "get", "routes", "-n", NS, "-o", "name")
    deleted = kubectl(cluster, version, "delete", "-f", str(manifest))
    assert 'service "extra" deleted' in deleted and 'route.route.openshift.io "route" deleted' in deleted
    missing = kubectl(cluster, version, "get", "svc", "extra", "-n", NS, check=False)
    assert 'Error from server (NotFound): services "extra" not found' in missing


@pytest.mark.parametrize("version", VERSIONS)
def test_logs(cluster, version):
    pod = cluster.run(cluster.store.get, find_resource("", "v1", "pods"), NS, "ms-sim-decode-7b9-aaaaa")
    start = datetime.datetime(2026, 11, 27, 3, 0, 0)
    lines = [((start + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.") + "123456789Z",
              f"INFO [loggers.py:122] Engine 000: Avg prompt throughput: {i}.0 tokens/s") for i in range(8)]
    write_cri_log(cluster, pod, "vllm", 2, lines)
    write_cri_log(cluster, pod, "vllm", 1, [("2026-11-27T02:00:00.000000001Z", "torch.OutOfMemoryError: CUDA")])
    out = kubectl(cluster, version, "logs", "-n", NS, "ms-sim-decode-7b9-aaaaa", "-c", "vllm", "--tail", "5",
                  "--timestamps")
    assert out.splitlines() == [f"{ts} {msg}" for ts, msg in lines[-5:]]
    previous = kubectl(cluster, version, "logs", "-n", NS, "ms-sim-decode-7b9-aaaaa", "-c", "vllm", "--previous")
    assert previous == "torch.OutOfMemoryError: CUDA\n"
    error = kubectl(cluster, version, "logs", "-n", NS, "ms-sim-decode-7b9-aaaaa", "-c", "nope", check=False)
    assert "container nope is not valid for pod ms-sim-decode-7b9-aaaaa" in error


@pytest.mark.parametrize("version", VERSIONS)
def test_raw_proxy_and_auth_can_i(cluster, version):
    metrics = kubectl(cluster, version, "get", "--raw", f"/api/v1/namespaces/{NS}/services/gaie-sim-epp:9090/proxy/metrics")
    assert metrics.encode() == METRICS
    assert kubectl(cluster, version, "auth", "can-i", "create", "pods/portforward", "-n", NS) == "yes\n"
    ro = READONLY_NAMESPACE
    assert kubectl(cluster, version, "auth", "can-i", "get", "pods", "--subresource=log", "-n", ro,
                   role="readonly") == "yes\n"
    denied = kubectl(cluster, version, "auth", "can-i", "create", "pods/portforward", "-n", ro, role="readonly",
                     check=False)
    assert denied.startswith("no")
    forbidden = kubectl(cluster, version, "get", "pods", "-n", NS, role="readonly", check=False)
    assert ('Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:llmd-sandbox:readonly" '
            f'cannot list resource "pods" in API group "" in the namespace "{NS}"') in forbidden
