# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A cached kubernetes ApiClient built from the auth options, and requests that fail with clear messages.

    api_client = get_api_client(params)                 # params: module.params or a lookup's options
    services = k8s_get(api_client, "/api/v1/namespaces/{namespace}/services", verb="list", resource="services",
                       namespace="llm-d")["items"]     # the wire JSON (camelCase), as kubectl -o json shows it
    pod = k8s_get(api_client, "/api/v1/namespaces/{namespace}/pods/{name}", verb="get", resource="pods",
                  namespace=ns, name=name)

Requests go through the ApiClient's param_serialize and call_api, not the generated API classes
(CoreV1Api and the others): importing those loads hundreds of model modules, most of a module's run time.

Configuration, in order: explicit O(host) with credentials; else O(kubeconfig) (path or dict) / O(context);
else the default kubeconfig (KUBECONFIG or ~/.kube/config); else the in-cluster service account. Exec
plugins (EKS, GKE, OIDC helpers) work because the kubernetes client's own loader runs them and refreshes
their tokens. Errors become LlmdError: 401 and 403 name what the credentials lack (a 403 for system:anonymous:
that no credentials arrived at all), 404 is K8sNotFound
(callers decide whether absence is an error), connection failures name the API server.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.util
import json
import os
import traceback

from ansible_collections.llmd.verify.plugins.module_utils._errors import MESSAGE_EXCERPT, LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import auth_options
from ansible_collections.llmd.verify.plugins.module_utils._k8s_status import ANONYMOUS_HINT, anonymous_message, is_anonymous

# The kubernetes package is imported on first use (_import_kubernetes): it costs a module process about 0.3 s,
# which a run that never talks to the API server (writing a report, stopping a port-forward) need not pay.
kubernetes = urllib3 = ApiException = ConfigException = None
HAS_KUBERNETES = importlib.util.find_spec("kubernetes") is not None
KUBERNETES_IMPORT_ERROR = None if HAS_KUBERNETES else "ModuleNotFoundError: No module named 'kubernetes'"

# How much of what the API server said a message quotes.
# Connect timeout and read timeout of a call unless the caller passes _request_timeout itself.
DEFAULT_REQUEST_TIMEOUT = (10, 60)

_clients = {}


class K8sNotFound(LlmdError):
    """The API server answered 404: the object, or the whole API (a CRD that is not installed), is absent."""


class _HeaderName(str):
    """A header name that is unique as a dict key, so one header can be sent once per value.

    Kubernetes reads every Impersonate-Group line as one group; a comma-joined value would be one group
    named "a,b". urllib3 turns the header dict into an HTTPHeaderDict, which sends each entry as a line.
    """

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def lower(self):
        return self


def _import_kubernetes():
    global kubernetes, urllib3, ApiException, ConfigException  # pylint: disable=global-statement
    if ConfigException is not None:
        return
    try:
        client_package = importlib.import_module("kubernetes")
        exceptions = importlib.import_module("kubernetes.client.exceptions")
        config_exception = importlib.import_module("kubernetes.config.config_exception")
        http_package = importlib.import_module("urllib3")
        importlib.import_module("urllib3.exceptions")
    except ImportError as exc:
        raise LlmdError("the kubernetes Python package cannot be imported: %s" % exc, hint="pip install kubernetes",
                        exception=traceback.format_exc()) from exc
    kubernetes, urllib3, ApiException = client_package, http_package, exceptions.ApiException
    ConfigException = config_exception.ConfigException


def get_api_client(params):
    """An ApiClient for the auth options in params, built once per configuration and process."""
    if not HAS_KUBERNETES:
        raise LlmdError("the kubernetes Python package is required", hint="pip install kubernetes",
                        exception=KUBERNETES_IMPORT_ERROR)
    _import_kubernetes()
    options = auth_options(params)
    key = _cache_key(options)
    if key not in _clients:
        _clients[key] = _build_client(options)
    return _clients[key]


def _default_kubeconfig():
    return os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


def config_digest(params):
    """A digest of where the client would find its cluster, without building it (or importing kubernetes): the
    auth options that name no credential, and the kubeconfig's bytes. Equal digests mean the same cluster and
    context; it is kept in port-forward state files, so no credential option goes into it."""
    options = {name: value for name, value in auth_options(params).items()
               if name not in ("api_key", "username", "password")}
    return _cache_key(options)


def _cache_key(options):
    """Digest of the options and of the kubeconfig file's bytes, so an edited kubeconfig gives a new client."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    kubeconfig = options.get("kubeconfig")
    paths = kubeconfig if isinstance(kubeconfig, str) else (None if kubeconfig else _default_kubeconfig())
    for path in (paths or "").split(os.pathsep):
        if path and os.path.isfile(os.path.expanduser(path)):
            with open(os.path.expanduser(path), "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def _has_credentials(options):
    return bool(options.get("api_key") or (options.get("username") and options.get("password"))
                or (options.get("client_cert") and options.get("client_key")))


def _load_kubeconfig(options, configuration):
    """Fill configuration from a kubeconfig (or the service account); False when there is none at all."""
    kubeconfig, context = options.get("kubeconfig"), options.get("context")
    if isinstance(kubeconfig, dict):
        kubernetes.config.load_kube_config_from_dict(kubeconfig, context=context, client_configuration=configuration,
                                                     persist_config=False)
        return True
    if kubeconfig is not None and not isinstance(kubeconfig, str):
        raise LlmdError("kubeconfig must be a path or a dict, not %s" % type(kubeconfig).__name__)
    path = os.path.expanduser(kubeconfig) if kubeconfig else _default_kubeconfig()
    if kubeconfig and not os.path.isfile(path):
        raise LlmdError("kubeconfig %s does not exist" % kubeconfig, hint="check the kubeconfig option")
    if any(os.path.isfile(os.path.expanduser(p)) for p in path.split(os.pathsep) if p):
        kubernetes.config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                           persist_config=False)
        return True
    if context:
        raise LlmdError("context %s was given but there is no kubeconfig (%s)" % (context, path))
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except ConfigException:
        return False
    return True


def _configuration(options):
    configuration = kubernetes.client.Configuration()
    host = options.get("host")
    try:
        loaded = bool(host and _has_credentials(options)) or _load_kubeconfig(options, configuration)
    except ConfigException as exc:
        raise LlmdError("cannot load the Kubernetes configuration: %s" % exc,
                        hint="check the kubeconfig, its context and any exec plugin it runs") from exc
    if not loaded and not host:
        raise LlmdError("no Kubernetes configuration: no kubeconfig at %s and not running in a pod" % _default_kubeconfig(),
                        hint="set the kubeconfig option (or K8S_AUTH_KUBECONFIG / KUBECONFIG), or host and api_key")
    if host:
        configuration.host = host.rstrip("/")
    if options.get("api_key"):
        configuration.api_key = {"authorization": "Bearer %s" % options["api_key"]}
        configuration.refresh_api_key_hook = None  # an exec plugin of the kubeconfig must not replace it
    elif options.get("username") and options.get("password"):
        pair = "%s:%s" % (options["username"], options["password"])
        configuration.api_key = {"authorization": "Basic %s" % base64.b64encode(pair.encode()).decode()}
        configuration.refresh_api_key_hook = None
    for option, attribute in (("validate_certs", "verify_ssl"), ("ca_cert", "ssl_ca_cert"),
                              ("client_cert", "cert_file"), ("client_key", "key_file"),
                              ("proxy", "proxy"), ("no_proxy", "no_proxy")):
        if options.get(option) is not None:
            setattr(configuration, attribute, options[option])
    return configuration


def _build_client(options):
    client = kubernetes.client.ApiClient(_configuration(options))
    if options.get("impersonate_user"):
        client.set_default_header("Impersonate-User", options["impersonate_user"])
    for group in options.get("impersonate_groups") or []:
        client.set_default_header(_HeaderName("Impersonate-Group"), group)
    return client


def api_server(api_client):
    """The API server's address as the configuration names it, for messages."""
    return api_client.configuration.host


def _status_message(exc):
    """The message of the Status object the API server sent (its first 500 characters), else the HTTP reason."""
    try:
        message = json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError, RecursionError):
        message = exc.reason
    return str(message)[:MESSAGE_EXCERPT]


def _where(namespace):
    return " in namespace %s" % namespace if namespace else " at the cluster scope"


def kubernetes_error(exc, verb, resource, namespace=None, name=None, host="the Kubernetes API server"):
    """The LlmdError for an ApiException, saying what the credentials lack or what is missing."""
    message = _status_message(exc)
    what = "%s %s" % (resource, name) if name else resource
    if exc.status == 401:
        return LlmdError("the Kubernetes API server at %s rejected the credentials (401 Unauthorized): %s" % (host, message),
                         hint="the token or certificate is invalid or expired: check the kubeconfig, context or api_key",
                         status=401)
    if exc.status == 403 and is_anonymous(message):
        return LlmdError(anonymous_message(message), hint=ANONYMOUS_HINT, status=403, verb=verb, resource=resource,
                         anonymous=True)
    if exc.status == 403:
        return LlmdError("the Kubernetes credentials may not %s %s%s (403 Forbidden): %s"
                         % (verb, resource, _where(namespace), message),
                         hint="grant '%s' on '%s' to this user (see docs/rbac.md) or use other credentials" % (verb, resource),
                         status=403, verb=verb, resource=resource)
    if exc.status == 404:
        return K8sNotFound("%s not found%s (404 from %s)" % (what, _where(namespace), host), status=404)
    if not exc.status:  # the client reports TLS failures as an ApiException without status
        return LlmdError("cannot reach the Kubernetes API server at %s: %s" % (host, exc.reason or "no HTTP answer"),
                         hint="check the server address, its CA (ca_cert) and validate_certs")
    return LlmdError("%s %s%s failed: HTTP %s %s: %s" % (verb, what, _where(namespace), exc.status, exc.reason, message),
                     status=exc.status)


def _unreachable(exc, host):
    reason = getattr(exc, "reason", None) or exc
    hint = "check the server address in the kubeconfig (or host), that the cluster is up, and any proxy"
    if isinstance(reason, urllib3.exceptions.SSLError):
        hint = "the TLS handshake failed: check ca_cert (or the kubeconfig's certificate-authority) and validate_certs"
    return LlmdError("cannot reach the Kubernetes API server at %s: %s" % (host, reason), hint=hint)


def k8s_request(api_client, method, path, path_params=None, query=None, headers=None, body=None,
                timeout=DEFAULT_REQUEST_TIMEOUT):
    """Send one request with the client's credentials; the RESTResponse, its body unread, its status unchecked.

    param_serialize fills {placeholders} of path from path_params (quoted), adds the token (refreshing an
    exec plugin's), impersonation and default headers; call_api sends it with the client's TLS and proxy.
    query is a list of (name, value) pairs; booleans are sent as true/false.
    """
    serialized = api_client.param_serialize(method=method, resource_path=path, path_params=path_params,
                                            query_params=list(query or []), header_params=dict(headers or {}),
                                            body=body, auth_settings=["BearerToken"])
    return api_client.call_api(*serialized, _request_timeout=timeout)


def k8s_get(api_client, path, query=None, *, verb, resource, namespace=None, name=None, stream=False,
            timeout=DEFAULT_REQUEST_TIMEOUT):
    """GET path; the response's JSON as the API server sent it, or with stream the urllib3 response unread.

    path may hold {namespace} and {name}, filled from those arguments. verb, resource, namespace and name
    also describe the request for messages, e.g. verb="list", resource="services" or
    "gateways.gateway.networking.k8s.io". Failures become LlmdError (K8sNotFound for 404). timeout is
    (connect, read) in seconds; None means no timeout, for follows.
    """
    _import_kubernetes()  # an API client made elsewhere (a test's) may come before any of ours
    host = api_server(api_client)
    path_params = {key: value for key, value in (("namespace", namespace), ("name", name)) if value is not None}
    try:
        # application/json, as the generated API classes ask (a pod log comes as text/plain all the same).
        response = k8s_request(api_client, "GET", path, path_params, query, {"Accept": "application/json"},
                               timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException(http_resp=response)  # the generated API classes raise the same, mapped below
    except ApiException as exc:
        raise kubernetes_error(exc, verb, resource, namespace, name, host) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise _unreachable(exc, host) from exc
    except ConfigException as exc:  # an exec plugin failing while refreshing its token
        raise LlmdError("cannot refresh the Kubernetes credentials: %s" % exc,
                        hint="check the exec plugin (or auth provider) of the kubeconfig") from exc
    if stream:
        return response.response
    body = response.read()
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # a proxy's or a web server's page in place of the API server
        text = body[:200].decode("utf-8", "replace").strip() if isinstance(body, bytes) else str(body)[:200]
        raise LlmdError("%s %s%s: the answer of %s (HTTP %s) is not JSON: %s"
                        % (verb, "%s %s" % (resource, name) if name else resource, _where(namespace), host,
                           response.status, text or "an empty body"),
                        hint="is host (or the kubeconfig's server) the Kubernetes API server itself, not a proxy or a web "
                             "page?", status=response.status) from None
