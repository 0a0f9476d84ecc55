# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""metrics_info against the EPP's metrics, which need a bearer token, through the API server proxy and directly."""

from __future__ import annotations

import pytest

from ansible_collections.llmd.verify.plugins.modules import metrics_info
from ansible_collections.llmd.verify.tests.unit.plugins.modules.module_runner import run_module
from ansible_collections.llmd.verify.tests.unit.stub_answers import (
    EPP_METRICS_TOKEN_UNCHECKED,
    UNAUTHORIZED_METRICS,
    VLLM_METRICS,
    Replies,
    kubeconfig_file,
)

pytest.importorskip("kubernetes")
pytest.importorskip("prometheus_client")

# The stand-in API server with a standalone EPP's Service (epp_api), the stub server and the isolation from this
# machine's kubeconfig: fixtures of tests/unit/conftest.py.
pytestmark = pytest.mark.usefixtures("isolated")


def test_metrics_service_without_a_port_reads_the_metrics_port(epp_api, tmp_path, capsys):
    epp_api.fake.backends[("services", "optimized-baseline-epp", "http-metrics")] = Replies(VLLM_METRICS)
    code, result = run_module(metrics_info, {"namespace": "llm-d", "services": ["optimized-baseline-epp"],
                                             "kubeconfig": kubeconfig_file(tmp_path, epp_api)}, capsys)
    assert code == 0, result.get("msg")
    target = result["targets"]["service/optimized-baseline-epp"]
    assert target["port"] == "http-metrics" and "vllm:num_requests_running" in target["metrics"]


def test_a_401_through_the_api_server_proxy_says_a_token_is_needed_and_how(epp_api, tmp_path, capsys):
    epp = Replies(UNAUTHORIZED_METRICS)
    epp_api.fake.backends[("services", "optimized-baseline-epp", "http-metrics")] = epp
    code, result = run_module(metrics_info, {"namespace": "llm-d", "services": ["optimized-baseline-epp:9090"],
                                             "kubeconfig": kubeconfig_file(tmp_path, epp_api)}, capsys)
    assert code == 1
    assert "HTTP 401" in result["msg"] and "need a bearer token" in result["msg"] and "--metrics-endpoint-auth" in result["msg"]
    assert "does not pass a token on" in result["hint"] and "port_forward" in result["hint"]
    assert "metrics_token" in result["hint"] and "kubectl create token" in result["hint"]
    assert "authorization" not in epp.seen[0]["headers"]  # the API server does not pass the caller's token on


def test_metrics_token_is_sent_to_urls(stub_server, capsys):
    def epp(request):
        return VLLM_METRICS if request["headers"].get("authorization") == "Bearer reader-token" else UNAUTHORIZED_METRICS

    server = stub_server(epp)
    code, result = run_module(metrics_info, {"urls": [server.url + "/metrics"]}, capsys)
    assert code == 1 and "set metrics_token" in result["hint"] and "need a bearer token" in result["msg"]
    code, result = run_module(metrics_info, {"urls": [server.url + "/metrics"], "metrics_token": "wrong"}, capsys)
    assert code == 1 and "invalid or expired" in result["hint"] and "wrong" not in result["msg"]
    code, result = run_module(metrics_info, {"urls": [server.url + "/metrics"], "metrics_token": "reader-token"}, capsys)
    assert code == 0 and result["targets"]["url/%s/metrics" % server.url]["status"] == 200


def test_a_token_the_epp_cannot_check_is_explained(stub_server, capsys):
    server = stub_server(Replies(EPP_METRICS_TOKEN_UNCHECKED))
    code, result = run_module(metrics_info, {"urls": [server.url + "/metrics"], "metrics_token": "a-reader-token"}, capsys)
    assert code == 1 and "Authentication failed" in result["msg"] and "system:auth-delegator" in result["hint"]
