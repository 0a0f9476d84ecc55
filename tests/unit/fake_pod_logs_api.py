# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal Kubernetes API for pod logs, on 127.0.0.1, for unit tests with the real kubernetes client.

It answers like the real API server for what pod_logs_info asks: list pods (the label selector is
recorded, and answered from `selections`), get a pod (404 Status), and `pods/NAME/log` with container,
timestamps, sinceSeconds, tailLines, previous (400 Status when there is no previous instance) and follow (a chunked
stream that adds one line every `follow_interval` seconds until the client goes away). The integration
tests run the module against the sandbox's API server; this fake keeps unit tests fast and self-contained.

    api = pod_logs_api(pods, logs)   # the fixture (tests/unit/conftest.py): a FakePodLogsApi served by stub_server
    client = api.client()
"""

from __future__ import annotations

import datetime
import time
from urllib.parse import parse_qs, urlparse

from kubernetes.client import ApiClient, Configuration

# Bounds a follow stream even if a client never hangs up.
MAX_FOLLOW_LINES = 400


def pod(name, labels=None, containers=("vllm",), sidecars=(), init_containers=()):
    init = [{"name": c, "image": "ghcr.io/llm-d/llm-d-routing-sidecar:v0.3.0", "restartPolicy": "Always"}
            for c in sidecars] + [{"name": c, "image": "busybox"} for c in init_containers]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "llm-d", "labels": labels or {"llm-d.ai/role": "decode"}},
            "spec": {"initContainers": init, "containers": [{"name": c, "image": "vllm/vllm-openai"} for c in containers]}}


def stamp(second, fraction=""):
    """An RFC3339Nano timestamp as a kubelet writes it (trailing zeros of the fraction trimmed)."""
    return "2026-11-27T03:00:%02d%sZ" % (second, "." + fraction if fraction else "")


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class FakePodLogsApi(object):
    """The app, for the stub_server fixture (the pod_logs_api fixture starts one); url is set once it serves."""

    def __init__(self, pods, logs, selections=None, forbidden=(), follow_interval=0.05, deleted=()):
        self.pods = dict((p["metadata"]["name"], p) for p in pods)
        self.logs = logs  # {(pod, container): [(timestamp, message)], (pod, container, "previous"): [...]}
        self.selections = selections or {}  # label selector -> pod names (default: every pod)
        self.forbidden = forbidden  # resources answered 403: "pods", "pods/log"
        self.follow_interval = follow_interval
        self.deleted = deleted  # pods listed, then gone: get and log answer 404 (deleted between list and read)
        self.requests = []
        self.url = None

    def __call__(self, request):
        url = urlparse(request["path"])
        query = dict((k, v[0]) for k, v in parse_qs(url.query).items())
        self.requests.append((url.path, query))
        parts = url.path.strip("/").split("/")
        # api v1 namespaces NS pods [NAME [log]]
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) < 5 or parts[4] != "pods":
            return _json(404, status(404, "NotFound", "the server could not find the requested resource"))
        if len(parts) == 5:
            return self.list_pods(query)
        name = parts[5]
        if name not in self.pods or name in self.deleted:
            return _json(404, status(404, "NotFound", 'pods "%s" not found' % name))
        if len(parts) == 6:
            return _json(200, self.pods[name])
        return self.pod_log(name, query)

    def client(self):
        configuration = Configuration()
        configuration.host = self.url
        return ApiClient(configuration)

    def kubeconfig(self):
        return {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}

    def list_pods(self, query):
        if "pods" in self.forbidden:
            return _json(403, status(403, "Forbidden", 'pods is forbidden: User "x" cannot list resource "pods"'))
        names = self.selections.get(query.get("labelSelector"), sorted(self.pods))
        return _json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                           "items": [self.pods[n] for n in names]})

    def pod_log(self, name, query):
        if "pods/log" in self.forbidden:
            return _json(403, status(403, "Forbidden", 'pods "%s" is forbidden: User "x" cannot get '
                                     'resource "pods/log" in API group "" in the namespace "llm-d"' % name))
        container = query.get("container")
        key = (name, container, "previous") if query.get("previous") == "true" else (name, container)
        if key not in self.logs:
            return _json(400, status(400, "BadRequest", 'previous terminated container "%s" in pod "%s" '
                                     "not found" % (container, name)))
        lines = self.logs[key]
        if "sinceSeconds" in query:
            # Whole seconds, as precise as the real kubelet's sinceSeconds is.
            cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=int(query["sinceSeconds"]))
            lines = [line for line in lines if line[0][:19] >= cutoff.strftime("%Y-%m-%dT%H:%M:%S")]
        if "tailLines" in query:
            tail = int(query["tailLines"])
            lines = lines[-tail:] if tail else []

        def render(timestamp, message):
            text = "%s %s\n" % (timestamp, message) if query.get("timestamps") == "true" else message + "\n"
            return text.encode()

        if query.get("follow") != "true":
            return 200, {"Content-Type": "text/plain"}, b"".join(render(*line) for line in lines)

        def follow():
            for line in lines:
                yield render(*line)
            for _count in range(MAX_FOLLOW_LINES):
                time.sleep(self.follow_interval)
                yield render(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "followed line")

        return 200, {"Content-Type": "text/plain"}, follow()


def _json(code, body):
    return code, {"Content-Type": "application/json"}, body
