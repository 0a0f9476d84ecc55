# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""State handling of port_forward: the directory, state files, stale cleanup, the local port."""

from __future__ import annotations

import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.llmd.verify.plugins.module_utils import _port_forward as pf
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError


@pytest.fixture
def directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return pf.state_dir()


@pytest.fixture
def sleeper():
    """A live process of ours standing in for a daemon."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _state(pid, **extra):
    state = {"pid": pid, "start_time": pf.process_start_time(pid), "local_port": 8000, "namespace": "ns",
             "target": {"kind": "service", "name": "gw", "port": 80}, "endpoint": "http://127.0.0.1:8000",
             "address": "127.0.0.1", "settings": {"backend": "python", "reconnect": True}, "expires_at": "t",
             "key": {"cluster": "https://k", "context": None, "namespace": "ns", "kind": "service", "name": "gw",
                     "remote_port": "80", "address": "127.0.0.1", "local_port": 8000}}
    state.update(extra)
    return state


def test_state_dir_is_private_and_repaired(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = pf.state_dir()
    assert path == str(tmp_path / "llmd_verify" / "port_forward")
    os.chmod(path, 0o755)
    assert stat.S_IMODE(os.stat(pf.state_dir()).st_mode) == 0o700


def test_state_dir_falls_back_to_home(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pf.state_dir() == str(tmp_path / ".ansible" / "llmd_verify" / "port_forward")


def test_state_file_is_owner_only_and_round_trips(directory):
    path = os.path.join(directory, "a.json")
    pf.write_state(path, {"pid": 2, "pod": "p"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert pf.read_state(path) == {"pid": 2, "pod": "p"}
    assert os.listdir(directory) == ["a.json"]  # no temporary file left


@pytest.mark.parametrize("content", ["", "not json", "[1]", '{"pid": "1"}'])
def test_unreadable_state_is_none(directory, content):
    path = os.path.join(directory, "bad.json")
    with open(path, "w") as handle:
        handle.write(content)
    assert pf.read_state(path) is None


def test_forward_key_depends_on_every_field_only():
    identity = _state(1)["key"]
    assert pf.forward_key(identity) == pf.forward_key(dict(reversed(list(identity.items()))))
    for field in identity:
        assert pf.forward_key(dict(identity, **{field: "other"})) != pf.forward_key(identity)


def test_live_forwards_keeps_live_and_removes_stale(directory, sleeper):
    live = os.path.join(directory, "live.json")
    stale = os.path.join(directory, "stale.json")
    broken = os.path.join(directory, "broken.json")
    pf.write_state(live, _state(sleeper.pid))
    pf.write_state(stale, _state(_dead_pid()))
    with open(broken, "w") as handle:
        handle.write("{")
    assert list(pf.live_forwards(directory)) == [live]
    assert os.listdir(directory) == ["live.json"]


def test_reused_pid_is_not_our_daemon(sleeper):
    assert pf.daemon_alive(_state(sleeper.pid))
    assert not pf.daemon_alive(_state(sleeper.pid, start_time=pf.process_start_time(sleeper.pid) - 1))


def test_remove_state_spares_a_newer_owner(directory):
    path = os.path.join(directory, "x.json")
    pf.write_state(path, {"pid": 2})
    pf.remove_state(path, pid=1)
    assert os.path.exists(path)
    pf.remove_state(path, pid=2)
    assert not os.path.exists(path)


def test_stop_daemon_ends_the_process_and_its_state(directory, sleeper):
    path = os.path.join(directory, "s.json")
    state = _state(sleeper.pid)
    pf.write_state(path, state)
    pf.stop_daemon(path, state)
    assert sleeper.wait(5) is not None
    assert not os.path.exists(path)


def test_ensure_absent_all_stops_every_forward(directory, sleeper):
    path = os.path.join(directory, "s.json")
    pf.write_state(path, _state(sleeper.pid, endpoint="http://127.0.0.1:8000", address="127.0.0.1", pod="p",
                                settings={"backend": "python", "reconnect": True}, expires_at="t"))
    result = pf.ensure_absent({"all": True}, check_mode=True)
    assert result["changed"] and result["stopped"][0]["pid"] == sleeper.pid
    assert sleeper.poll() is None  # check mode stops nothing
    assert pf.ensure_absent({"all": True})["changed"]
    assert sleeper.wait(5) is not None
    assert pf.ensure_absent({"all": True}) == {"changed": False, "stopped": []}


def test_free_port_is_picked():
    listener = pf.bind_listener("127.0.0.1", 0, {})
    try:
        assert listener.getsockname()[1] > 0
    finally:
        listener.close()


def test_port_in_use_names_our_forward():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(LlmdError, match="in use by port-forward ns/service gw/80 .pid 42."):
            pf.bind_listener("127.0.0.1", port, {"p": _state(42, local_port=port)})
        with pytest.raises(LlmdError, match="in use by pid %d" % os.getpid()):
            pf.bind_listener("127.0.0.1", port, {})
    finally:
        holder.close()


@pytest.mark.parametrize("address, url", [("127.0.0.1", "http://127.0.0.1:8000"), ("0.0.0.0", "http://127.0.0.1:8000"),
                                          ("::1", "http://[::1]:8000"), ("10.1.2.3", "http://10.1.2.3:8000")])
def test_endpoint_url(address, url):
    assert pf.endpoint_url(address, 8000) == url


# --- a forward is found again by its target, and by its local port when one is given -----------------------------

class _Configuration:
    host = "https://k8s.test:6443"


class _Client:
    configuration = _Configuration()


@pytest.fixture
def fake_daemons(directory, monkeypatch):
    """start_daemon replaced by a process that holds the bound listener (so the port accepts connections)."""
    started = []

    def start_daemon(listener, api_client, params, state_path, state):
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=[listener.fileno()])
        listener.close()
        started.append(process)
        state.update(pid=process.pid, start_time=pf.process_start_time(process.pid), pod="gw-0", pod_port=80)
        pf.write_state(state_path, state)
        return pf.read_state(state_path)

    monkeypatch.setattr(pf, "start_daemon", start_daemon)
    monkeypatch.setattr(pf, "get_api_client", lambda params: _Client())
    yield started
    for process in started:
        process.kill()
        process.wait()


def _forward(**given):
    params = {"state": "present", "namespace": "llm-d", "service": "gw", "pod": None, "remote_port": "80",
              "local_port": None, "address": None, "backend": "python", "kubectl_binary": "kubectl", "reconnect": True,
              "lifetime": 60, "idle_timeout": 0, "wait_path": None, "wait_timeout": 5, "all": False, "context": None}
    params.update(given)
    return params


def test_a_forward_started_on_port_0_is_found_again_by_the_port_it_got(fake_daemons):
    first = pf.ensure_present(_forward(local_port=0))
    assert first["changed"] and first["local_port"] > 0
    again = pf.ensure_present(_forward(local_port=first["local_port"]))
    assert again["changed"] is False and again["pid"] == first["pid"] and len(fake_daemons) == 1
    assert pf.ensure_present(_forward(local_port=0))["pid"] == first["pid"]  # and by its target alone
    assert pf.ensure_present(_forward())["pid"] == first["pid"]
    stopped = pf.ensure_absent(_forward(state="absent", local_port=first["local_port"]))
    assert stopped["changed"] and [s["pid"] for s in stopped["stopped"]] == [first["pid"]]
    assert fake_daemons[0].wait(5) is not None


def test_two_forwards_to_one_target_on_two_given_ports_are_two(fake_daemons):
    with socket.socket() as first, socket.socket() as second:  # two ports that were free a moment ago
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        ports = [first.getsockname()[1], second.getsockname()[1]]
    one = pf.ensure_present(_forward(local_port=ports[0]))
    two = pf.ensure_present(_forward(local_port=ports[1]))
    assert one["changed"] and two["changed"] and one["pid"] != two["pid"]
    assert pf.ensure_present(_forward(local_port=ports[1]))["pid"] == two["pid"]
    other = pf.ensure_absent(_forward(state="absent", service="other"))
    assert other == {"changed": False, "stopped": []}  # another target: nothing of these
    assert len(pf.ensure_absent(_forward(state="absent"))["stopped"]) == 2  # the target, any port


def test_a_forward_is_stopped_without_a_client_when_started_with_the_same_configuration(
        fake_daemons, monkeypatch, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters: [one]\n")
    started = pf.ensure_present(_forward(local_port=0, kubeconfig=str(kubeconfig), api_key="secret-token"))
    state_files = [os.path.join(pf.state_dir(), name) for name in os.listdir(pf.state_dir())]
    assert state_files and not any("secret-token" in open(path).read() for path in state_files)

    def no_client(params):
        raise AssertionError("a client was built to stop a forward of the same configuration")

    monkeypatch.setattr(pf, "get_api_client", no_client)
    stopped = pf.ensure_absent(_forward(state="absent", kubeconfig=str(kubeconfig), api_key="another-token"))
    assert [s["pid"] for s in stopped["stopped"]] == [started["pid"]]


def test_a_forward_of_another_configuration_is_stopped_only_if_its_cluster_is_the_same(
        fake_daemons, monkeypatch, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters: [one]\n")
    started = pf.ensure_present(_forward(local_port=0, kubeconfig=str(kubeconfig)))
    kubeconfig.write_text("clusters: [two]\n")  # the same path, now another file: the client must say

    class _Elsewhere:
        class configuration:  # pylint: disable=invalid-name
            host = "https://elsewhere.test:6443"

    monkeypatch.setattr(pf, "get_api_client", lambda params: _Elsewhere())
    assert pf.ensure_absent(_forward(state="absent", kubeconfig=str(kubeconfig))) == {"changed": False, "stopped": []}
    monkeypatch.setattr(pf, "get_api_client", lambda params: _Client())  # the cluster it was started on
    stopped = pf.ensure_absent(_forward(state="absent", kubeconfig=str(kubeconfig)))
    assert [s["pid"] for s in stopped["stopped"]] == [started["pid"]]


def test_the_daemon_keeps_nothing_of_its_caller_but_what_it_is_given():
    # An Ansible worker's pipes, or a module's stdout that Ansible reads until it closes: the daemon must not
    # hold them open, nor keep the caller's signal handlers (a worker's signal its whole process group).
    callers_read, callers_write = os.pipe()
    status_read, status_write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the forked child
        try:
            signal.signal(signal.SIGINT, lambda signum, frame: None)
            pf._detach_from_caller(keep=(status_write,))
            os.write(status_write, b"%d %d\n" % (signal.getsignal(signal.SIGINT) == signal.SIG_DFL,
                                                 signal.getsignal(signal.SIGTERM) == signal.SIG_DFL))
            time.sleep(5)
        finally:
            os._exit(0)
    try:
        os.close(callers_write)
        os.close(status_write)
        assert os.read(status_read, 64) == b"1 1\n"
        # The caller's pipe ends at once although the child lives on: the child's copy points at /dev/null.
        assert select.select([callers_read], [], [], 2)[0] and os.read(callers_read, 64) == b""
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(callers_read)
        os.close(status_read)
