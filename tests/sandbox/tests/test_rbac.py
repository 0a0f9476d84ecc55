"""Who may do what, decided by the real API server's authenticators and RBAC: the kubeconfig's contexts
`sandbox` (system:masters), `sandbox-readonly` (ClusterRole view in the scenario's readonly namespace),
`sandbox-none` (nothing), and a request with no credentials (system:anonymous)."""

import pytest
import requests
from cluster_harness import ECHO_NAMESPACE, kubectl
from kubernetes import client, config
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="module")
def echo(echo_sandbox):
    return echo_sandbox


def forbidden(user: str, verb: str, resource: str, namespace: str, name: str = "") -> str:
    subject = f'{resource} "{name}"' if name else resource
    return (f'Error from server (Forbidden): {subject} is forbidden: User "{user}" cannot {verb} resource '
            f'"{resource}" in API group "" in the namespace "{namespace}"')


def test_the_contexts_are_who_the_api_server_says(echo):
    for context, user, groups in (("sandbox", "sandbox-admin", "[system:masters system:authenticated]"),
                                  ("sandbox-readonly", "sandbox-readonly", "[system:authenticated]"),
                                  ("sandbox-none", "sandbox-none", "[system:authenticated]")):
        whoami = kubectl(echo.sandbox, "auth", "whoami", context=context).stdout
        assert f"Username    {user}" in whoami and f"Groups      {groups}" in whoami


def test_readonly_reads_its_namespace_and_nothing_else(echo):
    pods = kubectl(echo.sandbox, "get", "pods", "-o", "name", context="sandbox-readonly").stdout.split()
    assert f"pod/{echo.pod()}" in pods
    assert kubectl(echo.sandbox, "get", "deployment", "echo", "-o", "name", context="sandbox-readonly").stdout.strip() \
        == "deployment.apps/echo"
    elsewhere = kubectl(echo.sandbox, "get", "pods", "-n", "kube-system", context="sandbox-readonly", check=False)
    assert elsewhere.returncode == 1
    assert elsewhere.stderr.strip() == forbidden("sandbox-readonly", "list", "pods", "kube-system")
    delete = kubectl(echo.sandbox, "delete", "pod", "two-containers", "--dry-run=server", context="sandbox-readonly",
                     check=False)
    assert delete.stderr.strip() == forbidden("sandbox-readonly", "delete", "pods", ECHO_NAMESPACE, "two-containers")
    # `view` does not include Secrets
    secrets = kubectl(echo.sandbox, "get", "secrets", context="sandbox-readonly", check=False)
    assert secrets.stderr.strip() == forbidden("sandbox-readonly", "list", "secrets", ECHO_NAMESPACE)
    assert kubectl(echo.sandbox, "auth", "can-i", "get", "pods/log", context="sandbox-readonly").stdout.strip() == "yes"
    can_forward = kubectl(echo.sandbox, "auth", "can-i", "create", "pods/portforward", context="sandbox-readonly",
                          check=False)
    assert can_forward.stdout.strip() == "no"


def test_none_may_do_nothing(echo):
    result = kubectl(echo.sandbox, "get", "pods", context="sandbox-none", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == forbidden("sandbox-none", "list", "pods", ECHO_NAMESPACE)


def test_the_python_client_gets_the_same_403(echo):
    api_client = config.new_client_from_config(str(echo.sandbox.kubeconfig), context="sandbox-readonly")
    try:
        with pytest.raises(ApiException) as failure:
            client.CoreV1Api(api_client).list_namespaced_pod("kube-system")
    finally:
        api_client.close()
    assert failure.value.status == 403 and '"reason":"Forbidden"' in failure.value.body


def test_no_credentials_is_403_as_system_anonymous_not_401(echo):
    answer = requests.get(f"{echo.sandbox.api_server}/api/v1/namespaces/{ECHO_NAMESPACE}/pods",
                          verify=echo.sandbox.ca_file, timeout=10)
    assert answer.status_code == 403
    status = answer.json()
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403)
    assert status["message"] == ('pods is forbidden: User "system:anonymous" cannot list resource "pods" in API '
                                 f'group "" in the namespace "{ECHO_NAMESPACE}"')
    # ... while the public-info-viewer paths are open to anyone, as on any cluster
    assert requests.get(f"{echo.sandbox.api_server}/version", verify=echo.sandbox.ca_file, timeout=10).ok
    assert requests.get(f"{echo.sandbox.api_server}/livez", verify=echo.sandbox.ca_file, timeout=10).text == "ok"


def test_a_wrong_token_is_401(echo):
    answer = requests.get(f"{echo.sandbox.api_server}/api/v1/namespaces/{ECHO_NAMESPACE}/pods",
                          headers={"Authorization": "Bearer not-a-token"}, verify=echo.sandbox.ca_file, timeout=10)
    assert answer.status_code == 401 and answer.json()["reason"] == "Unauthorized"


def test_plain_http_to_the_api_port_is_refused(echo):
    # The real API server is TLS only (the old sandbox could serve plain http with tls=False).
    answer = requests.get(echo.sandbox.api_server.replace("https://", "http://") + "/version", timeout=10)
    assert answer.status_code == 400 and answer.text.strip() == "Client sent an HTTP request to an HTTPS server."
