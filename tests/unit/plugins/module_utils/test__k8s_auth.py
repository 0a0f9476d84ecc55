# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The auth options behave as kubernetes.core's: aliases and K8S_AUTH_* environment variables."""

from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import (
    K8S_AUTH_ARG_SPEC,
    auth_options,
    k8s_auth_argument_spec,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("K8S_AUTH_KUBECONFIG", "K8S_AUTH_VERIFY_SSL", "K8S_AUTH_VALIDATE_CERTS", "K8S_AUTH_SSL_CA_CERT",
                 "K8S_AUTH_IMPERSONATE_GROUPS", "K8S_AUTH_API_KEY", "K8S_AUTH_CONTEXT"):
        monkeypatch.delenv(name, raising=False)


def validate(params):
    result = ArgumentSpecValidator(k8s_auth_argument_spec()).validate(params)
    assert not result.error_messages
    return result.validated_parameters


def test_option_names_and_aliases_are_kubernetes_cores():
    assert set(K8S_AUTH_ARG_SPEC) == {"kubeconfig", "context", "host", "api_key", "username", "password",
                                      "validate_certs", "ca_cert", "client_cert", "client_key", "proxy", "no_proxy",
                                      "impersonate_user", "impersonate_groups"}
    params = validate({"verify_ssl": False, "ssl_ca_cert": "/ca", "cert_file": "/c", "key_file": "/k"})
    assert (params["validate_certs"], params["ca_cert"], params["client_cert"], params["client_key"]) == (
        False, "/ca", "/c", "/k")


def test_secrets_are_no_log():
    assert all(K8S_AUTH_ARG_SPEC[name].get("no_log") for name in ("api_key", "password", "kubeconfig"))


def test_environment_fallbacks(monkeypatch):
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", "/tmp/kc")
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "no")
    monkeypatch.setenv("K8S_AUTH_IMPERSONATE_GROUPS", "dev,ops")
    params = validate({"context": "given"})
    assert params["kubeconfig"] == "/tmp/kc"
    assert params["validate_certs"] is False
    assert params["impersonate_groups"] == ["dev", "ops"]
    assert params["context"] == "given"


def test_given_values_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("K8S_AUTH_API_KEY", "from-env")
    assert validate({"api_key": "given"})["api_key"] == "given"


def test_the_spec_is_copied_for_each_module():
    spec = k8s_auth_argument_spec(namespace=dict(type="str"))
    spec["host"]["default"] = "x"
    assert "default" not in K8S_AUTH_ARG_SPEC["host"] and "namespace" in spec


def test_auth_options_keeps_only_auth():
    assert auth_options({"host": "h", "namespace": "n"}) == dict.fromkeys(K8S_AUTH_ARG_SPEC, None) | {"host": "h"}
