# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which port of a Service (or Pod) serves what: pure rules on the wire JSON, shared by every caller.

The HTTP port of a gateway or EPP Service is found by name and protocol first (llm-d's Services carry
Istio's status port, the EPP's gRPC ext-proc and metrics ports beside it), then by well-known numbers.
The same rules pick the port the API server proxy is asked for, and name ports the way the API server
maps them: a Service port by its name (the endpoint port name), a container port by its number.
"""

from __future__ import annotations

ISTIO_STATUS_PORT = 15021
EPP_GRPC_PORT = 9002
METRICS_PORT = 9090
# Well-known HTTP numbers, best first: the gateway listener, the model server, the standalone EPP's Envoy.
HTTP_NUMBERS = (80, 443, 8000, 8081)


def describe_port(port):
    """80/http (http): the number, the name (or -) and the appProtocol when there is one."""
    label = "%s/%s" % (port.get("port"), port.get("name") or "-")
    return "%s (%s)" % (label, port["appProtocol"]) if port.get("appProtocol") else label


def describe_ports(ports):
    return ", ".join(describe_port(p) for p in ports) or "none"


def not_http(port):
    """Why a Service port is not the HTTP port, or None. Names and protocols decide, then well-known numbers."""
    name = (port.get("name") or "").lower()
    app = (port.get("appProtocol") or "").lower()
    if (port.get("protocol") or "TCP") != "TCP":
        return "%s, not TCP" % port.get("protocol")
    if name in ("http", "https") or app in ("http", "https"):
        return None
    if port.get("port") == ISTIO_STATUS_PORT or "status" in name:
        return "Istio's status port, health checks only"
    if "metrics" in name or port.get("port") == METRICS_PORT:
        return "metrics"
    if "grpc" in name or app in ("grpc", "http2", "kubernetes.io/h2c") or port.get("port") == EPP_GRPC_PORT:
        return "gRPC (the EPP's ext-proc)"
    return None


def _http_rank(port):
    name = (port.get("name") or "").lower()
    app = (port.get("appProtocol") or "").lower()
    number = port.get("port")
    ranks = (name == "http" or app == "http", name == "https" or app == "https", name.startswith("http")) + tuple(
        number == known for known in HTTP_NUMBERS)
    first = ranks.index(True) if True in ranks else len(ranks)
    return (first, number)


def choose_http_port(ports):
    """(port, scheme, skipped): the HTTP port of these Service ports, or (None, None, skipped) when none is.

    skipped: [(port, why it is not HTTP)].
    """
    candidates = [p for p in ports if not not_http(p)]
    skipped = [(p, not_http(p)) for p in ports if not_http(p)]
    if not candidates:
        return None, None, skipped
    port = min(candidates, key=_http_rank)
    https = (port.get("name") or "").lower() == "https" or (port.get("appProtocol") or "").lower() == "https" \
        or port.get("port") == 443
    return port, "https" if https else "http", skipped


def choose_metrics_port(ports):
    """The Service port that serves Prometheus metrics (named like metrics, or 9090), or None."""
    named = [p for p in ports if "metrics" in (p.get("name") or "").lower()]
    numbered = [p for p in ports if p.get("port") == METRICS_PORT]
    return (named or numbered or [None])[0]


def proxy_port_name(port):
    """How the API server proxy is asked for a Service port: by its name, or by number when it has none.

    The proxy matches the endpoint port by name; a number is mapped to its name by the API server, and an
    unnamed port (only possible when it is the Service's single port) has the name "".
    """
    return port.get("name") or str(port["port"])


def container_ports(pod):
    """Every declared port of a pod's containers (native sidecars in initContainers included), with the container."""
    spec = pod.get("spec") or {}
    found = []
    for container in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        for port in container.get("ports") or []:
            found.append(dict(port, container=container.get("name")))
    return found


def describe_container_ports(ports):
    return ", ".join("%s/%s (container %s)" % (p.get("containerPort"), p.get("name") or "-", p.get("container"))
                     for p in ports) or "none declared"
