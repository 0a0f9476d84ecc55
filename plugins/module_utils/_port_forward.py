# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Background port-forwards that outlive the module: their state files, and starting and stopping them.

    result = ensure_present(params, check_mode=False, warn=module.warn)   # or ensure_absent(params, ...)

One forward is one daemon process and one state file, named by a digest of its target (API server,
context, namespace, kind, name, remote port) and its local address and the local port it got. A forward is
found again by its target, and by its local address and port when they are given: one started with
local_port 0 is found by the port it got, or by its target alone. The state directory is
`$XDG_RUNTIME_DIR/llmd_verify/port_forward` or `~/.ansible/llmd_verify/port_forward` (0700, files 0600);
a state file holds the pid, ports, target and the pod reached now, never a credential. A state file whose
process is gone is stale and removed whenever the directory is read.

The daemon is the process that runs the module's work (a module process, or the Ansible worker when the task
runs in the controller) forked twice, the second child in its own session and holding nothing of its caller's
but the listener: the credentials it needs stay in memory, never written to a file or put on a command line.
The module binds the local port itself (a port held by another process is reported at once) and waits on a
pipe until the daemon has reached the first pod.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import time
import traceback
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import config_digest, get_api_client
from ansible_collections.llmd.verify.plugins.module_utils._port_forward_relay import (
    Forwarder,
    KubectlUpstream,
    Resolver,
    UpstreamError,
    WebSocketUpstream,
    detach_client_from_files,
    kubectl_argv,
)

DEFAULT_LOCAL_PORT = 8000  # the seed's `kubectl port-forward ... 8000:80`
START_TIMEOUT = 60  # seconds the module waits for the daemon to reach the first pod
STOP_TIMEOUT = 5  # seconds a daemon gets to end after SIGTERM before SIGKILL
PROCESS_NAME = "llmd-port-fwd"  # the daemon's name in ps (at most 15 characters)
SETTINGS = ("backend", "reconnect", "lifetime", "idle_timeout")


# --- the state directory and its files ------------------------------------------------------------------------


def state_dir():
    """The per-user state directory, created 0700 (and made 0700 again if someone widened it)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        path = os.path.join(runtime, "llmd_verify", "port_forward")
    else:
        path = os.path.join(os.path.expanduser("~"), ".ansible", "llmd_verify", "port_forward")
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def forward_key(identity):
    """The state file name of a forward: a digest of the dict that identifies it."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def write_state(path, state):
    """Write a state file atomically, readable by its owner only."""
    temp = "%s.%d.tmp" % (path, os.getpid())
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "w") as out:
        json.dump(state, out, sort_keys=True)
    os.replace(temp, path)


def read_state(path):
    """The state in path, or None when it is missing or unreadable.

    Its pid is signalled later: a pid of 0, 1 or below (a process group, init, every process) is never a daemon's.
    """
    try:
        with open(path) as handle:
            state = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return None
    pid = state.get("pid") if isinstance(state, dict) else None
    return state if isinstance(pid, int) and not isinstance(pid, bool) and pid > 1 else None


def _well_formed(state):
    """Whether a state has every field result_of and the module read (a file edited or from another version may not)."""
    fields = (("key", dict), ("endpoint", str), ("local_port", int), ("address", str), ("namespace", str),
              ("target", dict), ("settings", dict), ("expires_at", str))
    return (all(isinstance(state.get(name), kind) for name, kind in fields)
            and all(name in state["settings"] for name in ("backend", "reconnect")))


def _proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (state first), or None without /proc."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start_time(pid):
    """When the process started (clock ticks since boot), to tell a reused pid apart; None if unknown."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def daemon_alive(state):
    """Whether the state's daemon still runs (same pid, same start time, not a zombie)."""
    pid = state["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process took the pid
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc: the signal check is all we have
    recorded = state.get("start_time")
    return fields[0] != "Z" and (recorded is None or int(fields[19]) == recorded)


def live_forwards(directory):
    """{path: state} of the forwards whose daemon runs; stale state files are removed."""
    live = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        state = read_state(path)
        if state is not None and _well_formed(state) and daemon_alive(state):
            live[path] = state
        else:
            remove_state(path, state["pid"] if state else None)
    return live


def remove_state(path, pid=None):
    """Remove a state file, but only if it still belongs to pid (when given): a new daemon may own it now."""
    if pid is not None:
        current = read_state(path)
        if current is not None and current["pid"] != pid:
            return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def stop_daemon(path, state):
    """SIGTERM the daemon, SIGKILL it if it lingers, and remove its state file."""
    pid = state["pid"]
    if daemon_alive(state):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while daemon_alive(state) and time.monotonic() < deadline:
            time.sleep(0.05)
        if daemon_alive(state):
            os.kill(pid, signal.SIGKILL)
    remove_state(path, pid)


# --- the local port ---------------------------------------------------------------------------------------------


def _proc_listener_pid(port):
    """(pid, command line) of a process of ours listening on port, from /proc; None when not found."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add("socket:[%s]" % fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc") if inodes else []):
        if inodes & _socket_links(pid):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    return int(pid), handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                return int(pid), "?"
    return None


def _socket_links(pid):
    links = set()
    try:
        fds = os.listdir("/proc/%s/fd" % pid)
    except OSError:
        return links  # another user's process, or it just ended
    for fd in fds:
        try:
            links.add(os.readlink("/proc/%s/fd/%s" % (pid, fd)))
        except OSError:
            continue  # closed meanwhile
    return links


def port_holder(port, forwards):
    """Who holds a local port, as well as we can tell: one of our forwards, or a process of ours."""
    for state in forwards.values():
        if state.get("local_port") == port:
            target = state.get("target", {})
            return "port-forward %s/%s %s/%s (pid %s)" % (
                state.get("namespace"), target.get("kind"), target.get("name"), target.get("port"), state["pid"])
    found = _proc_listener_pid(port)
    if found:
        return "pid %d (%s)" % found
    return "another process (not one of this user's)"


def bind_listener(address, port, forwards):
    """A listening socket on address:port (0 picks a free port); a clear error naming the holder if taken."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT; a listener still conflicts
    try:
        listener.bind((address, port))
        listener.listen(128)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise LlmdError("local port %s:%d is already in use by %s" % (address, port, port_holder(port, forwards)),
                            hint="choose another local_port, or local_port: 0 for a free one") from exc
        raise LlmdError("cannot listen on %s:%d: %s" % (address, port, exc.strerror),
                        hint="check the address option") from exc
    return listener


def endpoint_url(address, port):
    host = "127.0.0.1" if address in ("0.0.0.0", "") else ("::1" if address == "::" else address)
    return "http://%s:%d" % ("[%s]" % host if ":" in host else host, port)


def accepts_connections(address, port):
    host = endpoint_url(address, port).split("//", 1)[1].rsplit(":", 1)[0].strip("[]")
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def wait_for_http(url, timeout):
    """Poll url until it answers 2xx; LlmdError with the last answer when timeout passes."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with open_url(url, timeout=max(1.0, min(10.0, deadline - time.monotonic())), validate_certs=False) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            last = "HTTP %d %s" % (exc.code, exc.read(200).decode(errors="replace").strip())
        except (urllib.error.URLError, UrlsConnectionError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            raise LlmdError("%s did not answer 2xx within %s s (last: %s)" % (url, timeout, last),
                            hint="the forward works but the server behind it is not ready; raise wait_timeout or check the pods")
        time.sleep(0.5)


# --- the daemon ---------------------------------------------------------------------------------------------------


def _detach_from_caller(keep):
    """In the daemon: every descriptor it inherited but those in keep pointed at /dev/null, and the caller's
    SIGINT and SIGTERM handlers dropped.

    The caller is a module process (Ansible reads its stdout until it closes) or an Ansible worker (it holds
    its controller's pipes, and its handlers signal the worker's process group). A descriptor is pointed at
    /dev/null rather than closed: a Python object of the caller's still owns its number and closes it when
    collected, which would otherwise close whatever the daemon opened under that number since. The api
    client's connections are closed by detach_client_from_files.
    """
    null = os.open(os.devnull, os.O_RDWR)
    try:
        inherited = [int(name) for name in os.listdir("/dev/fd")]
    except OSError:  # no /dev/fd: stdio at least
        inherited = [0, 1, 2]
    for fd in inherited:
        if fd == null or fd in keep:
            continue
        try:
            os.fstat(fd)
        except OSError:
            continue  # the listing's own descriptor, closed since
        os.dup2(null, fd)
    os.close(null)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def _name_process():
    """ps and top show the daemon by this name (its command line stays its caller's: ansible-playbook's, or the
    module's)."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(PROCESS_NAME)
    except OSError:
        pass  # not Linux: the caller's name


def _send(fd, message):
    os.write(fd, (json.dumps(message) + "\n").encode())


def _run_daemon(listener, status_fd, api_client, params, state_path, state):
    """The daemon's body: reach the first pod, report on status_fd, then serve until it ends itself."""
    forwarder = None
    try:
        namespace, target = params["namespace"], state["target"]
        ssl_context = detach_client_from_files(api_client)
        if params["backend"] == "kubectl":
            upstream = KubectlUpstream(kubectl_argv(params["kubectl_binary"], params), namespace, params["lifetime"])
        else:
            upstream = WebSocketUpstream(api_client, namespace, ssl_context)
        resolver = Resolver(api_client, namespace, target["kind"], target["name"], target["port"])

        def record(current):
            state.update(pod=current.pod, pod_port=current.pod_port, reconnects=current.reconnects,
                         last_error=current.last_error)
            write_state(state_path, state)

        forwarder = Forwarder(listener, resolver, upstream, params["reconnect"], params["lifetime"],
                              params["idle_timeout"], on_change=record)
        forwarder.start()
        state.update(pid=os.getpid(), start_time=process_start_time(os.getpid()))
        record(forwarder)
    except (LlmdError, UpstreamError) as err:
        _send(status_fd, dict(getattr(err, "details", {}), ok=False, msg=str(getattr(err, "msg", err)),
                              hint=getattr(err, "hint", None)))
        return
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # Not hidden: a bug in the daemon goes back to the module with its traceback.
        _send(status_fd, {"ok": False, "msg": "the port-forward daemon failed: %s" % exc, "exception": traceback.format_exc()})
        return
    _send(status_fd, {"ok": True})
    os.close(status_fd)
    try:
        forwarder.serve()
    finally:
        remove_state(state_path, os.getpid())


def start_daemon(listener, api_client, params, state_path, state):
    """Fork the daemon (twice, new session) and wait until it reached the first pod; returns its state."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked processes
        try:
            os.close(read_end)
            os.setsid()
            if os.fork() == 0:
                _detach_from_caller(keep=(listener.fileno(), write_end))
                _name_process()
                _run_daemon(listener, write_end, api_client, params, state_path, state)
        finally:
            os._exit(0)  # never return into the module's code
    os.close(write_end)
    listener.close()
    os.waitpid(child, 0)
    try:
        message = _read_message(read_end, START_TIMEOUT)
    finally:
        os.close(read_end)
    if message is None:
        raise LlmdError("the port-forward daemon did not report within %d s" % START_TIMEOUT)
    if not message.pop("ok"):
        raise LlmdError(message.pop("msg"), **{k: v for k, v in message.items() if v is not None})
    return read_state(state_path)


def _read_message(fd, timeout):
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n") and select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data) if data.endswith(b"\n") else None


# --- the module's two states --------------------------------------------------------------------------------------


def _target_identity(params, api_client):
    """What a forward goes to: the fields that identify it, with the local side left out (and the cluster
    without an api_client)."""
    target = _target(params)
    identity = {"context": params.get("context"), "namespace": params["namespace"],
                "kind": target["kind"], "name": target["name"], "remote_port": str(params["remote_port"])}
    if api_client is not None:
        identity["cluster"] = api_client.configuration.host
    return identity


def _same_forward(state, target, address=None, local_port=None):
    """Whether a forward's state is the one meant: the same target, and the same local address and port
    when they are given (local_port 0, "any free port", matches any)."""
    key = state.get("key") or {}
    if any(key.get(field) != target[field] for field in target):
        return False
    if address is not None and state.get("address") != address:
        return False
    return not local_port or state.get("local_port") == local_port


def _target(params):
    kind = "service" if params.get("service") else "pod"
    port = params.get("remote_port")
    return {"kind": kind, "name": params.get(kind), "port": int(port) if str(port).isdigit() else port}


def result_of(state):
    """What the module returns about a forward (the state minus internals)."""
    return {
        "endpoint": state["endpoint"], "local_port": state["local_port"], "address": state["address"],
        "pid": state["pid"], "pod": state.get("pod"), "pod_port": state.get("pod_port"),
        "namespace": state["namespace"], "target": state["target"], "backend": state["settings"]["backend"],
        "reconnect": state["settings"]["reconnect"], "expires_at": state["expires_at"],
        "reconnects": state.get("reconnects", 0),
    }


def ensure_present(params, check_mode=False, warn=None):
    """Start the forward unless the same one runs and is healthy; the module's result."""
    if params["backend"] == "kubectl" and not shutil.which(params["kubectl_binary"]):
        raise LlmdError("backend kubectl needs the kubectl binary, not found: %s" % params["kubectl_binary"],
                        hint="install kubectl, set kubectl_binary, or use backend python")
    if params["backend"] == "kubectl":
        kubectl_argv(params["kubectl_binary"], params)  # fails early on credentials kubectl cannot get safely
    address = params.get("address") or "127.0.0.1"
    if params.get("address") and not _is_loopback(address) and warn:
        warn("the forward listens on %s: anyone who can reach that address reaches the pod with your "
             "Kubernetes credentials" % address)
    api_client = get_api_client(params)
    target = _target_identity(params, api_client)
    directory = state_dir()
    forwards = live_forwards(directory)
    settings = {name: params[name] for name in SETTINGS}
    wanted_port = params.get("local_port")
    same = sorted(((path, state) for path, state in forwards.items()
                   if _same_forward(state, target, params.get("address"), wanted_port)),
                  key=lambda item: (item[1].get("address") != address, item[1].get("local_port")))
    for _path, existing in same:
        if existing.get("settings") == settings and accepts_connections(existing["address"], existing["local_port"]):
            result = dict(result_of(existing), changed=False)
            if params.get("wait_path") and not check_mode:
                wait_for_http(existing["endpoint"] + params["wait_path"], params["wait_timeout"])
            return result
    # A forward to the same target that is unhealthy or has other settings is replaced, on its own port.
    replaced = same[0] if same else None
    port = replaced[1]["local_port"] if replaced else (DEFAULT_LOCAL_PORT if wanted_port is None else wanted_port)
    if check_mode:
        return {"changed": True, "endpoint": endpoint_url(address, port) if port else None, "local_port": port or None,
                "address": address, "pid": None, "pod": None, "target": _target(params), "namespace": params["namespace"]}
    if replaced:
        stop_daemon(*replaced)
        forwards.pop(replaced[0], None)
    listener = bind_listener(address, port, forwards)
    port = listener.getsockname()[1]
    key = dict(target, address=address, local_port=port)
    path = os.path.join(directory, forward_key(key) + ".json")
    now = time.time()
    state = {
        "key": key, "config": config_digest(params), "pid": None, "address": address, "local_port": port,
        "endpoint": endpoint_url(address, port),
        "namespace": params["namespace"], "target": _target(params), "settings": settings,
        "started_at": _iso(now), "expires_at": _iso(now + params["lifetime"]),
    }
    state = start_daemon(listener, api_client, params, path, state)
    if params.get("wait_path"):
        try:
            wait_for_http(state["endpoint"] + params["wait_path"], params["wait_timeout"])
        except LlmdError:
            stop_daemon(path, state)  # a forward that is not what was asked for is not left behind
            raise
    return dict(result_of(state), changed=True)


def ensure_absent(params, check_mode=False):
    """Stop the matching forwards (every one of this user's with all); the module's result."""
    directory = state_dir()
    forwards = live_forwards(directory)
    if params.get("all"):
        matches = forwards
    else:
        matches = _forwards_to(params, forwards)
    if not check_mode:
        for path, state in matches.items():
            stop_daemon(path, state)
    return {"changed": bool(matches), "stopped": [result_of(state) for state in matches.values()]}


def _forwards_to(params, forwards):
    """The forwards to the target in params. Those started with the same configuration (the same kubeconfig and
    context) are known to go to its cluster without building a client; only others need the client's address."""
    target = _target_identity(params, None)
    if params.get("remote_port") is None:
        del target["remote_port"]  # any port of the target
    candidates = {path: state for path, state in forwards.items()
                  if _same_forward(state, target, params.get("address"), params.get("local_port"))}
    digest = config_digest(params)
    if all(state.get("config") == digest for state in candidates.values()):
        return candidates
    target["cluster"] = get_api_client(params).configuration.host
    return {path: state for path, state in candidates.items() if _same_forward(state, target)}


def _is_loopback(address):
    return address == "localhost" or address.startswith("127.") or address == "::1"


def _iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).replace(microsecond=0).isoformat()
