# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input for the readers of the Kubernetes API server's answers (_k8s_client, _k8s_status, _errors).

Whatever status and body the API server (or a proxy in front of it) sends, k8s_get returns the JSON of a 2xx or
raises an LlmdError whose message and hint are clear; the Status readers never raise.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils import _k8s_client as kc
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_status import (
    is_anonymous,
    proxy_not_ready,
    proxy_request_error,
    status_object,
)
from ansible_collections.llmd.verify.tests.unit.plugins.bad_input import (
    BYTES,
    DEEP_JSON,
    JSON,
    PROPERTIES,
    TEXT,
    assert_clear_error,
)
from ansible_collections.llmd.verify.tests.unit.conftest import StubServer  # module-scoped: one server for every example

kubernetes = pytest.importorskip("kubernetes")

STATUS_BODIES = st.builds(lambda code, reason, message, extra: dict(
    extra, kind="Status", apiVersion="v1", status="Failure", code=code, reason=reason, message=message),
    st.integers(200, 599) | JSON, TEXT | JSON, TEXT | JSON, st.dictionaries(st.text(max_size=8), JSON, max_size=3))
BODIES = BYTES | JSON | STATUS_BODIES | st.just(DEEP_JSON) | st.just(b"<html><body>502 Bad Gateway</body></html>")


class Answers:
    """The stub API server's answer, set by each example."""

    answer = (200, {}, b"{}")

    def __call__(self, request):
        return self.answer


@pytest.fixture(scope="module")
def api_server():
    server = StubServer(Answers())
    try:
        yield server
    finally:
        server.stop()


def _client(server):
    kc._clients.clear()  # pylint: disable=protected-access
    return kc.get_api_client({"host": server.url, "api_key": "token"})


@PROPERTIES
@given(st.integers(200, 599), st.sampled_from(["application/json", "text/html", "text/plain"]), BODIES,
       TEXT, TEXT | st.none(), st.booleans())
def test_any_api_server_answer_is_its_json_or_a_clear_error(api_server, status, content_type, body, resource, name,
                                                            namespaced):
    api_server.httpd.app.answer = (status, {"Content-Type": content_type}, body)
    try:
        kc.k8s_get(_client(api_server), "/api/v1/namespaces/{namespace}/pods", verb="get", resource=resource or "pods",
                   namespace="llm-d" if namespaced else None, name=name)
    except LlmdError as err:
        assert_clear_error(err, (body, resource, name))
        assert err.details.get("status") in (None, status)


@PROPERTIES
@given(st.integers(0, 599) | st.none(), TEXT | st.none(), BODIES.map(lambda body: body if isinstance(body, bytes) else str(body)),
       TEXT, TEXT | st.none())
def test_api_error_of_any_exception_is_clear(status, reason, body, verb, namespace):
    exc = kubernetes.client.exceptions.ApiException(status=status, reason=reason)
    exc.body = body
    assert_clear_error(kc.kubernetes_error(exc, verb or "get", "pods", namespace, "p", "https://127.0.0.1:6443"),
                       (reason, body, verb, namespace))


@PROPERTIES
@given(BODIES.map(lambda body: body if isinstance(body, bytes) else str(body)) | JSON)
def test_the_status_readers_never_raise(data):
    obj = status_object(data)
    assert obj is None or obj["kind"] == "Status"
    for reader in (proxy_not_ready, proxy_request_error):
        assert reader(obj) is None or isinstance(reader(obj), str)
    assert is_anonymous(obj and obj.get("message") if isinstance(obj and obj.get("message"), str) else None) in (True, False)


def test_a_200_that_is_not_json_is_a_clear_error_not_a_json_traceback(api_server):
    api_server.httpd.app.answer = (200, {"Content-Type": "text/html"}, b"<html>a proxy's login page</html>")
    with pytest.raises(LlmdError) as caught:
        kc.k8s_get(_client(api_server), "/api/v1/namespaces/{namespace}/services", verb="list", resource="services",
                   namespace="llm-d")
    assert caught.value.msg == ("list services in namespace llm-d: the answer of %s (HTTP 200) is not JSON: "
                                "<html>a proxy's login page</html>" % api_server.url)
    assert caught.value.hint == "is host (or the kubeconfig's server) the Kubernetes API server itself, not a proxy or a web page?"


def test_a_status_message_of_a_megabyte_is_cut(api_server):
    exc = kubernetes.client.exceptions.ApiException(status=403, reason="Forbidden")
    exc.body = '{"kind": "Status", "message": "%s"}' % ("x" * 1000000)
    error = kc.kubernetes_error(exc, "get", "pods", "llm-d", "p")
    assert error.msg.startswith("the Kubernetes credentials may not get pods in namespace llm-d (403 Forbidden): xxx")
    assert len(error.msg) < 700


def test_a_status_nested_past_the_recursion_limit_is_no_status():
    assert status_object(DEEP_JSON) is None
    exc = kubernetes.client.exceptions.ApiException(status=500, reason="Internal Server Error")
    exc.body = DEEP_JSON.decode()
    assert kc.kubernetes_error(exc, "list", "pods", "llm-d").msg == "list pods in namespace llm-d failed: HTTP 500 Internal Server Error: Internal Server Error"
