# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""wait_for_models against local servers that answer as the real stack does while no model server is Ready."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._http import HttpTransport
from ansible_collections.llmd.verify.plugins.module_utils._openai import not_ready_reason, wait_for_models
from ansible_collections.llmd.verify.tests.unit.stub_answers import (
    ENVOY_NO_HEALTHY_UPSTREAM,
    ENVOY_UPSTREAM_GONE,
    EPP_NO_CANDIDATES_POST,
    EPP_NO_CANDIDATES_POST_OLDER,
    EPP_NO_PODS_GET,
    EPP_NO_PODS_GET_OLDER,
    MODELS,
    PLAIN_500,
    SIDECAR_DECODE_NOT_READY,
    SIDECAR_OLD_EMPTY_502,
    Replies,
    status,
)

pytest.importorskip("requests")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


NOT_READY = [
    (EPP_NO_PODS_GET, "no pods available in datastore", "EPP"),
    (EPP_NO_PODS_GET_OLDER, "no pods available in datastore", "EPP"),
    (EPP_NO_CANDIDATES_POST, "failed to find endpoint candidates", "EPP"),
    (EPP_NO_CANDIDATES_POST_OLDER, "failed to find candidate pods", "EPP"),
    (ENVOY_NO_HEALTHY_UPSTREAM, "no healthy upstream", "Envoy"),
    (ENVOY_UPSTREAM_GONE, "upstream connect error", "Envoy"),
    (SIDECAR_DECODE_NOT_READY, "decode node is not ready", "routing-proxy"),
    (SIDECAR_OLD_EMPTY_502, "HTTP 502 with an empty body", "routing-proxy"),
    (status(503, "ServiceUnavailable", 'no endpoints available for service "optimized-baseline-epp"'),
     "no endpoints available for service", "API server proxy"),
]


@pytest.mark.parametrize("answer, reason, who", NOT_READY, ids=[answer[2][:40].decode() for answer, _r, _w in NOT_READY])
def test_each_not_ready_answer_is_waited_through_then_named_with_its_meaning(stub_server, answer, reason, who):
    server = stub_server(Replies(answer))
    clock = FakeClock()
    with pytest.raises(LlmdError) as caught:
        wait_for_models(HttpTransport(server.url, timeout=5), 10, sleep=clock.sleep, clock=clock)
    details = caught.value.details
    assert details["attempts"] > 3 and len(server.requests) == details["attempts"]  # waited, did not give up at once
    assert details["not_ready"] == reason and details["waited_for"] == [reason]
    assert "not ready after 10 s" in caught.value.msg and reason in caught.value.msg
    assert who in details["meaning"] and details["meaning"] in caught.value.msg
    assert caught.value.hint


def test_the_epp_500_is_waited_through_until_the_models_answer(stub_server):
    server = stub_server(Replies(EPP_NO_PODS_GET, ENVOY_NO_HEALTHY_UPSTREAM, SIDECAR_DECODE_NOT_READY, MODELS))
    clock = FakeClock()
    result = wait_for_models(HttpTransport(server.url, timeout=5), 60, sleep=clock.sleep, clock=clock)
    assert result["ids"] == ["random"] and result["attempts"] == 4
    assert result["waited_for"] == ["no pods available in datastore", "no healthy upstream", "decode node is not ready"]


def test_the_last_not_ready_answer_is_the_one_named(stub_server):
    server = stub_server(Replies(ENVOY_NO_HEALTHY_UPSTREAM, EPP_NO_PODS_GET))
    clock = FakeClock()
    with pytest.raises(LlmdError) as caught:
        wait_for_models(HttpTransport(server.url, timeout=5), 5, sleep=clock.sleep, clock=clock)
    assert caught.value.details["waited_for"] == ["no healthy upstream", "no pods available in datastore"]
    assert caught.value.details["not_ready"] == "no pods available in datastore"
    assert "the EPP (endpoint picker) has no Ready model server pod" in caught.value.msg


def test_a_500_without_a_marker_is_a_real_failure_at_once(stub_server):
    server = stub_server(Replies(PLAIN_500))
    with pytest.raises(LlmdError) as caught:
        wait_for_models(HttpTransport(server.url, timeout=5), 60, sleep=pytest.fail)
    assert caught.value.details["attempts"] == 1 and caught.value.details["status"] == 500
    assert "not_ready" not in caught.value.details or caught.value.details["not_ready"] is None


def test_a_refused_connection_is_waited_through_and_explained():
    with socket.socket() as probe:  # a port nothing listens on, as kube-proxy REJECTs a Service with no endpoints
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = FakeClock()
    with pytest.raises(LlmdError) as caught:
        wait_for_models(HttpTransport("http://127.0.0.1:%d" % port, timeout=2), 3, sleep=clock.sleep, clock=clock)
    assert caught.value.details["not_ready"] == "connection refused" and caught.value.details["attempts"] > 1
    assert "kube-proxy rejects the connection" in caught.value.details["meaning"]


@pytest.mark.parametrize("message", ['no service port "" found for service "optimized-baseline-epp"',
                                     'no service port 8080 found for service "optimized-baseline-epp"',
                                     "error trying to reach service: dial tcp: lookup tcp/web: unknown port"])
def test_an_api_server_error_about_the_request_is_never_waited_on(stub_server, message):
    answer = status(503, "ServiceUnavailable", message)
    assert not_ready_reason(answer[0], answer[2]) is None
    server = stub_server(Replies(answer))
    with pytest.raises(LlmdError) as caught:
        wait_for_models(HttpTransport(server.url, timeout=5), 60, sleep=pytest.fail)
    assert caught.value.details["attempts"] == 1
    assert "refused the proxy request itself" in caught.value.hint
    assert "backends do not" not in caught.value.msg + caught.value.hint
