# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the port-forward daemon runs: a local listener relayed to a ready pod through the API server.

    resolver = Resolver(api_client, namespace, "service", "gateway", 80)   # -> (pod, pod_port), as kubectl
    upstream = WebSocketUpstream(api_client, namespace)                     # or KubectlUpstream(argv, namespace)
    Forwarder(listener, resolver, upstream, reconnect=True, lifetime=3600, idle_timeout=600).serve()

Backends: `python` opens one WebSocket (v4.channel.k8s.io) per local connection, as the kubernetes
client's portforward does, with one spare opened ahead to hide the handshake; `kubectl` runs
`kubectl port-forward pod/P :PORT` on an internal port and relays to it. Either way the daemon owns the
local port, so it sees every connection: when the pod fails it re-resolves the Service's ready pods
(the reconnect), replays what the client sent if the pod never answered, and it ends itself after
`lifetime` seconds or `idle_timeout` seconds without a connection.
"""

from __future__ import annotations

import collections
import importlib
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import api_server, k8s_get, kubernetes_error

# websocket-client and the kubernetes client are imported when the first WebSocket is made (_import_websocket):
# they cost about 0.5 s, which stopping a forward (every verify.yml run does) need not pay.
websocket = ApiException = websocket_proxycare = None


def _import_websocket():
    global websocket, ApiException, websocket_proxycare  # pylint: disable=global-statement
    if websocket is None:
        exceptions = importlib.import_module("kubernetes.client.exceptions")
        ws_client = importlib.import_module("kubernetes.stream.ws_client")
        ApiException, websocket_proxycare = exceptions.ApiException, ws_client.websocket_proxycare
        websocket = importlib.import_module("websocket")


BUFFER = 256 * 1024  # bytes read at once from either side
REPLAY_LIMIT = 1024 * 1024  # what a client may send before the pod answers and still be replayed elsewhere
CONNECT_TIMEOUT = 10.0  # one WebSocket handshake, or kubectl's start
RECONNECT_WINDOW = 15.0  # how long a new connection waits for a ready pod when the current one fails
FAILED_POD_PAUSE = 5.0  # a pod that failed is not picked again for this long
TICK = 0.25  # how often the daemon checks its lifetime and idle time


class UpstreamError(Exception):
    """The pod could not be reached (handshake refused, pod gone, port closed): try another pod."""


# --- which pod and port, as kubectl port-forward resolves them ----------------------------------------


def pod_is_ready(pod):
    """Running, not being deleted, and condition Ready true: what a Service's endpoints include."""
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def pick_pod(pods, exclude=()):
    """The oldest ready pod not in exclude (name breaks ties), or None."""
    ready = [p for p in pods if pod_is_ready(p) and p["metadata"]["name"] not in exclude]
    ready.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
    return ready[0] if ready else None


def service_target_port(service, port):
    """The targetPort (number or container port name) behind the Service port given by number or name."""
    ports = service.get("spec", {}).get("ports") or []
    for entry in ports:
        if str(port) in (str(entry.get("port")), entry.get("name")):
            return entry.get("targetPort", entry.get("port"))
    offered = ", ".join("%s%s" % (p.get("port"), "/" + p["name"] if p.get("name") else "") for p in ports)
    raise LlmdError("service %s has no port %s (it has: %s)" % (service["metadata"]["name"], port, offered or "none"),
                    hint="set remote_port to one of the Service's ports (number or name)")


def container_port(pod, port):
    """A pod port number: numbers as they are, names looked up in the containers (native sidecars too)."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    spec = pod.get("spec", {})
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for entry in container.get("ports") or []:
            if entry.get("name") == port:
                return int(entry["containerPort"])
    raise LlmdError("pod %s has no container port named %s" % (pod["metadata"]["name"], port),
                    hint="use a port number or a name from the pod's containers[].ports")


def label_selector(match_labels):
    return ",".join("%s=%s" % item for item in sorted(match_labels.items()))


class Resolver:
    """Finds the pod and pod port to forward to, for a Service (any ready pod it selects) or one Pod."""

    def __init__(self, api_client, namespace, kind, name, port):
        self.api_client = api_client
        self.namespace, self.kind, self.name, self.port = namespace, kind, name, port

    def resolve(self, exclude=()):
        """(pod name, pod port); LlmdError when there is no ready pod to reach."""
        ns = self.namespace
        if self.kind == "pod":
            pod = k8s_get(self.api_client, "/api/v1/namespaces/{namespace}/pods/{name}", verb="get", resource="pods",
                          namespace=ns, name=self.name)
            if not pod_is_ready(pod) or self.name in exclude:
                raise LlmdError("pod %s in namespace %s is not ready" % (self.name, ns), pod=self.name)
            return self.name, container_port(pod, self.port)
        service = k8s_get(self.api_client, "/api/v1/namespaces/{namespace}/services/{name}", verb="get",
                          resource="services", namespace=ns, name=self.name)
        target = service_target_port(service, self.port)
        selector = service.get("spec", {}).get("selector")
        if not selector:
            raise LlmdError("service %s has no selector, so no pod to forward to" % self.name,
                            hint="forward to a pod instead (option pod)")
        pods = k8s_get(self.api_client, "/api/v1/namespaces/{namespace}/pods", [("labelSelector", label_selector(selector))],
                       verb="list", resource="pods", namespace=ns)["items"]
        pod = pick_pod(pods, exclude)
        if pod is None:
            raise LlmdError("service %s in namespace %s has no ready pod (%d selected)" % (self.name, ns, len(pods)),
                            hint="wait until its pods are Ready (kubectl get pods -l %s)" % label_selector(selector))
        return pod["metadata"]["name"], container_port(pod, target)


# --- upstream streams: one per local connection ---------------------------------------------------------


class WebSocketStream:
    """One pod port over a v4.channel.k8s.io WebSocket: channel 0 carries data, channel 1 errors."""

    def __init__(self, ws, pod):
        _import_websocket()
        self.ws, self.pod = ws, pod
        self.error = None
        self._skip = {0: 2, 1: 2}  # each channel starts with the port number (uint16) before anything else

    def fileno(self):
        return self.ws.sock.fileno()

    def pending(self):
        sock = self.ws.sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def send(self, data):
        self.ws.send_bytes(b"\x00" + data)

    def recv(self):
        """Data for the client; b"" when the frame carried none; None when the stream ended."""
        try:
            opcode, payload = self.ws.recv_data(control_frame=True)
        except (websocket.WebSocketException, OSError) as exc:
            self.error = self.error or str(exc)
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return None
        if opcode != websocket.ABNF.OPCODE_BINARY or not payload:
            return b""
        channel, body = payload[0], payload[1:]
        skip = self._skip.get(channel, 0)
        if skip:
            self._skip[channel] = max(0, skip - len(body))
            body = body[skip:]
        if channel == 1 and body:
            self.error = body.decode("utf-8", "replace")
            return None
        return body if channel == 0 else b""

    def read_preamble(self, timeout):
        """Wait for the port numbers the server writes first: proves the stream is up before it is used."""
        self.ws.settimeout(timeout)
        try:
            while any(self._skip.values()):
                if self.recv() is None:
                    raise UpstreamError(self.error or "the API server closed the port-forward stream")
        except websocket.WebSocketTimeoutException:
            raise UpstreamError("no answer from the API server within %.0f s" % timeout) from None
        finally:
            if self.ws.connected:
                self.ws.settimeout(None)

    def idle_and_open(self):
        """A spare is usable while nothing arrived on it: anything readable means closed or failed."""
        return self.ws.connected and not self.pending() and not select.select([self.ws.sock], [], [], 0)[0]

    def close(self):
        try:
            self.ws.send_close()
        except (websocket.WebSocketException, OSError):
            pass  # already closed by the server
        self.ws.shutdown()


class TcpStream:
    """A plain connection to the local port of a kubectl port-forward."""

    def __init__(self, sock, pod):
        self.sock, self.pod, self.error = sock, pod, None

    def fileno(self):
        return self.sock.fileno()

    def pending(self):
        return False

    def send(self, data):
        self.sock.sendall(data)

    def recv(self):
        try:
            return self.sock.recv(BUFFER) or None
        except OSError as exc:
            self.error = str(exc)
            return None

    def close(self):
        self.sock.close()


def _ssl_context(configuration):
    """The TLS settings of the configuration, loaded once into memory.

    The kubernetes loader writes a kubeconfig's *-data fields to temporary files that the module process
    deletes when it exits; the daemon outlives it, so it keeps what it needs in this context instead.
    """
    if not configuration.verify_ssl:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.ssl_ca_cert or configuration.ca_cert_data:
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert, cadata=configuration.ca_cert_data)
    else:
        context = ssl.create_default_context()
    if configuration.verify_ssl and configuration.assert_hostname is False:
        context.check_hostname = False
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def detach_client_from_files(api_client):
    """Make api_client's TLS independent of files (see _ssl_context); returns the shared SSLContext."""
    configuration = api_client.configuration
    context = _ssl_context(configuration)
    api_client.rest_client.pool_manager.clear()  # connections inherited from the module process
    api_client.rest_client.pool_manager.connection_pool_kw.update(
        ssl_context=context, ca_certs=None, ca_cert_data=None, cert_file=None, key_file=None)
    return context


class WebSocketUpstream:
    """The python backend: a WebSocket per connection, with the api client's credentials and TLS."""

    name = "python"

    def __init__(self, api_client, namespace, ssl_context):
        self.api_client, self.namespace, self.ssl_context = api_client, namespace, ssl_context
        _import_websocket()

    def open(self, pod, port):
        # param_serialize adds the credentials (refreshing an exec plugin's token) and impersonation headers.
        _method, url, headers, _body, _post = self.api_client.param_serialize(
            "GET", "/api/v1/namespaces/{namespace}/pods/{name}/portforward",
            path_params={"namespace": self.namespace, "name": pod}, query_params=[("ports", port)],
            auth_settings=["BearerToken"])
        url = re.sub(r"^http", "ws", url)
        header = ["%s: %s" % (k, v) for k, v in headers.items() if k.lower() not in ("accept", "content-type", "user-agent")]
        header.append("Sec-WebSocket-Protocol: v4.channel.k8s.io")
        options = {"header": header, "timeout": CONNECT_TIMEOUT}
        configuration = self.api_client.configuration
        if configuration.proxy:
            options = websocket_proxycare(options, configuration, url, headers)
        sslopt = {"context": self.ssl_context}
        if configuration.tls_server_name:
            sslopt["server_hostname"] = configuration.tls_server_name
        ws = websocket.WebSocket(sslopt=sslopt, enable_multithread=False)
        try:
            ws.connect(url, **options)
        except websocket.WebSocketBadStatusException as exc:
            if exc.status_code in (401, 403):
                raise self.refusal(exc, pod) from exc
            raise UpstreamError("port-forward to pod %s refused: %s" % (pod, exc)) from exc
        except (websocket.WebSocketException, OSError) as exc:
            raise UpstreamError("port-forward to pod %s refused: %s" % (pod, exc)) from exc
        stream = WebSocketStream(ws, pod)
        stream.read_preamble(CONNECT_TIMEOUT)
        return stream

    def refusal(self, exc, pod):
        """The LlmdError for a handshake the API server refused (401, 403), as every other refused request gets.

        The WebSocket GET needs get on pods/portforward (from Kubernetes 1.35 create too): the verb is the one
        the API server's message names, else get. No other pod would be accepted, so this is no UpstreamError.
        """
        body = getattr(exc, "resp_body", None)  # websocket-client 1.6+
        body = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        verb = re.search(r'cannot (\w+) resource \\?"pods/portforward', body or "")
        refused = ApiException(status=exc.status_code, reason=getattr(exc, "status_message", None))
        refused.body = body
        return kubernetes_error(refused, verb.group(1) if verb else "get", "pods/portforward", self.namespace, pod,
                                api_server(self.api_client))

    def connect(self, pod, port):
        return self.open(pod, port)

    def prepare(self, pod, port):
        """Nothing to start: the Forwarder keeps a spare WebSocket instead."""

    def take_exit(self):
        return None

    def stop(self):
        pass


class KubectlUpstream:
    """The kubectl backend: one `kubectl port-forward pod/P :PORT` on an internal loopback port."""

    name = "kubectl"
    _FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")

    def __init__(self, argv, namespace, lifetime):
        self.argv, self.namespace = list(argv), namespace
        self.deadline = time.monotonic() + lifetime
        self.process = None
        self.target = None  # (pod, port) the running kubectl forwards to
        self.local_port = None
        self.stderr = collections.deque(maxlen=20)
        self.lock = threading.Lock()

    def _start(self, pod, port):
        self.stop()
        command = self.argv + ["port-forward", "--namespace", self.namespace, "pod/%s" % pod,
                               ":%s" % port, "--address", "127.0.0.1"]
        if shutil.which("timeout"):
            # kubectl ends by the daemon's lifetime even if the daemon itself is killed.
            remaining = max(1, int(self.deadline - time.monotonic()) + 1)
            command = ["timeout", "--kill-after=5", str(remaining)] + command
        # run_command waits for the command to end; kubectl port-forward runs as long as the forward does.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                                   stderr=subprocess.PIPE, text=True)
        self.process, self.target = process, (pod, port)
        threading.Thread(target=self._drain, args=(process.stderr, self.stderr), daemon=True).start()
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while time.monotonic() < deadline:
            if not select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
                break
            line = process.stdout.readline()
            if not line:
                break
            match = self._FORWARDING.search(line)
            if match:
                self.local_port = int(match.group(1))
                # kubectl prints a line per connection: keep reading so its pipe never fills.
                threading.Thread(target=self._drain, args=(process.stdout, None), daemon=True).start()
                return
        self.stop()
        raise UpstreamError("kubectl port-forward to pod %s did not start: %s" % (pod, " ".join(self.stderr) or "no output"))

    @staticmethod
    def _drain(pipe, keep):
        for line in pipe:
            if keep is not None and line.strip():
                keep.append(line.strip())

    def prepare(self, pod, port):
        """Have kubectl running for (pod, port); returns its local port."""
        with self.lock:
            if self.target != (pod, port) or self.process is None or self.process.poll() is not None:
                self._start(pod, port)
            return self.local_port

    def connect(self, pod, port):
        local_port = self.prepare(pod, port)
        try:
            sock = socket.create_connection(("127.0.0.1", local_port), timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise UpstreamError("kubectl port-forward is not listening: %s" % exc) from exc
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return TcpStream(sock, pod)

    def take_exit(self):
        """The pod of a kubectl that has exited (it does when it loses the connection to the pod), once."""
        with self.lock:
            if self.process is None or self.process.poll() is None:
                return None
            pod = self.target[0]
            self.process = self.target = None
            return pod

    def stop(self):
        process, self.process, self.target = self.process, None, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the daemon ---------------------------------------------------------------------------------------------


class Forwarder:
    """Accepts local connections and relays each to the current pod, until lifetime or idleness ends it."""

    def __init__(self, listener, resolver, upstream, reconnect, lifetime, idle_timeout, on_change=None):
        self.listener, self.resolver, self.upstream = listener, resolver, upstream
        self.reconnect, self.idle_timeout = reconnect, idle_timeout
        self.deadline = time.monotonic() + lifetime
        self.on_change = on_change or (lambda forwarder: None)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pod = self.pod_port = None
        self.failed = {}  # pod -> when it failed
        self.reconnects = 0
        self.last_error = None
        self.end_reason = None
        self.active = 0
        self.last_activity = time.monotonic()
        self.spare = None
        self.refilling = False

    # pods

    def start(self):
        """Resolve the first pod and open the first upstream (a spare): errors here fail the module."""
        self.pod, self.pod_port = self.resolver.resolve()
        if isinstance(self.upstream, WebSocketUpstream):
            self.spare = self.upstream.open(self.pod, self.pod_port)
        else:
            self.upstream.prepare(self.pod, self.pod_port)

    def current(self):
        with self.lock:
            return self.pod, self.pod_port

    def pod_failed(self, pod, error):
        """The pod could not be reached: pick another ready one (reconnect) or end (kubectl's behaviour)."""
        self.last_error = error
        if not self.reconnect:
            self.stop("the connection to pod %s was lost: %s" % (pod, error))
            return
        now = time.monotonic()
        with self.lock:
            self.failed[pod] = now
            if self.pod != pod:
                return  # another connection already moved on
            exclude = {name for name, when in self.failed.items() if now - when < FAILED_POD_PAUSE}
        try:
            new_pod, new_port = self.resolver.resolve(exclude=exclude)
        except LlmdError as err:
            self.last_error = str(err)
            return
        stale = None
        with self.lock:
            moved = self.pod == pod
            if moved:
                self.pod, self.pod_port = new_pod, new_port
                self.reconnects += 1
                stale, self.spare = self.spare, None
        if stale is not None:
            stale.close()
        if moved:
            self.on_change(self)
            threading.Thread(target=self._refill, daemon=True).start()

    def _open(self):
        """An upstream stream to the current pod, moving to another ready pod while the current one fails."""
        give_up = time.monotonic() + (RECONNECT_WINDOW if self.reconnect else 0)
        while not self.stopping.is_set():
            pod, port = self.current()
            stream = self._take_spare(pod)
            if stream is not None:
                return stream
            try:
                return self.upstream.connect(pod, port)
            except UpstreamError as err:
                self.pod_failed(pod, str(err))
            except LlmdError as err:  # refused (credentials, RBAC): no other pod would be accepted
                self.last_error = str(err)
                return None
            if time.monotonic() > give_up:
                return None
            if self.current()[0] == pod:
                time.sleep(0.1)  # no other ready pod yet
        return None

    def _take_spare(self, pod):
        with self.lock:
            spare, self.spare = self.spare, None
        if spare is None:
            return None
        if spare.pod == pod and spare.idle_and_open():
            return spare
        spare.close()
        return None

    def _refill(self):
        """Open the next connection's WebSocket ahead of time (python backend), or start kubectl."""
        if not isinstance(self.upstream, WebSocketUpstream):
            try:
                self.upstream.prepare(*self.current())
            except UpstreamError as err:
                self.last_error = str(err)
            return
        with self.lock:
            if self.refilling or self.spare is not None:
                return
            self.refilling = True
        try:
            pod, port = self.current()
            try:
                spare = self.upstream.open(pod, port)
            except (UpstreamError, LlmdError):
                return
            with self.lock:
                if self.spare is None and self.pod == pod:
                    self.spare, spare = spare, None
            if spare is not None:
                spare.close()
        finally:
            with self.lock:
                self.refilling = False

    # connections

    def handle(self, local):
        local.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = bytearray()  # what the client sent before the pod answered: replayed if the pod failed
        try:
            for _attempt in range(3):
                stream = self._open()
                threading.Thread(target=self._refill, daemon=True).start()
                if stream is None:
                    return
                try:
                    if sent:
                        stream.send(bytes(sent))
                    if self._relay(local, stream, sent):
                        return
                finally:
                    stream.close()
                # The pod failed before it answered anything: another pod gets the same bytes.
                self.pod_failed(stream.pod, stream.error or "closed before answering")
        except OSError as exc:
            self.last_error = "relay: %s" % exc
        finally:
            local.close()
            with self.lock:
                self.active -= 1
                self.last_activity = time.monotonic()

    def _relay(self, local, stream, sent):
        """Relay until either side ends; False when the pod ended before answering and sent can be replayed."""
        answered = False
        while True:
            ready = [stream] if stream.pending() else select.select([local, stream], [], [])[0]
            if local in ready:
                data = local.recv(BUFFER)
                if not data:
                    return True  # the client is done: as the kubernetes client, end the upstream too
                if not answered:
                    sent.extend(data)
                stream.send(data)
            if stream in ready:
                data = stream.recv()
                if data is None:
                    if stream.error:
                        self.last_error = stream.error
                    return answered or len(sent) > REPLAY_LIMIT
                if data:
                    if not answered:
                        answered = True
                        sent.clear()
                    local.sendall(data)

    # the accept loop

    def stop(self, reason):
        if not self.stopping.is_set():
            self.end_reason = reason
            self.stopping.set()

    def serve(self):
        """Accept until stopped, the lifetime is over or nothing happened for idle_timeout seconds."""
        self.listener.settimeout(TICK)
        signal.signal(signal.SIGTERM, lambda signum, frame: self.stop("stopped (SIGTERM)"))
        # A signal makes wake_read readable, so the wait below ends at once instead of at its next tick: the
        # port_forward task that stopped the daemon waits for it to exit.
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if now >= self.deadline:
                    self.stop("lifetime reached")
                    break
                with self.lock:
                    idle = self.active == 0 and self.idle_timeout and now - self.last_activity >= self.idle_timeout
                if idle:
                    self.stop("idle for %s s" % self.idle_timeout)
                    break
                exited = self.upstream.take_exit()
                if exited is not None:
                    self.pod_failed(exited, "kubectl exited: %s" % " ".join(self.upstream.stderr))
                try:
                    if self.listener not in select.select([self.listener, wake_read], [], [], TICK)[0]:
                        continue
                    local, _peer = self.listener.accept()
                except socket.timeout:
                    continue
                except OSError as exc:
                    self.stop("accept failed: %s" % exc)
                    break
                local.settimeout(None)
                with self.lock:
                    self.active += 1
                    self.last_activity = time.monotonic()
                threading.Thread(target=self.handle, args=(local,), daemon=True).start()
        finally:
            signal.set_wakeup_fd(-1)
            os.close(wake_read)
            os.close(wake_write)
            self.listener.close()
            self.upstream.stop()
            with self.lock:
                spare, self.spare = self.spare, None
            if spare is not None:
                spare.close()


def kubectl_argv(binary, params):
    """kubectl's command line without credentials: the kubeconfig file, context and impersonation only."""
    kubeconfig = params.get("kubeconfig")
    direct = [name for name in ("host", "api_key", "username", "password", "client_cert", "client_key", "ca_cert")
              if params.get(name)]
    if direct or isinstance(kubeconfig, dict):
        raise LlmdError("backend kubectl reads its credentials from a kubeconfig file only (given: %s)"
                        % ", ".join(direct or ["kubeconfig as a dict"]),
                        hint="pass kubeconfig (a path) and context, or use backend python; credentials never go on "
                             "kubectl's command line")
    argv = [binary]
    if kubeconfig:
        argv += ["--kubeconfig", os.path.expanduser(kubeconfig)]
    if params.get("context"):
        argv += ["--context", params["context"]]
    if params.get("validate_certs") is False:
        argv.append("--insecure-skip-tls-verify")
    if params.get("impersonate_user"):
        argv += ["--as", params["impersonate_user"]]
    for group in params.get("impersonate_groups") or []:
        argv += ["--as-group", group]
    return argv
