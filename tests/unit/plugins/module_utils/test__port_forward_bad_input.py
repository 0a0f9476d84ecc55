# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input for port_forward's state files (_port_forward): whatever a state file holds, no traceback, no stray signal.

A state file may be truncated, edited, or written by another version; its pid is signalled when the forward is
stopped. Signals are recorded here, never sent: a pid of 0 or -1 would reach a process group or every process.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils import _port_forward as pf
from ansible_collections.llmd.verify.tests.unit.plugins.bad_input import DEEP_JSON, JSON, PROPERTIES

PIDS = st.sampled_from([-1, 0, 1, True, 2 ** 70, "1", None]) | st.integers(-5, 5)
STATES = st.one_of(JSON, st.builds(lambda pid, extra: dict(extra, pid=pid), PIDS, st.dictionaries(st.sampled_from(
    ["key", "endpoint", "local_port", "address", "namespace", "target", "settings", "expires_at", "start_time"]),
    JSON | st.just({"backend": "python", "reconnect": True}), max_size=9)))


class Signals:
    """os.kill as the state code calls it: signal 0 finds every pid alive, other signals are only recorded."""

    def __init__(self):
        self.sent = []

    def __call__(self, pid, sig):
        if sig != 0:
            self.sent.append((pid, sig))


@pytest.fixture
def signals(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    recorder = Signals()
    monkeypatch.setattr(pf.os, "kill", recorder)
    monkeypatch.setattr(pf, "_proc_stat", lambda pid: None)  # no /proc entry to compare: the signal check decides
    monkeypatch.setattr(pf, "STOP_TIMEOUT", 0)
    return recorder


# The fixture's directory is emptied by each example itself.
@settings(PROPERTIES, suppress_health_check=list(PROPERTIES.suppress_health_check) + [HealthCheck.function_scoped_fixture])
@given(st.lists(STATES.map(json.dumps) | st.sampled_from(["", "{", DEEP_JSON.decode()]), max_size=3))
def test_any_state_files_are_listed_or_stopped_without_traceback_or_stray_signal(signals, contents):
    directory = pf.state_dir()
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    for index, content in enumerate(contents):
        with open(os.path.join(directory, "%d.json" % index), "w") as handle:
            handle.write(content)
    signals.sent.clear()
    result = pf.ensure_absent({"all": True})
    assert all(isinstance(stopped["pid"], int) and stopped["pid"] > 1 for stopped in result["stopped"])
    assert all(pid > 1 for pid, _sig in signals.sent), signals.sent
    assert os.listdir(directory) == []


@pytest.mark.parametrize("pid", [-1, 0, 1, True])
def test_a_state_file_naming_pid_0_1_or_minus_1_is_never_signalled(signals, pid):
    path = os.path.join(pf.state_dir(), "x.json")
    state = {"pid": pid, "key": {}, "endpoint": "http://127.0.0.1:8000", "local_port": 8000, "address": "127.0.0.1",
             "namespace": "ns", "target": {}, "settings": {"backend": "python", "reconnect": True}, "expires_at": "t"}
    pf.write_state(path, state)
    assert pf.read_state(path) is None
    assert pf.ensure_absent({"all": True}) == {"changed": False, "stopped": []}
    assert signals.sent == [] and not os.path.exists(path)


def test_a_state_file_missing_fields_is_stale_not_a_key_error(signals):
    path = os.path.join(pf.state_dir(), "x.json")
    pf.write_state(path, {"pid": 4242, "settings": "python"})
    assert pf.ensure_absent({"all": True}) == {"changed": False, "stopped": []}
    assert signals.sent == [] and not os.path.exists(path)


def test_the_signals_recorded_are_sigterm_then_sigkill(signals):
    path = os.path.join(pf.state_dir(), "x.json")
    pf.write_state(path, {"pid": 4242, "key": {}, "endpoint": "e", "local_port": 1, "address": "a", "namespace": "n",
                          "target": {}, "settings": {"backend": "python", "reconnect": True}, "expires_at": "t"})
    assert pf.ensure_absent({"all": True})["changed"]
    assert signals.sent == [(4242, signal.SIGTERM), (4242, signal.SIGKILL)]
