# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.llmd.verify.plugins.module_utils._diagnosis import likely_cause
from ansible_collections.llmd.verify.plugins.module_utils._report import normalize_checks


@pytest.mark.parametrize("result, expected", [
    ({"status": 503, "error": {"body": "no healthy upstream"}}, "no Ready model server"),
    ({"status": 502, "error": {"body": ""}}, "routing-proxy sidecar cannot reach vLLM"),
    ({"status": 503, "error": {"message": "The decode node is not ready. Please try again later.",
                               "type": "ServiceUnavailable"}}, "routing-proxy sidecar"),
    ({"status": 404, "error": {"message": "The model `nope` does not exist.", "type": "NotFoundError"}}, "model is not served"),
    ({"status": 404, "error": {"body": "404 page not found"}}, "nothing routes this path"),
    ({"status": 500, "error": {"body": "InferencePool not found"}}, "another API group"),
    ({"status": 504, "error": {"body": "upstream request timeout"}}, "a timeout on the way"),
    ({"status": 429, "error": {"message": "queue full"}}, "saturated"),
    ({"status": 200, "error": {"body": "<html><body>Application is not available</body></html>"}}, "HTML page"),
    ({"phase": "connect", "msg": "Connection refused by 127.0.0.1:8000"}, "nothing listens"),
    ({"phase": "connect", "msg": "connect timed out after 5 s"}, "does not answer"),
    ({"msg": "pods/portforward is forbidden: cannot create"}, "docs/rbac.md"),
    # A cluster that cannot be reached at all: its API server, not an endpoint, is what does not answer.
    ({"msg": "cannot reach the Kubernetes API server at https://127.0.0.1:9: HTTPSConnection(host='127.0.0.1', "
             "port=9): Failed to establish a new connection: [Errno 111] Connection refused"},
     "Kubernetes API server does not answer"),
    ({"msg": "cannot reach the Kubernetes API server at https://10.0.0.1:6443: [SSL: CERTIFICATE_VERIFY_FAILED] "
             "certificate verify failed"}, "TLS certificate was not accepted"),
    # What the faults target's sandbox faults produced (tests/integration/targets/faults).
    ({"phase": "first byte", "msg": "http://10.0.0.2:9003/v1/models: first byte timed out: connected, but no "
                                    "response within 2.0 s"}, "a timeout on the way"),
    ({"phase": "stream", "status": 200, "msg": "http://10.0.0.2:9004/v1/completions: stream timed out: no data for "
                                               "2.0 s while reading the response body (200 bytes received)"},
     "a timeout on the way"),
    ({"phase": "connect", "msg": "https://gateway.example:6443/v1/models: TLS failed: hostname 'gateway.example' "
                                 "doesn't match either of '127.0.0.1', 'localhost'"}, "for another host name"),
    ({"status": 200, "msg": "http://10.0.0.2:9005/v1/completions: HTTP 200 but the answer is wrong: the connection "
                            "ended before the body was complete (('Connection broken: IncompleteRead(0 bytes read)'"},
     "cut in the middle of the answer"),
    ({"msg": "cannot load the Kubernetes configuration: Invalid kube-config file. Expected object with name "
             "no-such-context in ********/contexts list"}, "the context"),
    # The soak's gateway pod replaced behind the play's port-forward, between two requests, and again on the retry.
    ({"phase": "first byte", "msg": "http://127.0.0.1:46639/v1/completions: the connection was closed before any "
                                    "answer (Remote end closed connection without response)"}, "pod restarting"),
])
def test_rules_name_the_cause(result, expected):
    assert expected in likely_cause(result)


def test_no_rule_no_cause_and_never_raises():
    assert likely_cause({}) == ""
    assert likely_cause(None) == ""
    assert likely_cause({"status": "garbage", "error": "plain string"}) == ""


def test_report_fills_the_cause_of_failed_checks_only():
    checks = normalize_checks([
        {"name": "completions", "status": "failed", "details": {"status": 503, "error": {"body": "no healthy upstream"}}},
        {"name": "models", "status": "passed", "details": {"status": 503, "error": {"body": "no healthy upstream"}}},
        {"name": "chat", "status": "failed", "cause": "given by the role", "details": {"status": 404}},
    ])
    assert "no Ready model server" in checks[0]["cause"]
    assert checks[1]["cause"] == ""
    assert checks[2]["cause"] == "given by the role"


def test_causes_of_the_real_stacks_answers():
    assert "no credentials reached" in likely_cause({"status": 403, "msg": 'services is forbidden: User "system:anonymous" cannot get'})
    assert "EPP has no Ready model server" in likely_cause(
        {"status": 500, "error": {"message": "inference gateway: Internal - no pods available in datastore"}})
    assert "EPP has no Ready model server" in likely_cause({"status": 503, "error": {"message": "inference error: failed to find candidate pods"}})
    assert "port the Service or pod does not have" in likely_cause(
        {"status": 503, "error": {"message": 'no service port "" found for service "optimized-baseline-epp"'}})
    assert "ext_proc call to the EPP failed" in likely_cause({"status": 500, "error": {"message": "empty body"}})
