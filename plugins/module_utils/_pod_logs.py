# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the logs of many pods at once, like stern: select pods, pick containers, read in parallel.

Reads are GETs of ``pods/NAME/log`` through ``_k8s_client.k8s_get`` with ``stream=True``: the raw
bytes are split into lines here (no per-line model objects), and a follow window can stream and be cut
at its deadline. The lines are then filtered by ``_log_filters``.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

try:
    from urllib3.exceptions import HTTPError as Urllib3Error
except ImportError:
    # The module reports the missing library (HAS_KUBERNETES); this name is used only once it is there.
    Urllib3Error = None

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError, listed
from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import K8sNotFound, k8s_get
from ansible_collections.llmd.verify.plugins.module_utils._log_filters import (
    LineFilter,
    as_dict,
    cap_lines,
    merge_in_time_order,
    split_timestamp,
    time_key,
)

ROLE_LABEL = "llm-d.ai/role"
CONNECT_TIMEOUT = 10
# Per socket read: a log is sent as it is read from disk, so a long pause means a stuck server.
READ_TIMEOUT = 60
# Beyond this many parallel reads the client's connection pool (10 by default) only adds churn.
MAX_WORKERS = 10
# How long a follow stream stays open after its window, for lines logged in the window still in transit.
FOLLOW_GRACE = 0.5
# The reader's options as the API server's query parameters name them.
LOG_QUERY_NAMES = {"since_seconds": "sinceSeconds", "tail_lines": "tailLines", "previous": "previous",
                   "timestamps": "timestamps"}


def role_selector(roles, label_selectors):
    """The label selector for O(role) (the llm-d.ai/role label) and O(label_selectors), ANDed."""
    parts = []
    if roles:
        if len(roles) == 1:
            parts.append("%s=%s" % (ROLE_LABEL, roles[0]))
        else:
            parts.append("%s in (%s)" % (ROLE_LABEL, ",".join(roles)))
    parts.extend(label_selectors or [])
    return ",".join(parts)


def log_containers(pod):
    """Names of the containers whose logs a pod has by default: native sidecars, then containers.

    A native sidecar (such as llm-d's routing-proxy) is an init container with restartPolicy Always:
    it runs beside the main containers, so stern and we show it. Ordinary init containers have run to
    completion before; they are read only when named.
    """
    spec = pod.get("spec") or {}
    sidecars = [c["name"] for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return sidecars + [c["name"] for c in spec.get("containers") or []]


def all_containers(pod):
    spec = pod.get("spec") or {}
    return [c["name"] for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]


def plan_reads(pods, containers):
    """The (pod, container) pairs to read, and those not read because the pod lacks a named container.

    A named container that no selected pod has is an error that lists what each pod has; a pod that
    lacks it while others have it (a prefill pod has no routing-proxy) is not read, and reported.
    """
    reads, not_read = [], []
    for pod in pods:
        name = pod["metadata"]["name"]
        if not containers:
            reads.extend((name, container) for container in log_containers(pod))
            continue
        present = all_containers(pod)
        for container in containers:
            if container in present:
                reads.append((name, container))
            else:
                not_read.append({"pod": name, "container": container,
                                "reason": "pod has no such container (it has: %s)" % ", ".join(present)})
    missing = [c for c in containers or [] if not any(read[1] == c for read in reads)]
    if missing:
        seen = "; ".join("%s: %s" % (pod["metadata"]["name"], ", ".join(all_containers(pod))) for pod in pods)
        raise LlmdError("container %s not found in any selected pod (containers per pod: %s)"
                        % (", ".join(missing), seen),
                        hint="name containers as the pod spec does (spec.containers or spec.initContainers)")
    return reads, not_read


def _status_message(error):
    """The message of the Status object behind an LlmdError from k8s_get (what the API server said)."""
    cause = error.__cause__
    try:
        return json.loads(cause.body)["message"]
    except (AttributeError, TypeError, ValueError, KeyError, RecursionError):
        return error.msg


def find_pods(api_client, namespace, selector="", names=None):
    """The pods to read: by name (each must exist) or by label selector (at least one must match)."""
    timeout = (CONNECT_TIMEOUT, READ_TIMEOUT)
    if names:
        pods = []
        for name in names:
            try:
                pods.append(k8s_get(api_client, "/api/v1/namespaces/{namespace}/pods/{name}", timeout=timeout,
                                    verb="get", resource="pods", namespace=namespace, name=name))
            except K8sNotFound:
                raise LlmdError("pod %s not found in namespace %s" % (name, namespace),
                                hint="list them with: kubectl get pods -n %s" % namespace)
        return pods
    query = [("labelSelector", selector)] if selector else None
    listing = k8s_get(api_client, "/api/v1/namespaces/{namespace}/pods", query, timeout=timeout,
                      verb="list", resource="pods", namespace=namespace)
    pods = sorted(listing.get("items") or [], key=lambda pod: pod["metadata"]["name"])
    if not pods:
        raise LlmdError("no pod matches the label selector %r in namespace %s" % (selector, namespace),
                        hint="check the namespace and the labels: kubectl get pods -n %s -l '%s'"
                        % (namespace, selector))
    return pods


class LogReader(object):
    """Reads the logs of (pod, container) pairs in parallel, once or for a follow window."""

    def __init__(self, api_client, namespace, since_seconds=None, tail_lines=None, previous=False):
        self.api_client = api_client
        self.namespace = namespace
        self.options = {"timestamps": True}
        if since_seconds:
            self.options["since_seconds"] = since_seconds
        if tail_lines is not None:
            self.options["tail_lines"] = tail_lines
        if previous:
            self.options["previous"] = True

    def _open(self, pod, container, follow, read_timeout, **options):
        """The unread response, or None and the API server's reason when the container has no such log
        (HTTP 400: no previous instance, not started yet; 404: the pod was deleted after it was listed).
        options add to or override the reader's."""
        query = [("container", container), ("follow", follow)]
        query.extend((LOG_QUERY_NAMES[key], value) for key, value in dict(self.options, **options).items())
        try:
            return k8s_get(self.api_client, "/api/v1/namespaces/{namespace}/pods/{name}/log", query, stream=True,
                           timeout=(CONNECT_TIMEOUT, read_timeout), verb="get", resource="pods/log",
                           namespace=self.namespace, name=pod), None
        except K8sNotFound:
            return None, "pod %s was deleted after it was listed (replaced by a restart or a rollout)" % pod
        except LlmdError as error:
            if error.details.get("status") == 400:
                return None, _status_message(error)
            raise

    def _read_once(self, read):
        """Raw lines of one container (or None), and the reason when there are none."""
        pod, container = read
        response, reason = self._open(pod, container, False, READ_TIMEOUT)
        if response is None:
            return None, reason
        try:
            return _split_lines(response.data), None
        except (Urllib3Error, OSError) as error:
            raise LlmdError("reading the log of %s/%s failed: %s" % (pod, container, error))
        finally:
            response.release_conn()

    def read(self, reads):
        """{(pod, container): (raw lines or None, reason)} for every read, gathered in parallel."""
        if not reads:
            return {}
        with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(reads))) as pool:
            return dict(zip(reads, pool.map(self._read_once, reads)))

    def follow(self, reads, seconds, history=False):
        """Stream every container's log for a window of `seconds`: (what read() gives, the window).

        The window is [start, end] by this host's clock, and lines are kept by their kubelet timestamp:
        a line logged in the window counts even if its stream opened a moment later (each stream asks
        for the seconds since the start) or its bytes arrive a moment after the end (streams stay open
        FOLLOW_GRACE seconds longer). With history, what since_seconds or tail_lines select from before
        the window is kept too.

        One thread per stream: each blocks on its socket, so they cannot share a pool. At the deadline
        the sockets are shut down, which wakes the blocked reads.
        """
        results = dict((read, ([], None)) for read in reads)
        responses, failures = {}, []
        lock = threading.Lock()
        start_ns = time.time_ns()
        deadline = time.monotonic() + seconds + FOLLOW_GRACE

        def stream(read):
            since = {} if history else {"since_seconds": (time.time_ns() - start_ns) // 10 ** 9 + 1}
            try:
                # The socket read timeout is only a safety net: the deadline cuts the stream first.
                response, reason = self._open(read[0], read[1], True, seconds + READ_TIMEOUT, **since)
            except LlmdError as error:
                failures.append(error)
                return
            if response is None:
                results[read] = (None, reason)
                return
            with lock:
                responses[read] = response
                cut = time.monotonic() >= deadline
            if cut:
                _interrupt(response)
            try:
                results[read] = (_stream_lines(response, deadline), None)
            except (Urllib3Error, OSError, ValueError) as error:
                failures.append(LlmdError("the log stream of %s/%s broke: %s" % (read[0], read[1], error)))

        threads = [threading.Thread(target=stream, args=(read,)) for read in reads]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with lock:
            # Streams opened after this point see the deadline passed and cut themselves.
            for response in responses.values():
                _interrupt(response)
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        window = {"start": rfc3339(start_ns), "end": rfc3339(start_ns + int(seconds * 10 ** 9))}
        low = "" if history else time_key(window["start"])
        high = time_key(window["end"])
        for read, (lines, reason) in results.items():
            if lines is not None:
                results[read] = ([line for line in lines if low <= time_key(split_timestamp(line)[0]) <= high], reason)
        return results, window


def rfc3339(ns):
    """A time in nanoseconds since the epoch, as kubelets stamp log lines (UTC, nine digits)."""
    stamp = datetime.datetime.fromtimestamp(ns // 10 ** 9, datetime.timezone.utc)
    return "%s.%09dZ" % (stamp.strftime("%Y-%m-%dT%H:%M:%S"), ns % 10 ** 9)


def _split_lines(data):
    """Lines of a log body. Only newlines end lines: a message may hold a carriage return."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _stream_lines(response, deadline):
    """Lines of a followed log until the container stops or the stream is cut at the deadline."""
    buffered, lines = b"", []
    try:
        for chunk in response.stream(64 * 1024):
            complete, newline, buffered = (buffered + chunk).rpartition(b"\n")
            if newline:
                lines.extend(_split_lines(complete + newline))
    except (Urllib3Error, OSError, ValueError):
        # Reading a socket shut down at the deadline fails in one of these ways; before it, it is a failure.
        if time.monotonic() < deadline:
            raise
    finally:
        response.release_conn()
    if buffered:
        lines.extend(_split_lines(buffered))
    return lines


def _interrupt(response):
    """Wake a thread blocked reading the response, by shutting its socket down."""
    if hasattr(response, "shutdown"):  # urllib3 >= 2.3
        response.shutdown()
        return
    sock = getattr(getattr(getattr(response, "_fp", None), "fp", None), "raw", None)
    sock = getattr(sock, "_sock", None)
    if sock is not None:
        try:
            sock.shutdown(2)  # socket.SHUT_RDWR
        except OSError:
            pass  # already closed


def check_options(since_seconds=None, tail_lines=None, follow_seconds=None, max_lines=0):
    """Numbers the API server or the module would otherwise reject obscurely."""
    for name, value, least in (("since_seconds", since_seconds, 1), ("tail_lines", tail_lines, 0),
                               ("max_lines", max_lines, 0)):
        if value is not None and value < least:
            raise LlmdError("%s must be at least %d, got %d" % (name, least, value))
    if follow_seconds is not None and follow_seconds <= 0:
        raise LlmdError("follow_seconds must be more than 0, got %s" % follow_seconds)


def gather_logs(api_client, namespace, role=None, label_selectors=None, pods=None, containers=None,
                since_seconds=None, tail_lines=None, previous=False, follow_seconds=None, timestamps=True,
                noise_filters=None, exclude=None, include=None, fail_on=None, max_lines=0, with_previous=False):
    """Read, filter and merge the logs of the selected pods; the result the module returns.

    with_previous: the current containers, then their previous instances from the same pods (one listing of
    the pods), the latter under "previous" with the same keys.
    """
    check_options(since_seconds, tail_lines, follow_seconds, max_lines)
    if with_previous and (previous or follow_seconds):
        raise LlmdError("with_previous reads the current and the previous containers: it goes with neither previous "
                        "nor follow_seconds")
    selector = role_selector(role, label_selectors)
    selected = find_pods(api_client, namespace, selector=selector, names=pods)
    reads, not_read = plan_reads(selected, containers)

    def collect(previous_instances):
        line_filter = LineFilter(noise=noise_filters, exclude=exclude, include=include, fail_on=fail_on)
        reader = LogReader(api_client, namespace, since_seconds=since_seconds, tail_lines=tail_lines,
                           previous=previous_instances)
        window = None
        if follow_seconds:
            # Without since_seconds or tail_lines, a follow window shows only what is logged during it.
            raw, window = reader.follow(reads, follow_seconds, history=bool(since_seconds or tail_lines is not None))
        else:
            raw = reader.read(reads)
        return _result(selected, None if pods else selector, reads, list(not_read), raw, line_filter, window,
                       max_lines, timestamps)

    result = collect(previous)
    if with_previous:
        result["previous"] = collect(True)
    return result


def _result(selected, selector, reads, not_read, raw, line_filter, window, max_lines, timestamps):
    counts, streams = {}, []
    for pod, container in reads:
        lines, reason = raw[(pod, container)]
        if lines is None:
            not_read.append({"pod": pod, "container": container, "reason": reason})
            continue
        kept = line_filter.filter(pod, container, lines)
        counts.setdefault(pod, {})[container] = {"read": len(lines), "kept": len(kept)}
        streams.append(kept)

    merged = merge_in_time_order(streams)
    returned, omitted = cap_lines(merged, max_lines)
    # The first matches are kept: the first error is most often the cause of the next ones.
    matches = sorted(line_filter.matches, key=lambda match: time_key(match["timestamp"]))[:max_lines or None]
    if not timestamps:
        for match in matches:
            del match["timestamp"]
    return {
        "pods": [pod["metadata"]["name"] for pod in selected],
        "selector": selector,
        "lines": [as_dict(line, timestamps) for line in returned],
        "total_kept": len(merged),
        "truncated": bool(omitted),
        "lines_omitted": omitted,
        "counts": counts,
        "dropped": line_filter.dropped,
        "matches": matches,
        "match_count": len(line_filter.matches),
        "not_read": not_read,
        "window": window,
    }


def fail_on_message(result, shown=3):
    """The task's failure message when fail_on matched: how many lines, and the first few."""
    first = ["%s/%s: %s" % (m["pod"], m["container"], m["message"][:200]) for m in result["matches"][:shown]]
    return "fail_on matched %d line%s: %s" % (
        result["match_count"], "" if result["match_count"] == 1 else "s",
        listed(first, shown, " | ", total=result["match_count"]))
