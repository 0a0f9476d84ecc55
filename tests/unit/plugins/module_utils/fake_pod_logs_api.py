# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal Kubernetes API for pod logs, on 127.0.0.1, for unit tests with the real kubernetes client.

It answers like the real API server for what pod_logs_info asks: list pods (the label selector is
recorded, and answered from `selections`), get a pod (404 Status), and `pods/NAME/log` with container,
timestamps, sinceSeconds, tailLines, previous (400 Status when there is no previous instance) and follow (a chunked
stream that adds one line every `follow_interval` seconds until the client goes away). The integration
tests run the module against the sandbox's API server; this fake keeps unit tests fast and self-contained.

    with FakePodLogsApi(pods, logs) as api:
        client = api.client()
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    def __init__(self, pods, logs, selections=None, forbidden=(), follow_interval=0.05):
        self.pods = dict((p["metadata"]["name"], p) for p in pods)
        self.logs = logs  # {(pod, container): [(timestamp, message)], (pod, container, "previous"): [...]}
        self.selections = selections or {}  # label selector -> pod names (default: every pod)
        self.forbidden = forbidden  # resources answered 403: "pods", "pods/log"
        self.follow_interval = follow_interval
        self.requests = []
        self.server = None

    def __enter__(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                query = dict((k, v[0]) for k, v in parse_qs(url.query).items())
                fake.requests.append((url.path, query))
                parts = url.path.strip("/").split("/")
                # api v1 namespaces NS pods [NAME [log]]
                if parts[:3] != ["api", "v1", "namespaces"] or len(parts) < 5 or parts[4] != "pods":
                    return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
                if len(parts) == 5:
                    return fake.list_pods(self, query)
                name = parts[5]
                if name not in fake.pods:
                    return self.send_json(404, status(404, "NotFound", 'pods "%s" not found' % name))
                if len(parts) == 6:
                    return self.send_json(200, fake.pods[name])
                return fake.pod_log(self, name, query)

            def send_json(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def client(self):
        configuration = Configuration()
        configuration.host = self.url
        return ApiClient(configuration)

    def kubeconfig(self):
        return {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}

    def list_pods(self, handler, query):
        if "pods" in self.forbidden:
            return handler.send_json(403, status(403, "Forbidden", 'pods is forbidden: User "x" cannot list resource "pods"'))
        names = self.selections.get(query.get("labelSelector"), sorted(self.pods))
        handler.send_json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                "items": [self.pods[n] for n in names]})

    def pod_log(self, handler, name, query):
        if "pods/log" in self.forbidden:
            return handler.send_json(403, status(403, "Forbidden", 'pods "%s" is forbidden: User "x" cannot get '
                                                 'resource "pods/log" in API group "" in the namespace "llm-d"' % name))
        container = query.get("container")
        key = (name, container, "previous") if query.get("previous") == "true" else (name, container)
        if key not in self.logs:
            return handler.send_json(400, status(400, "BadRequest", 'previous terminated container "%s" in pod "%s" '
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
            data = b"".join(render(*line) for line in lines)
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            for chunk in [render(*line) for line in lines] + [None] * MAX_FOLLOW_LINES:
                if chunk is None:
                    time.sleep(self.follow_interval)
                    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                    chunk = render(now, "followed line")
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client cut the stream, as a follow window does
