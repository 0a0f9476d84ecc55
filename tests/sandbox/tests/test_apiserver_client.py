"""The sandbox's API server as the official kubernetes Python client sees it."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest
from aiohttp import web
from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException
from llmd_sandbox.resources import find_resource

from apiserver_harness import (READONLY_NAMESPACE, ApiServer, namespace, running_pod,
                               start_backend, write_cri_log, write_kubeconfig)

PODS = find_resource("", "v1", "pods")
NS = "llm-d"
TIMEOUT = 10

# (apiVersion, kind, a minimal object body) for every resource the sandbox serves.
EVERY_RESOURCE = [
    ("v1", "Service", {"spec": {"ports": [{"port": 80}]}}),
    ("v1", "Endpoints", {"subsets": []}),
    ("v1", "Pod", {"spec": {"containers": [{"name": "c", "image": "i"}]}}),
    ("apps/v1", "Deployment", {"spec": {"selector": {"matchLabels": {"a": "b"}}}}),
    ("apps/v1", "ReplicaSet", {"spec": {"selector": {"matchLabels": {"a": "b"}}}}),
    ("networking.k8s.io/v1", "Ingress", {"spec": {}}),
    ("gateway.networking.k8s.io/v1", "Gateway", {"spec": {"gatewayClassName": "istio"}}),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", {"spec": {}}),
    ("inference.networking.k8s.io/v1", "InferencePool", {"spec": {"targetPorts": [{"number": 8000}]}}),
    ("inference.networking.x-k8s.io/v1alpha2", "InferencePool", {"spec": {"targetPortNumber": 8000}}),
    ("route.openshift.io/v1", "Route", {"spec": {"host": "x.example"}}),
]


@pytest.fixture
def api(apiserver: ApiServer, tmp_path):
    apiserver.run(apiserver.store.create, namespace(NS))
    apiserver.run(apiserver.store.create, namespace(READONLY_NAMESPACE))
    clients = {role: config.new_client_from_config(config_file=str(apiserver.kubeconfig_for(role)))
               for role in apiserver.tokens}
    yield clients
    for api_client in clients.values():
        api_client.close()


def test_core_v1_create_list_get_delete(api):
    core = client.CoreV1Api(api["admin"])
    created = core.create_namespaced_service(NS, {"metadata": {"name": "gaie-sim-epp", "labels": {"app": "epp"}},
                                                  "spec": {"ports": [{"name": "grpc", "port": 9002},
                                                                     {"name": "metrics", "port": 9090}]}})
    assert created.spec.cluster_ip.startswith("10.96.")
    assert created.metadata.uid and int(created.metadata.resource_version) > 0
    assert [s.metadata.name for s in core.list_namespaced_service(NS).items] == ["gaie-sim-epp"]
    assert core.list_service_for_all_namespaces().items[0].metadata.namespace == NS
    assert core.read_namespaced_service("gaie-sim-epp", NS).spec.ports[1].port == 9090
    core.delete_namespaced_service("gaie-sim-epp", NS)
    with pytest.raises(ApiException) as error:
        core.read_namespaced_service("gaie-sim-epp", NS)
    assert (error.value.status, error.value.reason) == (404, "Not Found")
    assert '"NotFound"' in error.value.body and 'services \\"gaie-sim-epp\\" not found' in error.value.body


def test_errors_are_status_objects(api):
    core = client.CoreV1Api(api["admin"])
    core.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    spec = {"containers": [{"name": "c", "image": "i"}]}
    cases = [
        (lambda: core.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": spec}), 409, "AlreadyExists"),
        (lambda: core.create_namespaced_pod("nope", {"metadata": {"name": "p"}, "spec": spec}), 404, "NotFound"),
        (lambda: core.create_namespaced_pod(NS, {"metadata": {"name": "Bad_Name"}, "spec": spec}), 422, "Invalid"),
        (lambda: core.create_namespaced_pod(NS, {"metadata": {}, "spec": spec}), 422, "Invalid"),
        (lambda: core.list_namespaced_pod(NS, label_selector="a in b"), 400, "BadRequest"),
        (lambda: core.list_namespaced_pod(NS, field_selector="spec.bogus=1"), 400, "BadRequest"),
    ]
    for call, status, reason in cases:
        with pytest.raises(ApiException) as error:
            call()
        assert error.value.status == status and f'"reason":"{reason}"' in error.value.body


def test_dynamic_client_on_every_resource(api, tmp_path):
    dyn = dynamic.DynamicClient(api["admin"], cache_file=str(tmp_path / "discovery.json"))
    for api_version, kind, body in EVERY_RESOURCE:
        resource = dyn.resources.get(api_version=api_version, kind=kind)
        obj = dict(body, apiVersion=api_version, kind=kind, metadata={"name": "x", "labels": {"llm-d.ai/role": "decode"}})
        resource.create(body=obj, namespace=NS)
        listed = resource.get(namespace=NS, label_selector="llm-d.ai/role=decode")
        assert listed.kind == f"{kind}List" and [i.metadata.name for i in listed.items] == ["x"], kind
        assert resource.get(name="x", namespace=NS).metadata.name == "x"
        resource.patch(name="x", namespace=NS, body={"metadata": {"labels": {"patched": "yes"}}},
                       content_type="application/merge-patch+json")
        assert resource.get(name="x", namespace=NS).metadata.labels["patched"] == "yes"
        resource.delete(name="x", namespace=NS)
        assert resource.get(namespace=NS).items == [], kind
    # both InferencePool groups are distinct resources with their own objects
    v1 = dyn.resources.get(api_version="inference.networking.k8s.io/v1", kind="InferencePool")
    v1.create(body={"apiVersion": v1.group_version, "kind": "InferencePool", "metadata": {"name": "pool"}}, namespace=NS)
    alpha = dyn.resources.get(api_version="inference.networking.x-k8s.io/v1alpha2", kind="InferencePool")
    assert alpha.get(namespace=NS).items == [] and len(v1.get(namespace=NS).items) == 1


def test_status_subresource_and_patch_types(api, tmp_path):
    dyn = dynamic.DynamicClient(api["admin"], cache_file=str(tmp_path / "discovery.json"))
    gateways = dyn.resources.get(api_version="gateway.networking.k8s.io/v1", kind="Gateway")
    gateways.create(namespace=NS, body={"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                                        "metadata": {"name": "gw"}, "spec": {"gatewayClassName": "kgateway"}})
    status = {"addresses": [{"type": "IPAddress", "value": "127.0.0.9"}],
              "conditions": [{"type": "Programmed", "status": "True"}]}
    gateways.status.patch(name="gw", namespace=NS, body={"status": status},
                          content_type="application/merge-patch+json")
    # a spec write keeps the status; a status write keeps the spec
    gateways.patch(name="gw", namespace=NS, body={"spec": {"gatewayClassName": "istio"}, "status": {}},
                   content_type="application/merge-patch+json")
    got = gateways.get(name="gw", namespace=NS)
    assert got.status.addresses[0].value == "127.0.0.9" and got.spec.gatewayClassName == "istio"
    assert got.metadata.generation == 2
    with pytest.raises(ApiException) as error:  # custom resources take no strategic merge patch
        gateways.patch(name="gw", namespace=NS, body={"spec": {}},
                       content_type="application/strategic-merge-patch+json")
    assert error.value.status == 415
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.create(namespace=NS, body={"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                                           "spec": {"template": {"spec": {"containers": [
                                               {"name": "vllm", "image": "a"}, {"name": "side", "image": "b"}]}}}})
    deployments.patch(name="d", namespace=NS, content_type="application/strategic-merge-patch+json",
                      body={"spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": "c"}]}}}})
    deployments.patch(name="d", namespace=NS, content_type="application/json-patch+json",
                      body=[{"op": "replace", "path": "/spec/replicas", "value": 3}])
    got = deployments.get(name="d", namespace=NS)
    assert [(c.name, c.image) for c in got.spec.template.spec.containers] == [("vllm", "c"), ("side", "b")]
    assert got.spec.replicas == 3


def test_label_and_field_selectors(api, apiserver):
    for name, role, phase in [("decode-a", "decode", "Running"), ("decode-b", "decode", "Pending"),
                              ("prefill-a", "prefill", "Running"), ("plain", None, "Running")]:
        pod = running_pod(name, NS, labels={"llm-d.ai/role": role} if role else {})
        pod["status"]["phase"] = phase
        apiserver.run(apiserver.store.create, pod)
    core = client.CoreV1Api(api["admin"])

    def names(**kwargs):
        return [p.metadata.name for p in core.list_namespaced_pod(NS, **kwargs).items]

    assert names(label_selector="llm-d.ai/role=decode") == ["decode-a", "decode-b"]
    assert names(label_selector="llm-d.ai/role==decode") == ["decode-a", "decode-b"]
    assert names(label_selector="llm-d.ai/role!=decode") == ["plain", "prefill-a"]
    assert names(label_selector="llm-d.ai/role in (decode, prefill)") == ["decode-a", "decode-b", "prefill-a"]
    assert names(label_selector="llm-d.ai/role notin (decode)") == ["plain", "prefill-a"]
    assert names(label_selector="llm-d.ai/role") == ["decode-a", "decode-b", "prefill-a"]
    assert names(label_selector="!llm-d.ai/role") == ["plain"]
    assert names(label_selector="llm-d.ai/role=decode", field_selector="status.phase=Running") == ["decode-a"]
    assert names(field_selector="metadata.name!=plain,status.phase==Running") == ["decode-a", "prefill-a"]
    assert names(field_selector="spec.nodeName=sandbox-control-plane", label_selector="llm-d.ai/role=prefill") \
        == ["prefill-a"]
    first = core.list_namespaced_pod(NS, limit=3)
    rest = core.list_namespaced_pod(NS, limit=3, _continue=first.metadata._continue)
    assert len(first.items) == 3 and first.metadata._continue and len(rest.items) == 1
    assert rest.metadata._continue is None


def test_unauthorized_and_forbidden(api, apiserver, tmp_path):
    bad_config = write_kubeconfig(tmp_path / "bad", apiserver.url, apiserver.ca_path, "not-a-token")
    bad = config.new_client_from_config(config_file=str(bad_config))
    with pytest.raises(ApiException) as error:
        client.CoreV1Api(bad).list_namespaced_pod(NS)
    assert (error.value.status, error.value.reason) == (401, "Unauthorized")
    bad.close()
    readonly = client.CoreV1Api(api["readonly"])
    assert readonly.list_namespaced_pod(READONLY_NAMESPACE).items == []
    user = "system:serviceaccount:llmd-sandbox:readonly"
    cases = [
        (lambda: readonly.list_namespaced_pod("other"),
         f'pods is forbidden: User \\"{user}\\" cannot list resource \\"pods\\" in API group \\"\\" '
         'in the namespace \\"other\\"'),
        (lambda: readonly.create_namespaced_pod(READONLY_NAMESPACE, {"metadata": {"name": "x"}, "spec": {
            "containers": [{"name": "c", "image": "i"}]}}),
         'cannot create resource \\"pods\\"'),
        (lambda: readonly.connect_get_namespaced_pod_proxy_with_path("p", READONLY_NAMESPACE, "metrics"),
         f'pods \\"p\\" is forbidden: User \\"{user}\\" cannot get resource \\"pods/proxy\\"'),
        (readonly.list_node, 'cannot list resource \\"nodes\\" in API group \\"\\" at the cluster scope'),
        (lambda: client.CoreV1Api(api["none"]).list_namespaced_pod(READONLY_NAMESPACE),
         'User \\"system:serviceaccount:llmd-sandbox:none\\" cannot list'),
    ]
    for call, message in cases:
        with pytest.raises(ApiException) as error:
            call()
        assert (error.value.status, error.value.reason) == (403, "Forbidden")
        assert message in error.value.body, error.value.body
    # discovery and /version need only authentication
    assert client.VersionApi(api["none"]).get_code().git_version == "v1.32.4"
    assert client.CoreApi(api["none"]).get_api_versions().versions == ["v1"]


def test_self_subject_access_review(api):
    def can(role, verb, resource, subresource="", ns=READONLY_NAMESPACE):
        review = client.AuthorizationV1Api(api[role]).create_self_subject_access_review(
            {"spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource,
                                             "subresource": subresource}}})
        return review.status.allowed

    assert can("admin", "create", "pods", "portforward")
    assert can("readonly", "get", "pods", "log") and can("readonly", "list", "services")
    assert not can("readonly", "create", "pods", "portforward")
    assert not can("readonly", "get", "services", "proxy")
    assert not can("readonly", "list", "pods", ns="other")
    assert not can("none", "get", "pods")


def _log_lines(count: int, start: datetime.datetime) -> list[tuple[str, str]]:
    return [((start + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z", f"line {i}")
            for i in range(count)]


def test_pod_logs_with_each_option(api, apiserver):
    pod = apiserver.run(apiserver.store.create, running_pod(
        "decode-0", NS, sidecars={"routing-proxy": 8000}, containers={"vllm": 8200}, restarts={"vllm": 1}))
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    write_cri_log(apiserver, pod, "vllm", 0, [("2026-01-01T00:00:00.000000001Z", "torch.OutOfMemoryError: CUDA")])
    write_cri_log(apiserver, pod, "vllm", 1, _log_lines(10, now - datetime.timedelta(seconds=100)))
    write_cri_log(apiserver, pod, "routing-proxy", 0, [("2026-01-01T00:00:00.5Z", "waiting for vLLM to be ready")])
    core = client.CoreV1Api(api["admin"])

    def read(**kw):
        return core.read_namespaced_pod_log("decode-0", NS, **kw)

    assert read().splitlines()[0] == "line 0"  # the only (non-init) container is the default
    assert read(container="vllm", tail_lines=2) == "line 8\nline 9\n"
    assert read(container="vllm", tail_lines=1, timestamps=True).startswith(_log_lines(10, now)[0][0][:4])
    assert read(container="vllm", tail_lines=1, timestamps=True).endswith("123Z line 9\n")
    assert read(container="vllm", since_seconds=95).splitlines() == [f"line {i}" for i in range(6, 10)]
    assert read(container="vllm", limit_bytes=8) == "line 0\nl"
    since_time = (now - datetime.timedelta(seconds=92)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = _raw_call(api["admin"], "GET", f"/api/v1/namespaces/{NS}/pods/decode-0/log?container=vllm&"
                                              f"sinceTime={since_time}")
    assert response.read().decode().splitlines() == ["line 8", "line 9"]
    assert read(container="vllm", previous=True) == "torch.OutOfMemoryError: CUDA\n"
    assert read(container="routing-proxy") == "waiting for vLLM to be ready\n"
    bad = [(dict(container="nope"), "container nope is not valid for pod decode-0"),
           (dict(container="routing-proxy", previous=True),
            'previous terminated container \\"routing-proxy\\" in pod \\"decode-0\\" not found')]
    for kwargs, message in bad:
        with pytest.raises(ApiException) as error:
            read(**kwargs)
        assert error.value.status == 400 and message in error.value.body
    two = apiserver.run(apiserver.store.create, running_pod("two", NS, containers={"a": 1, "b": 2}))
    with pytest.raises(ApiException) as error:
        core.read_namespaced_pod_log(two["metadata"]["name"], NS)
    assert "a container name must be specified for pod two, choose one of: [a b]" in error.value.body


def test_pod_log_follow_ends_when_the_container_stops(api, apiserver):
    pod = apiserver.run(apiserver.store.create, running_pod("follow", NS))
    write_cri_log(apiserver, pod, "vllm", 0, [("2026-01-01T00:00:00Z", "first")])
    core = client.CoreV1Api(api["admin"])
    stream = core.read_namespaced_pod_log("follow", NS, follow=True, _preload_content=False,
                                          _request_timeout=TIMEOUT)
    assert stream.read(6) == b"first\n"
    write_cri_log(apiserver, pod, "vllm", 0, [("2026-01-01T00:00:01Z", "second")])
    assert stream.read(7) == b"second\n"
    status = dict(pod["status"], containerStatuses=[{"name": "vllm", "restartCount": 0, "ready": False,
                                                     "state": {"terminated": {"exitCode": 1}}}])
    write_cri_log(apiserver, pod, "vllm", 0, [("2026-01-01T00:00:02Z", "last words")])
    apiserver.run(apiserver.store.update_status, PODS, NS, "follow", status)
    started = time.monotonic()
    assert stream.read() == b"last words\n"  # then the stream ends
    assert time.monotonic() - started < 2
    stream.release_conn()


def _raw_call(api_client, method: str, path: str, body=None):
    """Any request with the client's credentials, e.g. a POST through the proxy (FACTS.md: param_serialize)."""
    params = api_client.param_serialize(method=method, resource_path=path, body=body,
                                        header_params={"Content-Type": "application/json"} if body else {},
                                        auth_settings=["BearerToken"])
    return api_client.call_api(*params, _request_timeout=TIMEOUT)


def test_service_and_pod_proxy(api, apiserver):
    seen = []

    async def metrics(request):
        seen.append((request.method, request.path_qs, request.headers.get("Authorization"), await request.text()))
        return web.Response(text="vllm:num_requests_running 0\n", headers={"X-Backend": "yes"})

    backend = web.Application()
    backend.router.add_route("*", "/{tail:.*}", metrics)
    port = start_backend(apiserver, backend)
    apiserver.run(apiserver.store.create, running_pod("epp-0", NS, labels={"app": "epp"}, containers={"epp": port}))
    apiserver.run(apiserver.store.create, {"apiVersion": "v1", "kind": "Service",
                                           "metadata": {"name": "gaie-sim-epp", "namespace": NS},
                                           "spec": {"selector": {"app": "epp"},
                                                    "ports": [{"name": "metrics", "port": 9090, "targetPort": port},
                                                              {"name": "grpc", "port": 9002, "targetPort": "http"}]}})
    admin = api["admin"]
    for path in [f"/api/v1/namespaces/{NS}/services/gaie-sim-epp:9090/proxy/metrics",
                 f"/api/v1/namespaces/{NS}/services/gaie-sim-epp:metrics/proxy/metrics",
                 f"/api/v1/namespaces/{NS}/services/http:gaie-sim-epp:grpc/proxy/metrics",
                 f"/api/v1/namespaces/{NS}/pods/epp-0:{port}/proxy/metrics",
                 f"/api/v1/namespaces/{NS}/pods/epp-0/proxy/metrics"]:
        response = _raw_call(admin, "GET", path)
        assert response.status == 200 and response.read() == b"vllm:num_requests_running 0\n", path
        assert response.getheader("X-Backend") == "yes"
    response = _raw_call(admin, "POST", f"/api/v1/namespaces/{NS}/services/gaie-sim-epp:9090/proxy/v1/completions?x=1",
                         body={"model": "m"})
    response.read()
    assert seen[-1][:2] == ("POST", "/v1/completions?x=1") and seen[-1][2] is None and '"model"' in seen[-1][3]
    apiserver.run(apiserver.store.create, {"apiVersion": "v1", "kind": "Service",
                                           "metadata": {"name": "empty", "namespace": NS},
                                           "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]}})
    with pytest.raises(ApiException) as error:
        client.CoreV1Api(admin).connect_get_namespaced_service_proxy_with_path("empty:80", NS, "metrics")
    assert error.value.status == 503 and 'no endpoints available for service \\"empty\\"' in error.value.body


def test_proxy_flushes_like_go_reverse_proxy(api, apiserver):
    """Server-sent events pass at once; a body of known length arrives in 200 ms batches."""
    async def events(request):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(10):
            await response.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    async def sized(request):
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = 10
        await response.prepare(request)
        for _byte in range(10):
            await response.write(b"x")
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    backend = web.Application()
    backend.router.add_get("/events", events)
    backend.router.add_get("/sized", sized)
    port = start_backend(apiserver, backend)
    apiserver.run(apiserver.store.create, running_pod("sse", NS, containers={"vllm": port}))

    def arrivals(path: str) -> list[tuple[float, int]]:
        response = _raw_call(api["admin"], "GET", f"/api/v1/namespaces/{NS}/pods/sse:{port}/proxy/{path}")
        started, seen = time.monotonic(), []
        for chunk in response.response.stream(amt=1, decode_content=False):
            seen.append((time.monotonic() - started, len(chunk)))
        return seen

    def largest_gap(seen: list[tuple[float, int]]) -> float:
        times = [at for at, _size in seen]
        return max(later - earlier for earlier, later in zip(times, times[1:]))

    events_seen = arrivals("events")  # one event every 50 ms, each passed on as it comes
    assert events_seen[0][0] < 0.15 and largest_gap(events_seen) < 0.12, events_seen
    sized_seen = arrivals("sized")  # one byte every 50 ms, passed on in 200 ms batches
    assert sum(size for _at, size in sized_seen) == 10 and largest_gap(sized_seen) > 0.15, sized_seen
