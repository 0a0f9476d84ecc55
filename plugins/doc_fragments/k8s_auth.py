# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """The Kubernetes auth options (plugins/module_utils/_k8s_auth.py), named as in kubernetes.core."""

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - When neither this nor O(host) with credentials is given, the C(KUBECONFIG) environment variable or
        C(~/.kube/config) is used, and when there is no kubeconfig at all, the service account of the pod
        the task runs in (in-cluster configuration).
      - Kubeconfigs whose user runs an exec plugin (EKS, GKE, OIDC helpers) work; the plugin is run by the
        kubernetes client and its token refreshed when it expires.
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
    type: raw
  context:
    description:
      - The kubeconfig context to use instead of its current context.
      - Can also be set with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, overriding the kubeconfig's.
      - Can also be set with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token to authenticate with, overriding the kubeconfig's credentials.
      - Can also be set with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  username:
    description:
      - User name for HTTP basic authentication, with O(password). Only for API servers that accept it.
      - Can also be set with the E(K8S_AUTH_USERNAME) environment variable.
    type: str
  password:
    description:
      - Password for HTTP basic authentication, with O(username).
      - Can also be set with the E(K8S_AUTH_PASSWORD) environment variable.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - Can also be set with the E(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA certificate (the full chain) that signed the API server's certificate.
      - Can also be set with the E(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate to authenticate with, with O(client_key).
      - Can also be set with the E(K8S_AUTH_CERT_FILE) environment variable.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert).
      - Can also be set with the E(K8S_AUTH_KEY_FILE) environment variable.
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP proxy to reach the API server through.
      - Can also be set with the E(K8S_AUTH_PROXY) environment variable.
    type: str
  no_proxy:
    description:
      - Comma-separated hosts, domains, IP addresses or CIDRs that bypass O(proxy).
      - Can also be set with the E(K8S_AUTH_NO_PROXY) environment variable.
    type: str
  impersonate_user:
    description:
      - User name to impersonate for the requests (the C(Impersonate-User) header).
      - Can also be set with the E(K8S_AUTH_IMPERSONATE_USER) environment variable.
    type: str
  impersonate_groups:
    description:
      - Groups to impersonate for the requests, one C(Impersonate-Group) header each.
      - Can also be set with the E(K8S_AUTH_IMPERSONATE_GROUPS) environment variable (comma-separated).
    type: list
    elements: str
notes:
  - The options, their aliases and their environment variables are those of the M(kubernetes.core.k8s)
    modules, so C(module_defaults) for C(group/llmd.verify.k8s) can carry the same values.
"""
