# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/rbac.yaml grants what the real API server's authorizer asks for (FACTS.md section 4), and docs/rbac.md
explains exactly its rules: rbac.yaml is the single source, rbac.md's table names each rule once."""

from __future__ import annotations

import os
import re

import yaml

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, "docs")


def read(name):
    with open(os.path.join(DOCS, name)) as handle:
        return handle.read()


def manifests():
    """The items of rbac.yaml: one List (one YAML document, as yamllint wants), applied item by item."""
    document = yaml.safe_load(read("rbac.yaml"))
    assert document["kind"] == "List"
    return document["items"]


def md_manifests():
    return [doc for block in re.findall(r"```yaml\n(.*?)```", read("rbac.md"), re.S)
            for doc in yaml.safe_load_all(block) if isinstance(doc, dict)]


def rules():
    """(role, resource with its API group, frozenset of verbs) for every rule of rbac.yaml."""
    return [(role["metadata"]["name"], "%s.%s" % (resource, group) if group else resource, frozenset(rule["verbs"]))
            for role in manifests() if role["kind"] in ("Role", "ClusterRole")
            for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]]


def verbs(resource):
    return {verb for _role, name, granted in rules() if name == resource for verb in granted}


def test_port_forward_needs_get_and_create():
    # WebSocket GET: get (and create from Kubernetes 1.35); SPDY POST: create.
    assert verbs("pods/portforward") == {"get", "create"}


def test_the_proxy_and_the_port_resolution():
    assert verbs("services/proxy") == {"get", "create"}
    assert verbs("pods/proxy") == {"get"}  # verify.yml only GETs the prefill pods' metrics
    assert "get" in verbs("services")  # the Service is read to resolve the proxy's port


def test_only_reads_besides_the_port_forward_and_the_proxy():
    writes = {(name, verb) for _role, name, granted in rules() for verb in granted if verb not in ("get", "list")}
    assert writes == {("pods/portforward", "create"), ("services/proxy", "create")}


def test_cluster_scope_only_for_cluster_scoped_kinds():
    cluster = {name for role, name, _verbs in rules() if role == "llmd-verify-cluster"}
    assert cluster == {"gatewayclasses.gateway.networking.k8s.io", "nodes"}
    kinds = {doc["kind"] for doc in manifests()}
    assert "ClusterRole" in kinds and "ClusterRoleBinding" in kinds


def test_every_role_is_bound_to_the_same_subject():
    docs = manifests()
    roles = {doc["metadata"]["name"] for doc in docs if doc["kind"] in ("Role", "ClusterRole")}
    bindings = [doc for doc in docs if doc["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert {binding["roleRef"]["name"] for binding in bindings} == roles
    for binding in bindings:
        assert binding["roleRef"]["kind"] == ("ClusterRole" if binding["kind"] == "ClusterRoleBinding" else "Role")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "llmd-verify", "namespace": "llm-d"}]


def test_rbac_md_explains_exactly_the_rules_of_rbac_yaml():
    rows = re.findall(r"^\| `([a-z-]+)` \| `([a-z0-9./-]+)` \| ([a-z, ]+) \|", read("rbac.md"), re.M)
    explained = [(role, resource, frozenset(v.strip() for v in verbs_.split(","))) for role, resource, verbs_ in rows]
    assert len(explained) == len(set(explained))
    assert set(explained) == set(rules()) and len(explained) == len(rules())


def test_rbac_md_keeps_no_second_copy_of_the_role():
    assert not [doc for doc in md_manifests() if doc.get("kind") == "Role"]


def test_the_metrics_reader_allows_get_on_the_metrics_url():
    role = next(doc for doc in md_manifests() if doc.get("kind") == "ClusterRole")
    assert {"nonResourceURLs": ["/metrics"], "verbs": ["get"]} in role["rules"]
    binding = next(doc for doc in md_manifests() if doc.get("kind") == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
