# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/rbac.md grants what the real API server's authorizer asks for (FACTS.md section 4)."""

from __future__ import annotations

import os
import re

import yaml

DOC = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, "docs", "rbac.md")


def manifests():
    with open(DOC) as handle:
        text = handle.read()
    return [doc for block in re.findall(r"```yaml\n(.*?)```", text, re.S) for doc in yaml.safe_load_all(block) if doc]


def verbs(resource):
    role = next(doc for doc in manifests() if doc.get("kind") == "Role")
    return {verb for rule in role["rules"] if resource in rule.get("resources", []) for verb in rule["verbs"]}


def test_port_forward_needs_get_and_create():
    # WebSocket GET: get (and create from Kubernetes 1.35); SPDY POST: create.
    assert {"get", "create"} <= verbs("pods/portforward")


def test_the_proxy_and_the_port_resolution():
    assert {"get", "create"} <= verbs("services/proxy") and {"get", "create"} <= verbs("pods/proxy")
    assert "get" in verbs("services")  # the Service is read to resolve the proxy's port


def test_the_metrics_reader_allows_get_on_the_metrics_url():
    role = next(doc for doc in manifests() if doc.get("kind") == "ClusterRole")
    assert {"nonResourceURLs": ["/metrics"], "verbs": ["get"]} in role["rules"]
    binding = next(doc for doc in manifests() if doc.get("kind") == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
