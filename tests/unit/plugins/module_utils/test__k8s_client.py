# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client factory and error mapping, with the real kubernetes client talking to a small local server
that records what arrives on the wire (loopback only, bounded by timeouts)."""

from __future__ import annotations

import json
import socket
import sys

import pytest
import yaml

from ansible_collections.llmd.verify.plugins.module_utils import _k8s_client as kc
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError

# The stub API server and the isolation from this machine's kubeconfig: fixtures of tests/unit/conftest.py.
pytestmark = pytest.mark.usefixtures("isolated")


def kubeconfig(tmp_path, server, user):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sandbox",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "c", "user": "u"}},
                     {"name": "other", "context": {"cluster": "c", "user": "u2"}}],
        "users": [{"name": "u", "user": user}, {"name": "u2", "user": {"token": "other-token"}}]}))
    return str(path)


def list_services(params, namespace="llm-d"):
    return kc.k8s_get(kc.get_api_client(params), "/api/v1/namespaces/{namespace}/services", verb="list",
                      resource="services", namespace=namespace)


def header(request, name):
    return [value for key, value in request["header_lines"] if key.lower() == name.lower()]


def test_kubeconfig_token_reaches_the_server_and_the_wire_json_comes_back(k8s_api, tmp_path):
    body = list_services({"kubeconfig": kubeconfig(tmp_path, k8s_api.url, {"token": "t0k"})})
    assert body["items"][0]["spec"]["clusterIP"] == "10.96.0.1"  # camelCase, as the API server sent it
    assert k8s_api.requests[0]["path"] == "/api/v1/namespaces/llm-d/services"
    assert header(k8s_api.requests[0], "Authorization") == ["Bearer t0k"]


def test_path_names_are_quoted_the_query_encoded_and_a_stream_left_unread(k8s_api):
    k8s_api.routes["/api/v1/namespaces/llm-d/pods/p%3Ax/log"] = (200, {"line": 1})
    response = kc.k8s_get(kc.get_api_client({"host": k8s_api.url, "api_key": "k"}),
                          "/api/v1/namespaces/{namespace}/pods/{name}/log",
                          [("container", "vllm"), ("follow", False), ("labelSelector", "a=b,c in (d)")],
                          verb="get", resource="pods/log", namespace="llm-d", name="p:x", stream=True)
    try:
        assert json.loads(response.read()) == {"line": 1}  # the urllib3 response, not yet read
    finally:
        response.release_conn()
    assert k8s_api.requests[0]["path"] == ("/api/v1/namespaces/llm-d/pods/p%3Ax/log"
                                           "?container=vllm&follow=false&labelSelector=a%3Db%2Cc%20in%20%28d%29")
    assert header(k8s_api.requests[0], "Accept") == ["application/json"]


def test_context_and_kubeconfig_as_dict(k8s_api, tmp_path):
    config = yaml.safe_load(open(kubeconfig(tmp_path, k8s_api.url, {"token": "t0k"})))
    list_services({"kubeconfig": config, "context": "other"})
    assert header(k8s_api.requests[0], "Authorization") == ["Bearer other-token"]


def test_exec_plugin_kubeconfig(k8s_api, tmp_path):
    credential = {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": "from-exec"}}
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                     "args": ["-c", "print(%r)" % json.dumps(credential)]}}
    list_services({"kubeconfig": kubeconfig(tmp_path, k8s_api.url, user)})
    assert header(k8s_api.requests[0], "Authorization") == ["Bearer from-exec"]


def test_host_and_api_key_need_no_kubeconfig_and_impersonation_sends_one_line_per_group(k8s_api):
    list_services({"host": k8s_api.url + "/", "api_key": "k", "impersonate_user": "alice",
                   "impersonate_groups": ["dev", "ops"]})
    request = k8s_api.requests[0]
    assert header(request, "Authorization") == ["Bearer k"]
    assert header(request, "Impersonate-User") == ["alice"]
    assert header(request, "Impersonate-Group") == ["dev", "ops"]


def test_api_key_overrides_the_kubeconfig_user(k8s_api, tmp_path):
    list_services({"kubeconfig": kubeconfig(tmp_path, k8s_api.url, {"token": "t0k"}), "api_key": "override"})
    assert header(k8s_api.requests[0], "Authorization") == ["Bearer override"]


def test_default_kubeconfig_from_the_environment(k8s_api, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path, k8s_api.url, {"token": "env"}))
    list_services({})
    assert header(k8s_api.requests[0], "Authorization") == ["Bearer env"]


def test_clients_are_cached_per_configuration_and_kubeconfig_content(k8s_api, tmp_path):
    path = kubeconfig(tmp_path, k8s_api.url, {"token": "a"})
    first = kc.get_api_client({"kubeconfig": path})
    assert kc.get_api_client({"kubeconfig": path}) is first
    kubeconfig(tmp_path, k8s_api.url, {"token": "b"})
    assert kc.get_api_client({"kubeconfig": path}) is not first


@pytest.mark.parametrize("status, reason, pattern", [
    (401, "Unauthorized", r"API server at http://127\.0\.0\.1:\d+ rejected the credentials \(401 Unauthorized\)"),
    (403, "Forbidden", r"may not list services in namespace llm-d \(403 Forbidden\): services is forbidden: User"),
    (500, "InternalError", r"list services in namespace llm-d failed: HTTP 500"),
])
def test_kubernetes_errors_say_what_is_wrong(k8s_api, status, reason, pattern):
    k8s_api.answer = (status, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": status,
                               "message": 'services is forbidden: User "x" cannot list resource "services"'})
    with pytest.raises(LlmdError, match=pattern) as failure:
        list_services({"host": k8s_api.url, "api_key": "k"})
    assert failure.value.details["status"] == status
    if status == 403:
        assert "grant 'list' on 'services'" in failure.value.hint


def test_not_found_is_its_own_type(k8s_api):
    k8s_api.answer = (404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": "the server could not find it"})
    with pytest.raises(kc.K8sNotFound, match="services not found in namespace llm-d"):
        list_services({"host": k8s_api.url, "api_key": "k"})


def test_unreachable_api_server_names_the_host():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        host = "http://127.0.0.1:%d" % probe.getsockname()[1]
    with pytest.raises(LlmdError, match="cannot reach the Kubernetes API server at %s" % host):
        list_services({"host": host, "api_key": "k"})


def test_missing_configuration_is_explained(tmp_path):
    with pytest.raises(LlmdError, match="kubeconfig .*nope does not exist"):
        kc.get_api_client({"kubeconfig": str(tmp_path / "nope")})
    with pytest.raises(LlmdError, match="no Kubernetes configuration: no kubeconfig at .* and not running in a pod"):
        kc.get_api_client({})


def test_unknown_context_is_explained(k8s_api, tmp_path):
    with pytest.raises(LlmdError, match="cannot load the Kubernetes configuration: .*nosuch"):
        kc.get_api_client({"kubeconfig": kubeconfig(tmp_path, k8s_api.url, {"token": "t"}), "context": "nosuch"})


def test_a_403_for_system_anonymous_says_no_credentials_arrived(k8s_api, tmp_path):
    k8s_api.answer = (403, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                            "message": 'services is forbidden: User "system:anonymous" cannot list resource "services" in '
                                       'API group "" in the namespace "llm-d"'})
    with pytest.raises(LlmdError) as failure:
        list_services({"kubeconfig": kubeconfig(tmp_path, k8s_api.url, {})})
    assert failure.value.msg.startswith("no credentials reached the Kubernetes API server: it handled the request as "
                                        "system:anonymous")
    assert "kubeconfig" in failure.value.hint and "context" in failure.value.hint and "grant" not in failure.value.hint
    assert failure.value.details["status"] == 403 and failure.value.details["anonymous"] is True
