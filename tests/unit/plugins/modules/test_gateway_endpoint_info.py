# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module and the lookup, end to end through the real kubernetes client against a local stub API server."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.llmd.verify.plugins.modules import gateway_endpoint_info  # noqa: E402
from ansible_collections.llmd.verify.tests.unit.plugins.modules import module_runner  # noqa: E402

# The stub API server (cluster) and the isolation from this machine's kubeconfig: fixtures of tests/unit/conftest.py.
pytestmark = pytest.mark.usefixtures("isolated")


def run_module(args, capsys):
    return module_runner.run_module(gateway_endpoint_info, args, capsys)


def test_auto_resolves_the_port_forward(cluster, capsys):
    args = {"host": cluster.url, "api_key": "k", "namespace": "llm-d"}
    code, result = run_module(args, capsys)
    assert code == 0 and result["changed"] is False
    assert (result["mode"], result["endpoint"]) == ("port_forward", "http://127.0.0.1:8000")
    assert result["reach"]["port_forward"]["service"] == "infra-inference-scheduling-inference-gateway-istio"
    gateway = next(c for c in result["candidates"] if c["mode"] == "gateway")
    assert gateway["reason"].startswith("not available")


def test_unavailable_mode_fails_cleanly(cluster, capsys):
    code, result = run_module({"host": cluster.url, "api_key": "k", "namespace": "llm-d", "mode": "route"}, capsys)
    assert code == 1 and result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("mode route is not available in namespace llm-d: not available: OpenShift Routes")


def test_invalid_namespace_fails_before_any_request(cluster, capsys):
    code, result = run_module({"host": cluster.url, "api_key": "k", "namespace": "LLM_D"}, capsys)
    assert code == 1 and "not a valid Kubernetes namespace" in result["msg"]
    assert cluster.requests == []


def test_the_token_is_not_echoed(cluster, capsys):
    cluster.routes["/api/v1/namespaces/llm-d/services"] = (401, {"kind": "Status", "code": 401, "message": "Unauthorized"})
    code, result = run_module({"host": cluster.url, "api_key": "s3cr3t-token", "namespace": "llm-d"}, capsys)
    assert code == 1 and "rejected the credentials" in result["msg"]
    assert "s3cr3t-token" not in json.dumps(result)
