# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""metrics_info against the EPP's metrics, which need a bearer token, through the API server proxy and directly."""

from __future__ import annotations

import pytest

from ansible_collections.llmd.verify.plugins.modules import metrics_info
from ansible_collections.llmd.verify.tests.unit.plugins.module_utils.stub_servers import (
    UNAUTHORIZED_METRICS,
    VLLM_METRICS,
    Replies,
    StubServer,
)
from ansible_collections.llmd.verify.tests.unit.plugins.modules.module_runner import run_module
# The stand-in API server with a standalone EPP's Service, and the isolation from this machine's kubeconfig.
from ansible_collections.llmd.verify.tests.unit.plugins.modules.test_api_proxy_modules import (  # noqa: F401 pylint: disable=unused-import
    api,
    isolated,
    kubeconfig,
)

pytest.importorskip("kubernetes")
pytest.importorskip("prometheus_client")


def test_metrics_service_without_a_port_reads_the_metrics_port(api, tmp_path, capsys):
    api.fake.backends[("services", "optimized-baseline-epp", "http-metrics")] = Replies(VLLM_METRICS)
    code, result = run_module(metrics_info, {"namespace": "llm-d", "services": ["optimized-baseline-epp"],
                                             "kubeconfig": kubeconfig(tmp_path, api)}, capsys)
    assert code == 0, result.get("msg")
    target = result["targets"]["service/optimized-baseline-epp"]
    assert target["port"] == "http-metrics" and "vllm:num_requests_running" in target["metrics"]


def test_a_401_through_the_api_server_proxy_says_a_token_is_needed_and_how(api, tmp_path, capsys):
    epp = Replies(UNAUTHORIZED_METRICS)
    api.fake.backends[("services", "optimized-baseline-epp", "http-metrics")] = epp
    code, result = run_module(metrics_info, {"namespace": "llm-d", "services": ["optimized-baseline-epp:9090"],
                                             "kubeconfig": kubeconfig(tmp_path, api)}, capsys)
    assert code == 1
    assert "HTTP 401" in result["msg"] and "need a bearer token" in result["msg"] and "--metrics-endpoint-auth" in result["msg"]
    assert "does not pass a token on" in result["hint"] and "port_forward" in result["hint"]
    assert "metrics_token" in result["hint"] and "kubectl create token" in result["hint"]
    assert "authorization" not in epp.seen[0]["headers"]  # the API server does not pass the caller's token on


def test_metrics_token_is_sent_to_urls(tmp_path, capsys):
    def epp(request):
        return VLLM_METRICS if request["headers"].get("authorization") == "Bearer reader-token" else UNAUTHORIZED_METRICS

    with StubServer(epp) as server:
        code, result = run_module(metrics_info, {"urls": [server.url + "/metrics"]}, capsys)
        assert code == 1 and "set metrics_token" in result["hint"] and "need a bearer token" in result["msg"]
        code, result = run_module(metrics_info, {"urls": [server.url + "/metrics"], "metrics_token": "wrong"}, capsys)
        assert code == 1 and "invalid or expired" in result["hint"] and "wrong" not in result["msg"]
        code, result = run_module(metrics_info, {"urls": [server.url + "/metrics"], "metrics_token": "reader-token"}, capsys)
    assert code == 0 and result["targets"]["url/%s/metrics" % server.url]["status"] == 200


def test_a_token_the_epp_cannot_check_is_explained(capsys):
    from ansible_collections.llmd.verify.tests.unit.plugins.module_utils.stub_servers import EPP_METRICS_TOKEN_UNCHECKED

    with StubServer(Replies(EPP_METRICS_TOKEN_UNCHECKED)) as server:
        code, result = run_module(metrics_info, {"urls": [server.url + "/metrics"], "metrics_token": "a-reader-token"}, capsys)
    assert code == 1 and "Authentication failed" in result["msg"] and "system:auth-delegator" in result["hint"]
