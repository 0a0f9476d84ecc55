# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""stack_info end to end through the real kubernetes client, against a stub API server serving recorded lists."""

from __future__ import annotations

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.llmd.verify.plugins.module_utils import _stack  # noqa: E402
from ansible_collections.llmd.verify.plugins.modules import stack_info  # noqa: E402
from ansible_collections.llmd.verify.tests.unit.plugins.module_utils.stack_fixtures import recorded  # noqa: E402
from ansible_collections.llmd.verify.tests.unit.plugins.modules import module_runner  # noqa: E402

# The stub API server (k8s_api) and the isolation from this machine's kubeconfig: fixtures of tests/unit/conftest.py.
pytestmark = pytest.mark.usefixtures("isolated")

TOKEN = "stub-token-8f3a2c91d7"  # no_log hides every occurrence of the token in the result
FORBIDDEN = (403, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                   "message": 'gatewayclasses.gateway.networking.k8s.io is forbidden: User "sandbox-readonly" cannot '
                              'list resource "gatewayclasses" in API group "gateway.networking.k8s.io" at the '
                              'cluster scope'})


def serve(k8s_api, scenario):
    data = recorded(scenario)
    k8s_api.routes["/apis"] = (200, data["apis"])
    for key, (group, version, plural, namespaced, _family) in _stack.READS.items():
        path = _stack._path(group, version, plural, namespaced).replace("{namespace}", data["namespace"])
        if data.get(key) is not None:
            k8s_api.routes[path] = (200, data[key])
    k8s_api.answer = (404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": "not found"})
    return data["namespace"]


def test_healthy_namespace(k8s_api, capsys):
    namespace = serve(k8s_api, "optimized-baseline")
    code, result = module_runner.run_module(stack_info, {"namespace": namespace, "host": k8s_api.url, "api_key": TOKEN,
                                                         "model": "Qwen/Qwen3-32B", "_ansible_check_mode": True},
                                            capsys)
    assert code == 0 and result["changed"] is False
    assert result["mode"] == "standalone" and result["summary"]["error"] == 0
    assert [p["rule"] for p in result["problems"]] == ["epp_metrics_need_token"]
    paths = [request["path"].split("?")[0] for request in k8s_api.requests]
    assert paths[0] == "/apis" and len(paths) == len(set(paths)) == 1 + len(_stack.READS)  # one list per kind


def test_refused_read_is_reported_and_the_rest_still_runs(k8s_api, capsys):
    namespace = serve(k8s_api, "sim")
    k8s_api.routes["/apis/gateway.networking.k8s.io/v1/gatewayclasses"] = FORBIDDEN
    code, result = module_runner.run_module(stack_info, {"namespace": namespace, "host": k8s_api.url, "api_key": TOKEN},
                                            capsys)
    assert code == 0
    assert [r["read"] for r in result["refused"]] == ["gatewayclasses"]
    assert result["inventory"]["gateways"][0]["accepted"]["status"] == "True"
    assert [p["rule"] for p in result["problems"] if p["severity"] == "warning"] == ["read_refused"]


def test_bad_credentials_fail_with_a_hint(k8s_api, capsys):
    k8s_api.answer = (401, {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "Unauthorized"})
    code, result = module_runner.run_module(stack_info, {"namespace": "llm-d", "host": k8s_api.url, "api_key": TOKEN},
                                            capsys)
    assert code == 1 and "401" in result["msg"] and result["hint"]
