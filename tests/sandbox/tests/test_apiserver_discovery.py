"""Discovery, OpenAPI, raw HTTP errors, Table output and watch, as clients ask for them."""

from __future__ import annotations

import threading

import pytest
import requests
from kubernetes import client, config, watch

from apiserver_harness import ApiServer, namespace, running_pod

TIMEOUT = 10
AGGREGATED_ONLY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
KUBECTL_DISCOVERY = f"{AGGREGATED_ONLY},application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList," \
                    "application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


@pytest.fixture
def http(apiserver: ApiServer):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {apiserver.tokens['none']}"
    # verify per request: a session-wide one loses to REQUESTS_CA_BUNDLE from the environment
    yield lambda method, path, **kw: session.request(method, apiserver.url + path, timeout=TIMEOUT,
                                                     verify=str(apiserver.ca_path), **kw)
    session.close()


def test_discovery_documents(http):
    assert http("GET", "/version").json()["minor"] == "32"
    groups = http("GET", "/apis", headers={"Accept": KUBECTL_DISCOVERY})
    assert groups.headers["Content-Type"] == "application/json" and groups.json()["kind"] == "APIGroupList"
    names = {g["name"] for g in groups.json()["groups"]}
    assert {"apps", "gateway.networking.k8s.io", "inference.networking.k8s.io", "inference.networking.x-k8s.io",
            "route.openshift.io", "authorization.k8s.io"} <= names
    assert http("GET", "/apis", headers={"Accept": AGGREGATED_ONLY}).status_code == 406
    core = {r["name"]: r for r in http("GET", "/api/v1").json()["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["services"]["shortNames"] == ["svc"]
    assert {"pods/log", "pods/portforward", "pods/proxy", "pods/status", "services/proxy"} <= set(core)
    gateways = http("GET", "/apis/gateway.networking.k8s.io/v1").json()
    assert gateways["groupVersion"] == "gateway.networking.k8s.io/v1"
    assert next(r for r in gateways["resources"] if r["name"] == "gateways")["shortNames"] == ["gtw"]


def test_openapi_v3_lets_the_server_validate(http):
    root = http("GET", "/openapi/v3").json()["paths"]
    apps = http("GET", root["apis/apps/v1"]["serverRelativeURL"]).json()
    patch = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert http("GET", "/openapi/v2").status_code == 404


def test_raw_errors(http, apiserver):
    unknown = http("GET", "/apis/nope.example/v1/things")
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "the server could not find the requested resource"
    assert http("GET", "/version", headers={"Authorization": "Bearer wrong"}).json()["reason"] == "Unauthorized"
    assert requests.get(apiserver.url + "/api/v1/pods", verify=str(apiserver.ca_path), timeout=TIMEOUT).status_code \
        == 401
    admin = {"Authorization": f"Bearer {apiserver.tokens['admin']}"}
    assert http("PUT", "/api/v1/namespaces", headers=admin).json()["reason"] == "MethodNotAllowed"
    missing_ns = http("GET", "/api/v1/namespaces/ghost", headers=admin).json()
    assert (missing_ns["code"], missing_ns["message"]) == (404, 'namespaces "ghost" not found')


def test_table_form(http, apiserver):
    apiserver.run(apiserver.store.create, namespace("ns"))
    apiserver.run(apiserver.store.create, running_pod("p", "ns", restarts={"vllm": 1}))
    admin = {"Authorization": f"Bearer {apiserver.tokens['admin']}", "Accept": TABLE}
    table = http("GET", "/api/v1/namespaces/ns/pods", headers=admin).json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == \
        ["Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"][0]["cells"][:4] == ["p", "1/1", "Running", "1"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_watch_streams_changes(apiserver):
    apiserver.run(apiserver.store.create, namespace("ns"))
    apiserver.run(apiserver.store.create, running_pod("before", "ns"))
    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    core = client.CoreV1Api(api_client)
    seen, watching = [], threading.Event()

    def watch_pods():
        for event in watch.Watch().stream(core.list_namespaced_pod, "ns", timeout_seconds=3,
                                          _request_timeout=TIMEOUT):
            seen.append((event["type"], event["object"].metadata.name))
            watching.set()
            if len(seen) == 3:
                break

    watcher = threading.Thread(target=watch_pods)
    watcher.start()
    try:
        assert watching.wait(TIMEOUT)  # the current objects come first
        apiserver.run(apiserver.store.create, running_pod("after", "ns"))
        core.delete_namespaced_pod("after", "ns")
    finally:
        watcher.join(TIMEOUT)
        api_client.close()
    assert not watcher.is_alive()
    assert seen == [("ADDED", "before"), ("ADDED", "after"), ("DELETED", "after")]
