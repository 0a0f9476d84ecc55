# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The target of the checks: what the endpoint role found, as the HTTP modules' options.

    reached = reach_target(gateway, port_forward, url, cluster_ip_reach, resolve)
    reached["target"]    # {transport: direct, endpoint, resolve} or {transport: api_proxy, namespace, service, port}
    reached["endpoint"]  # for the report: {url, mode, via, source, warnings}
    reached["check"]     # the endpoint check's record

``gateway`` is gateway_endpoint_info's result, ``port_forward`` the port_forward module's (or None when none
was started), ``url`` an endpoint the user gave (nothing is looked up then). A ClusterIP target is reached
through the port-forward, or through the API server's proxy when ``cluster_ip_reach`` is ``api_proxy``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ansible_collections.llmd.verify.plugins.module_utils._checks import details_of, record

# How the checks reach a target that only answers inside the cluster (the roles' llmd_transport).
CLUSTER_IP_REACH = ("auto", "port_forward", "api_proxy")


def _failed(result):
    return isinstance(result, dict) and bool(result.get("failed"))


def in_cluster_only(gateway):
    """Whether the endpoint found answers only inside the cluster (a ClusterIP Service)."""
    return isinstance(gateway, dict) and "endpoint" in gateway and not (gateway.get("reach") or {}).get("direct", True)


def needs_port_forward(gateway, cluster_ip_reach="auto"):
    """Whether the endpoint role must start a port-forward to reach what gateway_endpoint_info found."""
    return in_cluster_only(gateway) and cluster_ip_reach != "api_proxy" and not _failed(gateway)


def reach_target(gateway, port_forward=None, url="", cluster_ip_reach="auto", resolve=None):
    gateway = gateway if isinstance(gateway, dict) else {}
    resolve = dict(resolve or {})
    if url:
        target = {"transport": "direct", "endpoint": url, "resolve": resolve}
        endpoint = {"url": url, "mode": "given", "via": "direct", "source": {}, "warnings": []}
        check = record("endpoint", "passed", "%s (given, via direct)" % url, details={"url": url})
        return {"target": target, "endpoint": endpoint, "check": check}

    mode = gateway.get("mode") or ""
    via = "direct"
    if in_cluster_only(gateway):
        via = "api_proxy" if cluster_ip_reach == "api_proxy" else "port_forward"
    endpoint = {"url": "", "mode": mode, "via": via, "source": gateway.get("source") or {},
                "warnings": gateway.get("warnings") or []}
    failure = gateway if _failed(gateway) or "endpoint" not in gateway else (
        port_forward if via == "port_forward" and (_failed(port_forward) or not port_forward) else None)
    if failure is not None:
        message = str((failure or {}).get("msg") or "no endpoint was found")
        return {"target": {}, "endpoint": endpoint,
                "check": record("endpoint", "failed", message, details=details_of(failure or {}))}

    if via == "api_proxy":
        target = dict((gateway.get("reach") or {}).get("api_proxy") or {})
        url = gateway["endpoint"]
    else:
        url = port_forward["endpoint"] if via == "port_forward" else gateway["endpoint"]
        connect = gateway.get("connect_address")
        if connect and via == "direct":
            resolve = dict({urlsplit(url).hostname: connect}, **resolve)
        target = {"transport": "direct", "endpoint": url, "resolve": resolve}
    endpoint["url"] = url
    check = record("endpoint", "passed", "%s (%s, via %s)" % (url, mode, via), details=details_of(gateway))
    return {"target": target, "endpoint": endpoint, "check": check}
