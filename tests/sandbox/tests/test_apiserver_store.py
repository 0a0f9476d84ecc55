"""The object store, selectors and patches on their own (the API-level behaviour is in the client tests)."""

from __future__ import annotations

import re

import pytest

from llmd_sandbox.resources import find_resource
from llmd_sandbox.selectors import SelectorError, parse_field_selector, parse_label_selector
from llmd_sandbox.store import ApiError, Store, strategic_merge_patch

PODS = find_resource("", "v1", "pods")
DEPLOYMENTS = find_resource("apps", "v1", "deployments")
NAMESPACES = find_resource("", "v1", "namespaces")


@pytest.fixture
def store() -> Store:
    store = Store()
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
    return store


def pod(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}


@pytest.mark.parametrize("selector,expected", [
    ("role=decode", True), ("role==decode", True), ("role!=decode", False), ("role in (a, decode)", True),
    ("role notin (decode)", False), ("role", True), ("!role", False), ("missing!=x", True),
    ("role=decode,tier in (gpu)", True), ("role=decode,!tier", False), ("", True),
])
def test_label_selector(selector, expected):
    assert parse_label_selector(selector)({"role": "decode", "tier": "gpu"}) is expected


@pytest.mark.parametrize("selector,message", [
    ("role in decode", "found 'decode', expected: '('"), ("role decode", "expected: in, notin, =, ==, !=, gt, lt"),
    ("=x", "found '=', expected: identifier"), ("role in (a", "found 'EOS', expected: ',' or ')'"),
    ("role=a b", "found 'b', expected: ',' or 'end of string'"),
    ("role=-bad-", 'Invalid value: "-bad-"'),
])
def test_bad_label_selectors(selector, message):
    with pytest.raises(SelectorError, match=re.escape(message)):
        parse_label_selector(selector)


def test_field_selector():
    obj = {"metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n"}, "status": {"phase": "Running"}}
    assert parse_field_selector("metadata.name=a,status.phase!=Pending,spec.nodeName==n", "Pod")(obj)
    assert not parse_field_selector("status.phase=Pending", "Pod")(obj)
    with pytest.raises(SelectorError, match="field label not supported: status.phase"):
        parse_field_selector("status.phase=Running", "Service")


def test_metadata_versions_and_events(store):
    events = []
    store.subscribe(lambda event, obj: events.append((event, obj["metadata"]["name"])))
    created = store.create(pod("a", role="decode"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    assert store.update_status(PODS, "ns", "a", {"phase": "Running"})["metadata"]["generation"] == 1
    patched = store.patch(PODS, "ns", "a", {"spec": {"containers": [{"name": "c", "image": "j"}]}}, "strategic")
    assert patched["metadata"]["generation"] == 2 and patched["status"] == {"phase": "Running"}
    assert int(patched["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    unchanged = store.patch(PODS, "ns", "a", {"metadata": {"labels": {"role": "decode"}}}, "merge")
    assert unchanged["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    stale = dict(created, metadata=dict(meta, resourceVersion=meta["resourceVersion"]))
    with pytest.raises(ApiError) as error:
        store.replace(stale)
    assert error.value.code == 409 and error.value.reason == "Conflict"
    store.delete(PODS, "ns", "a")
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_owner_references_and_namespaces_cascade(store):
    owner = store.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"},
                          "spec": {}})
    dependent = pod("d-1")
    dependent["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d",
                                                 "uid": owner["metadata"]["uid"]}]
    store.create(dependent)
    store.create(pod("other"))
    store.delete(DEPLOYMENTS, "ns", "d")
    assert [p["metadata"]["name"] for p in store.list(PODS)[0]] == ["other"]
    store.delete(NAMESPACES, None, "ns")
    assert store.list(PODS)[0] == []
    with pytest.raises(ApiError) as error:
        store.create(pod("late"))
    assert error.value.message == 'namespaces "ns" not found'


def test_strategic_merge_patch_directives():
    current = {"containers": [{"name": "a", "image": "1", "ports": [{"containerPort": 80}]}, {"name": "b"}],
               "finalizers": ["x"], "tolerations": [{"key": "k"}]}
    patch = {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
             "containers": [{"name": "a", "ports": [{"containerPort": 81}]}, {"name": "c", "$patch": "delete"}],
             "finalizers": ["y"], "tolerations": [{"key": "z"}]}
    assert strategic_merge_patch(current, patch) == {
        "containers": [{"name": "b"}, {"name": "a", "image": "1", "ports": [{"containerPort": 80},
                                                                            {"containerPort": 81}]}],
        "finalizers": ["x", "y"], "tolerations": [{"key": "z"}]}
    assert strategic_merge_patch(current, {"containers": [{"name": "b", "$patch": "delete"}]})["containers"] == [
        current["containers"][0]]


def test_service_defaults(store):
    services = find_resource("", "v1", "services")
    svc = store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw", "namespace": "ns"},
                        "spec": {"type": "NodePort", "ports": [{"port": 80, "name": "http"}]}})
    port = svc["spec"]["ports"][0]
    assert svc["spec"]["clusterIP"].startswith("10.96.") and 30000 <= port["nodePort"] <= 32767
    assert port["targetPort"] == 80 and port["protocol"] == "TCP" and "generation" not in svc["metadata"]
    headless = store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h", "namespace": "ns"},
                             "spec": {"clusterIP": "None", "ports": [{"port": 1}]}})
    assert headless["spec"]["clusterIP"] == "None"
    assert store.get(services, "ns", "h")["spec"]["clusterIPs"] == ["None"]
