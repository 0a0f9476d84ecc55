# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus metrics of model-server pods, EPP Services and URLs: read, parse, filter, diff.

The text is parsed with prometheus_client's parser. Parsing never raises: a malformed line is skipped
and counted, so one bad line does not hide the rest of a scrape.
"""

from __future__ import annotations

import fnmatch
import math
import traceback

from ansible_collections.llmd.verify.plugins.module_utils._api_proxy import open_transport, resolve_pod_port
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._http import describe_error, http_error
from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import auth_options
from ansible_collections.llmd.verify.plugins.module_utils._k8s_status import kubernetes_hint

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    HAS_PROMETHEUS_CLIENT = False
    PROMETHEUS_CLIENT_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PROMETHEUS_CLIENT = True
    PROMETHEUS_CLIENT_IMPORT_ERROR = None

ROLE_LABEL = "llm-d.ai/role"
DEFAULT_POD_PORT = 8000

# The options of the reads of urls, besides the Kubernetes auth options (which only reach the API server):
# their own bearer token and TLS, verified by default, as the HTTP checks' options (doc: metrics_info).
METRICS_URL_ARG_SPEC = dict(
    metrics_token=dict(type="str", no_log=True),
    url_validate_certs=dict(type="bool", default=True),
    url_ca_path=dict(type="path"),
    url_client_cert=dict(type="path"),
    url_client_key=dict(type="path", no_log=False),
)

NEEDS_TOKEN = ("its metrics need a bearer token (the EPP serves them with --metrics-endpoint-auth, on by default in "
               "llm-d-router)")
PROXY_DROPS_TOKEN = ("the Kubernetes API server proxy does not pass a token on: forward the port with "
                     "llmd.verify.port_forward and read it as one of urls with metrics_token")
TOKEN_HOWTO = ("make a token for a ServiceAccount bound to a ClusterRole that allows get on the nonResourceURL /metrics: "
               "kubectl create token NAME (see docs/rbac.md)")


# ---- parsing and arithmetic: pure, never raise -------------------------------------------------------

def _families(text):
    """(samples, None) or (None, the parser's complaint)."""
    try:
        return [sample for family in text_string_to_metric_families(text) for sample in family.samples], None
    except (ValueError, IndexError, KeyError, TypeError) as exc:  # the parser's ways of rejecting text
        return None, str(exc) or type(exc).__name__


def parse_metrics(text, names=None):
    """Parse Prometheus text; return (samples, skipped lines).

    samples: [{name, labels, value}] for the sample names (or their family names) matching names, which
    may hold shell-style patterns (vllm:*); all samples when names is empty.
    """
    if not HAS_PROMETHEUS_CLIENT:
        raise LlmdError("the prometheus-client Python package is required", hint="pip install prometheus-client",
                        exception=PROMETHEUS_CLIENT_IMPORT_ERROR)
    samples, problem = _families(text)
    skipped = 0
    if problem is not None:
        # Reparse line by line, keeping every sample line the parser accepts on its own.
        samples = []
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parsed, line_problem = _families(line + "\n")
            if line_problem is None:
                samples.extend(parsed)
            else:
                skipped += 1
    wanted = [_sample(sample) for sample in samples if _matches(sample.name, names)]
    return wanted, skipped


def _sample(sample):
    value = sample.value
    return {"name": sample.name, "labels": dict(sample.labels),
            "value": value if isinstance(value, (int, float)) and math.isfinite(value) else None}


def _matches(name, names):
    if not names:
        return True
    for pattern in names:
        if name == pattern or fnmatch.fnmatchcase(name, pattern):
            return True
        # A counter family "vllm:request_success" also selects its "_total" and "_created" samples.
        if name.startswith(pattern + "_") and name[len(pattern):] in ("_total", "_created", "_count", "_sum", "_bucket"):
            return True
    return False


def group_by_name(samples):
    """{name: [{labels, value}]} in the order met."""
    grouped = {}
    for sample in samples:
        grouped.setdefault(sample["name"], []).append({"labels": sample["labels"], "value": sample["value"]})
    return grouped


def _key(labels):
    """A hashable key for labels; as text, since a previous read given back by the user may hold anything."""
    return tuple(sorted((str(name), str(value)) for name, value in labels.items()))


def diff_targets(before, after):
    """What changed between two reads of the same targets.

    {target: {metric: {delta, samples: [{labels, before, after, delta}]}}} for every target and metric
    in both reads; a sample missing from the first read counts from 0 (a counter born since). before comes
    from the user (the last result given back), so any part of it that is not the shape of a read is absent.
    """
    changes = {}
    for target, now in after.items():
        then = before.get(target) if isinstance(before, dict) else None
        then = then.get("metrics") if isinstance(then, dict) else None
        if not isinstance(then, dict) or not isinstance(now.get("metrics"), dict):
            continue
        for name, samples in now["metrics"].items():
            entries = then.get(name) if isinstance(then.get(name), list) else []
            old = {_key(entry.get("labels") or {}): entry.get("value") for entry in entries
                   if isinstance(entry, dict) and isinstance(entry.get("labels") or {}, dict)}
            rows = []
            for entry in samples:
                previous = old.get(_key(entry["labels"]), 0.0)
                delta = entry["value"] - previous if isinstance(entry["value"], (int, float)) and isinstance(previous, (int, float)) else None
                rows.append({"labels": entry["labels"], "before": previous, "after": entry["value"], "delta": delta})
            deltas = [row["delta"] for row in rows if row["delta"] is not None]
            changes.setdefault(target, {})[name] = {"delta": sum(deltas) if deltas else None, "samples": rows}
    return changes


# ---- reading -----------------------------------------------------------------------------------------

def pod_metrics_port(pod):
    """The port of a pod's model server (wire JSON): the vllm container's port (its first declared port or --port)."""
    containers = list((pod.get("spec") or {}).get("containers") or [])
    chosen = next((c for c in containers if c.get("name") == "vllm"), containers[0] if containers else None)
    if chosen is None:
        return DEFAULT_POD_PORT
    args = list(chosen.get("args") or []) + list(chosen.get("command") or [])
    for index, arg in enumerate(args):
        if arg == "--port" and index + 1 < len(args) and str(args[index + 1]).isdigit():
            return int(args[index + 1])
        if arg.startswith("--port=") and arg[7:].isdigit():
            return int(arg[7:])
    for port in chosen.get("ports") or []:
        return port["containerPort"]
    return DEFAULT_POD_PORT


def pod_selector(role=None, label_selectors=None):
    """One label selector for the llm-d role and the other selectors (None when there are none)."""
    selectors = list(label_selectors or [])
    if role:
        selectors.append("%s=%s" % (ROLE_LABEL, role))
    return ",".join(selectors) or None


def _scrape(transport, path, names, token_sent=False):
    """{status, metrics, skipped_lines} or {status, error[, hint]} for one target."""
    try:
        response = transport.request("GET", path)
    except LlmdError as err:  # a TransportError, or the target's Service or Pod could not be read
        return {"status": None, "error": err.msg, "phase": err.details.get("phase")}
    try:
        data = response.read()
    except LlmdError as err:
        return {"status": response.status, "error": err.msg, "phase": err.details.get("phase")}
    finally:
        response.close()
    if response.status != 200:
        entry = {"status": response.status, "error": describe_error(http_error(response.status, data))}
        text = data.decode("utf-8", errors="replace")[:200]
        hint = kubernetes_hint(response.status, data) or _auth_hint(response.status, transport.kind, token_sent, text)
        if response.status == 401 and hint:
            entry["error"] += ": %s" % NEEDS_TOKEN if not token_sent else ": the metrics token was refused"
        if hint:
            entry["hint"] = hint
        return entry
    samples, skipped = parse_metrics(data.decode("utf-8", errors="replace"), names)
    return {"status": 200, "metrics": group_by_name(samples), "skipped_lines": skipped}


def _auth_hint(status, kind, token_sent, text=""):
    """What to do about a 401, 403 or failed token check of a metrics target (not the API server's own), or None."""
    if status == 500 and "authentication failed" in text.lower():
        return ("the target could not check the token: the EPP's ServiceAccount may not create TokenReviews and "
                "SubjectAccessReviews; bind it to system:auth-delegator (llm-d's monitoring values do)")
    if status == 401 and kind == "api_proxy":
        return PROXY_DROPS_TOKEN + "; " + TOKEN_HOWTO
    if status == 401 and token_sent:
        return "metrics_token is invalid or expired (a TokenRequest token lasts an hour by default): " + TOKEN_HOWTO
    if status == 401:
        return "set metrics_token: " + TOKEN_HOWTO
    if status == 403 and kind != "api_proxy":
        return ("the token's identity may not get /metrics: bind it to a ClusterRole with nonResourceURLs [/metrics] "
                "and verbs [get] (see docs/rbac.md)")
    return None


def read_metrics(params, make_api_client=None):
    """Read every target the options name; fail when any could not be read (the partial result attached).

    params: the Kubernetes auth options, namespace, pods, role, label_selectors, port, services, urls, path,
    names, previous, headers, timeout, scheme, and for urls metrics_token and the url_* TLS options
    (certificates are verified unless url_validate_certs is false). Pods and Services are read through the
    API server proxy with the ApiClient make_api_client() returns (by default, module_utils._k8s_client's for
    the auth options); their ports are resolved first (module_utils._api_proxy).
    """
    targets = {}
    path, names, timeout = params.get("path") or "/metrics", params.get("names") or [], params.get("timeout") or 30
    wants_pods = params.get("pods") or params.get("role") or params.get("label_selectors")
    api_client = None
    if wants_pods or params.get("services"):
        api_client = (make_api_client or (lambda: _default_api_client(params)))()
    if wants_pods:
        pods = _list_pods(api_client, params)
        if not pods:
            raise LlmdError("no pod in namespace %s matches %s" % (params["namespace"], _describe_selection(params)),
                            hint="check role (decode or prefill) and label_selectors against kubectl get pods --show-labels")
        for pod in pods:
            name = pod["metadata"]["name"]
            entry = {"kind": "pod", "name": name, "namespace": params["namespace"], "path": path,
                     "role": (pod["metadata"].get("labels") or {}).get(ROLE_LABEL)}
            try:
                port = resolve_pod_port(pod, params["port"]) if params.get("port") else str(pod_metrics_port(pod))
            except LlmdError as err:
                entry.update(port=params["port"], status=None, error=err.msg, hint=err.hint)
            else:
                transport = open_transport(_proxy_options(params, "pod", name, port), api_client, obj=pod)
                entry["port"] = port
                entry.update(_scrape(transport, path, names))
            targets["pod/%s" % name] = entry
    for service in params.get("services") or []:
        name, _sep, port = service.partition(":")
        transport = open_transport(_proxy_options(params, "service", name, port or None), api_client, prefer="metrics")
        entry = {"kind": "service", "name": name, "namespace": params["namespace"], "port": port or None, "path": path}
        entry.update(_scrape(transport, path, names))
        entry["port"] = transport.proxy_port or entry["port"]
        targets["service/%s" % service] = entry
    token = params.get("metrics_token")
    for url in params.get("urls") or []:
        # A url's own token and TLS options, never the Kubernetes ones (METRICS_URL_ARG_SPEC).
        transport = open_transport({"endpoint": url, "api_key": token, "headers": params.get("headers"),
                                    "validate_certs": params.get("url_validate_certs") is not False,
                                    "ca_path": params.get("url_ca_path"), "client_cert": params.get("url_client_cert"),
                                    "client_key": params.get("url_client_key"), "timeout": timeout})
        entry = {"kind": "url", "name": url, "path": ""}
        entry.update(_scrape(transport, "", names, token_sent=bool(token)))
        transport.close()
        targets["url/%s" % url] = entry
    if not targets:
        raise LlmdError("nothing to read", hint="give pods, role, label_selectors, services or urls")
    result = {"targets": targets}
    previous = params.get("previous")
    if previous:
        before = previous.get("targets") if isinstance(previous.get("targets"), dict) else previous
        result["diff"] = diff_targets(before, targets)
    failed = {key: entry["error"] for key, entry in targets.items() if entry.get("error")}
    if failed:
        hints = []
        for entry in targets.values():
            if entry.get("hint") and entry["hint"] not in hints:
                hints.append(entry["hint"])
        raise LlmdError("could not read the metrics of %s" % "; ".join("%s: %s" % item for item in failed.items()),
                        hint="; ".join(hints) or "for pods check the port (the vllm container's) and RBAC on pods/proxy; "
                                                 "for services, services/proxy",
                        **result)
    return result


def _proxy_options(params, kind, name, port):
    """The open_transport options that reach one pod or Service through the API server proxy."""
    return {"transport": "api_proxy", "namespace": params["namespace"], kind: name, "port": port,
            "scheme": params.get("scheme"), "timeout": params.get("timeout"), "headers": params.get("headers")}


def _default_api_client(params):
    # Imported here: loading kubernetes takes ~0.3 s, and url-only reads do not need it.
    from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import get_api_client
    return get_api_client(auth_options(params))


def _list_pods(api_client, params):
    """The selected pods as wire JSON."""
    from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import k8s_get

    namespace = params["namespace"]
    if params.get("pods"):
        return [k8s_get(api_client, "/api/v1/namespaces/{namespace}/pods/{name}", verb="get", resource="pods",
                        namespace=namespace, name=name)
                for name in params["pods"]]
    selector = pod_selector(params.get("role"), params.get("label_selectors"))
    return k8s_get(api_client, "/api/v1/namespaces/{namespace}/pods", [("labelSelector", selector)] if selector else None,
                   verb="list", resource="pods", namespace=namespace).get("items") or []


def _describe_selection(params):
    parts = []
    if params.get("role"):
        parts.append("role=%s" % params["role"])
    parts.extend(params.get("label_selectors") or [])
    return ", ".join(parts) or "the selection"
