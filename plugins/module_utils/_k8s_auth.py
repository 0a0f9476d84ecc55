# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes auth options: one argument spec shared by every module and lookup.

Names, aliases and K8S_AUTH_* environment variables are kubernetes.core's, so `module_defaults:
group/llmd.verify.k8s` and habits from kubernetes.core carry over. The doc fragment
plugins/doc_fragments/k8s_auth.py documents exactly this dict.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback


def _env(*names):
    return {"fallback": (env_fallback, list(names))}


K8S_AUTH_ARG_SPEC = {
    "kubeconfig": dict(type="raw", no_log=True, **_env("K8S_AUTH_KUBECONFIG")),
    "context": dict(type="str", **_env("K8S_AUTH_CONTEXT")),
    "host": dict(type="str", **_env("K8S_AUTH_HOST")),
    "api_key": dict(type="str", no_log=True, **_env("K8S_AUTH_API_KEY")),
    "username": dict(type="str", **_env("K8S_AUTH_USERNAME")),
    "password": dict(type="str", no_log=True, **_env("K8S_AUTH_PASSWORD")),
    "validate_certs": dict(type="bool", aliases=["verify_ssl"], **_env("K8S_AUTH_VERIFY_SSL", "K8S_AUTH_VALIDATE_CERTS")),
    "ca_cert": dict(type="path", aliases=["ssl_ca_cert"], **_env("K8S_AUTH_SSL_CA_CERT", "K8S_AUTH_CA_CERT")),
    "client_cert": dict(type="path", aliases=["cert_file"], **_env("K8S_AUTH_CERT_FILE", "K8S_AUTH_CLIENT_CERT")),
    "client_key": dict(type="path", aliases=["key_file"], no_log=False,
                       **_env("K8S_AUTH_KEY_FILE", "K8S_AUTH_CLIENT_KEY")),
    "proxy": dict(type="str", **_env("K8S_AUTH_PROXY")),
    "no_proxy": dict(type="str", **_env("K8S_AUTH_NO_PROXY")),
    "impersonate_user": dict(type="str", **_env("K8S_AUTH_IMPERSONATE_USER")),
    "impersonate_groups": dict(type="list", elements="str", **_env("K8S_AUTH_IMPERSONATE_GROUPS")),
}

K8S_AUTH_OPTION_NAMES = tuple(K8S_AUTH_ARG_SPEC)


def k8s_auth_argument_spec(**extra):
    """A module's argument spec: the auth options plus the module's own (copies, so callers may edit)."""
    spec = {name: dict(definition) for name, definition in K8S_AUTH_ARG_SPEC.items()}
    spec.update(extra)
    return spec


def auth_options(params):
    """Only the auth options out of a module's or lookup's parameters (the client cache key)."""
    return {name: params.get(name) for name in K8S_AUTH_OPTION_NAMES}
