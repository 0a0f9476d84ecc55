# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""models_info through a stand-in API server whose proxy resolves ports as the real one does.

The stand-in answers with the API server's real messages: a Service port number is mapped to its name, no
port matches only an unnamed port (`no service port "" found` when there are several), and the caller's
Authorization header is not passed on to the target.
"""

from __future__ import annotations

import pytest

from ansible_collections.llmd.verify.plugins.module_utils._api_proxy import resolve_pod_port, resolve_service_port
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.modules import models_info
from ansible_collections.llmd.verify.tests.unit.stub_answers import EPP_PORTS, MODELS, Replies, kubeconfig_file
from ansible_collections.llmd.verify.tests.unit.plugins.modules.module_runner import run_module

pytest.importorskip("kubernetes")

# The stand-in API server (epp_api) and the isolation from this machine's kubeconfig: fixtures of
# tests/unit/conftest.py.
pytestmark = pytest.mark.usefixtures("isolated")


def proxied(server):
    return [r["path"] for r in server.requests if "/proxy" in r["path"]]


# ---- item: the port is resolved as kubectl resolves it ---------------------------------------------------------

def test_a_service_with_several_ports_and_none_given_gets_its_http_port(epp_api, tmp_path, capsys):
    code, result = run_module(models_info, {"transport": "api_proxy", "namespace": "llm-d", "wait_timeout": 2,
                                            "service": "optimized-baseline-epp",
                                            "kubeconfig": kubeconfig_file(tmp_path, epp_api)}, capsys)
    assert code == 0, result["msg"]
    assert result["ids"] == ["random"] and result["attempts"] == 1
    assert proxied(epp_api) == ["/api/v1/namespaces/llm-d/services/optimized-baseline-epp:http/proxy/v1/models"]


def test_a_port_number_is_asked_for_by_its_name(epp_api, tmp_path, capsys):
    code, result = run_module(models_info, {"transport": "api_proxy", "namespace": "llm-d", "port": "80",
                                            "service": "optimized-baseline-epp",
                                            "kubeconfig": kubeconfig_file(tmp_path, epp_api)}, capsys)
    assert code == 0 and proxied(epp_api) == ["/api/v1/namespaces/llm-d/services/optimized-baseline-epp:http/proxy/v1/models"]


def test_a_service_with_no_http_port_fails_at_once_naming_its_ports(epp_api, tmp_path, capsys):
    epp_api.fake.add_service("gaie-sim-epp", EPP_PORTS[:2])
    code, result = run_module(models_info, {"transport": "api_proxy", "namespace": "llm-d", "wait_timeout": 60,
                                            "service": "gaie-sim-epp", "kubeconfig": kubeconfig_file(tmp_path, epp_api)}, capsys)
    assert code == 1 and result["attempts"] == 1 and proxied(epp_api) == []
    assert "Service gaie-sim-epp has several ports and none of them is HTTP" in result["msg"]
    assert "9002/grpc-ext-proc (kubernetes.io/h2c), 9090/http-metrics" in result["msg"]


def test_a_port_the_service_does_not_have_fails_at_once(epp_api, tmp_path, capsys):
    code, result = run_module(models_info, {"transport": "api_proxy", "namespace": "llm-d", "port": "8081",
                                            "service": "optimized-baseline-epp", "wait_timeout": 60,
                                            "kubeconfig": kubeconfig_file(tmp_path, epp_api)}, capsys)
    assert code == 1 and result["attempts"] == 1
    assert "Service optimized-baseline-epp has no port 8081" in result["msg"] and "not a target port" in result["hint"]


def test_a_pod_port_name_becomes_its_number(epp_api, tmp_path, capsys):
    epp_api.fake.add_pod("ms-decode-0", [{"name": "vllm", "ports": [{"name": "vllm", "containerPort": 8200}]}],
                         init_containers=[{"name": "routing-proxy", "restartPolicy": "Always",
                                           "ports": [{"name": "sidecar", "containerPort": 8000}]}])
    epp_api.fake.backends[("pods", "ms-decode-0", "8000")] = Replies(MODELS)
    code, result = run_module(models_info, {"transport": "api_proxy", "namespace": "llm-d", "pod": "ms-decode-0",
                                            "port": "sidecar", "kubeconfig": kubeconfig_file(tmp_path, epp_api)}, capsys)
    assert code == 0, result["msg"]
    assert proxied(epp_api) == ["/api/v1/namespaces/llm-d/pods/ms-decode-0:8000/proxy/v1/models"]


def test_resolution_rules():
    service = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 8000}]}}
    assert resolve_service_port(service)[0] == "8000"  # an unnamed single port: the number
    assert resolve_service_port(service, "8000")[0] == "8000"
    named = {"metadata": {"name": "s"}, "spec": {"ports": [{"name": "web", "port": 8000}]}}
    assert resolve_service_port(named)[0] == "web"  # a single named port: its name, never ""
    epp = {"metadata": {"name": "epp"}, "spec": {"ports": EPP_PORTS}}
    assert resolve_service_port(epp)[0] == "http"
    assert resolve_service_port(epp, prefer="metrics")[0] == "http-metrics"
    assert resolve_service_port(epp, "9090")[0] == "http-metrics"
    with pytest.raises(LlmdError, match="has no port web"):
        resolve_service_port(epp, "web")
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "vllm", "ports": [{"name": "http", "containerPort": 8000}]}]}}
    assert resolve_pod_port(pod, "http") == "8000" and resolve_pod_port(pod, "8200") == "8200"
    assert resolve_pod_port(pod) is None
    with pytest.raises(LlmdError, match=r"pod p has no container port named metrics \(its ports: 8000/http"):
        resolve_pod_port(pod, "metrics")


# ---- item: no credentials at all ----------------------------------------------------------------------------

def test_a_request_without_credentials_says_so_not_rbac(epp_api, tmp_path, capsys):
    epp_api.fake.forbid_anonymous = True
    code, result = run_module(models_info, {"transport": "api_proxy", "namespace": "llm-d", "wait_timeout": 60,
                                            "service": "optimized-baseline-epp",
                                            "kubeconfig": kubeconfig_file(tmp_path, epp_api, user={})}, capsys)
    assert code == 1 and result["attempts"] == 1
    assert result["msg"].startswith("no credentials reached the Kubernetes API server")
    assert "system:anonymous" in result["msg"] and "kubeconfig" in result["hint"] and "context" in result["hint"]
    assert "grant" not in result["hint"] and "rbac" not in result["hint"].lower()
