"""The leftover checker fails on what a run leaked, and only on that: `python -m pytest tests/tools`.

Each test leaks on purpose (a sleeper with a suite-like command line, a listening socket on a sandbox address, a
network namespace), runs the checker, and ends what it started in a finalizer; every sleeper also ends by itself.
Assertions look for the test's own pid or name, so that a developer's processes started meanwhile do not matter.
"""

from __future__ import annotations

import os
import shutil
import secrets
import signal
import subprocess
import sys
import time

import pytest

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_leftovers.py")
LIFETIME = "60"  # seconds a sleeper lives if its finalizer never runs
SLEEP = "import sys, time; time.sleep(float(sys.argv[1]))"
LISTEN = ("import socket, sys, time; s = socket.socket(); s.bind((sys.argv[2], 0)); s.listen(); "
          "print(s.getsockname()[1], flush=True); time.sleep(float(sys.argv[1]))")


def run_checker(*args, marker=None):
    env = {k: v for k, v in os.environ.items() if k != "LLMD_VERIFY_LEFTOVER_RUN"}
    if marker:
        env["LLMD_VERIFY_LEFTOVER_RUN"] = marker
    return subprocess.run([sys.executable, CHECKER, *args], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


@pytest.fixture
def spawn():
    """Start a process in a session of its own (as a daemon would be); it is killed when the test ends."""
    started = []

    def start(argv, marker=None, read_line=False):
        env = {k: v for k, v in os.environ.items() if k != "LLMD_VERIFY_LEFTOVER_RUN"}
        if marker:
            env["LLMD_VERIFY_LEFTOVER_RUN"] = marker
        process = subprocess.Popen(argv, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE if read_line else subprocess.DEVNULL)
        started.append(process)
        if read_line:
            return process, process.stdout.readline().decode().strip()
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        if process.stdout:
            process.stdout.close()


def suite_like(name):
    """A sleeper whose command line looks like a play of the suite's."""
    return [sys.executable, "-c", SLEEP, LIFETIME, "ansible-playbook", "-i", "localhost,", "-c", "local", name]


def snapshot(tmp_path, marker=None):
    """A snapshot and the marker of a run of our own, as `make test` takes them."""
    path = str(tmp_path / "snapshot.json")
    done = run_checker("snapshot", path, marker=marker or "run-test-%s" % secrets.token_hex(4))
    assert done.returncode == 0, done.stderr
    return path, done.stdout.strip()


def test_a_leaked_process_fails_the_check_and_is_named(tmp_path, spawn):
    path, marker = snapshot(tmp_path)
    leaked = spawn(suite_like("leaked_on_purpose.yml"), marker=marker)
    done = run_checker("check", path, "--wait", "0", "--label", "the leak test")
    assert done.returncode == 1
    assert "LEFTOVERS after the leak test" in done.stdout
    assert "process %d: " % leaked.pid in done.stdout
    assert "ansible-playbook -i localhost, -c local leaked_on_purpose.yml" in done.stdout  # the whole command line


def test_kill_ends_the_leftover(tmp_path, spawn):
    path, marker = snapshot(tmp_path)
    leaked = spawn(suite_like("killed_by_the_checker.yml"), marker=marker)
    done = run_checker("check", path, "--wait", "0", "--kill")
    assert done.returncode == 1 and "process %d: " % leaked.pid in done.stdout
    assert leaked.wait(10) == -signal.SIGTERM


def test_what_ran_before_the_snapshot_is_not_counted(tmp_path, spawn):
    marker = "run-test-%s" % secrets.token_hex(4)
    beside = spawn(suite_like("running_before.yml"), marker=marker)  # even with the run's own marker
    path, _marker = snapshot(tmp_path, marker)
    done = run_checker("check", path, "--wait", "0")
    assert "process %d: " % beside.pid not in done.stdout
    assert beside.poll() is None


def test_a_process_that_ends_within_the_wait_is_not_counted(tmp_path, spawn):
    path, marker = snapshot(tmp_path)
    short = spawn([sys.executable, "-c", SLEEP, "1", "ansible-playbook", "ends_soon.yml"], marker=marker)
    done = run_checker("check", path, "--wait", "8")
    assert "process %d: " % short.pid not in done.stdout


def test_only_the_runs_own_processes_count_and_only_they_are_ended(tmp_path, spawn):
    path, marker = snapshot(tmp_path)
    other_run = spawn(suite_like("another_run.yml"), marker="run-other-%s" % secrets.token_hex(4))
    a_developers = spawn(suite_like("started_by_hand_meanwhile.yml"))  # no marker at all
    unrelated = spawn([sys.executable, "-c", SLEEP, LIFETIME, "an-editor", "notes.txt"], marker=marker)
    this_run = spawn(suite_like("this_run.yml"), marker=marker)
    done = run_checker("check", path, "--wait", "0", "--kill")
    assert done.returncode == 1
    assert "process %d: " % this_run.pid in done.stdout
    for other in (other_run, a_developers):
        assert "process %d: " % other.pid not in done.stdout
        assert "process %d (" % other.pid in done.stdout and "not counted" in done.stdout
        assert other.poll() is None
    assert str(unrelated.pid) not in done.stdout and unrelated.poll() is None
    assert this_run.wait(10) == -signal.SIGTERM


def test_a_child_of_the_run_counts_through_its_parent(tmp_path, spawn):
    """ansible-test passes no variable of ours to what it starts: a live ancestor's marker counts."""
    path, marker = snapshot(tmp_path)
    scrubbing = "import os, subprocess, sys; subprocess.run(sys.argv[1:], env={'PATH': os.environ['PATH']}, check=False)"
    parent = spawn([sys.executable, "-c", scrubbing, *suite_like("started_by_ansible_test.yml")], marker=marker)
    for _attempt in range(100):
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent.pid)], capture_output=True, text=True,
                                  check=False).stdout.split()
        if children:
            break
        time.sleep(0.05)
    done = run_checker("check", path, "--wait", "0")
    assert done.returncode == 1 and "process %s: " % children[0] in done.stdout


def test_a_listening_port_on_a_sandbox_address_is_named(tmp_path, spawn):
    path, marker = snapshot(tmp_path)
    address = "127.211.%d.%d" % (secrets.randbelow(250), 2 + secrets.randbelow(250))
    listener, port = spawn([sys.executable, "-c", LISTEN, LIFETIME, address], marker=marker, read_line=True)
    done = run_checker("check", path, "--wait", "0")
    assert done.returncode == 1
    assert "listening port %s:%s (held by pid %d)" % (address, port, listener.pid) in done.stdout


def test_a_suite_process_is_named_with_its_ports(tmp_path, spawn):
    path, marker = snapshot(tmp_path)
    listener, port = spawn([sys.executable, "-c", LISTEN, LIFETIME, "127.0.0.1", "kubectl", "port-forward"],
                           marker=marker, read_line=True)
    done = run_checker("check", path, "--wait", "0")
    assert done.returncode == 1
    assert "process %d: " % listener.pid in done.stdout
    assert "listening on 127.0.0.1:%s" % port in done.stdout


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and ip(8)")
def test_a_network_namespace_and_a_link_of_the_sandbox_are_named(tmp_path):
    """Held by no process, they count; --kill leaves them, as they may be someone else's."""
    path, _marker = snapshot(tmp_path)
    suffix = secrets.token_hex(3)
    namespace, link = "llmd-leaktest%s-1" % suffix, "llmdlt%s" % suffix
    try:
        subprocess.run(["ip", "netns", "add", namespace], check=True)
        subprocess.run(["ip", "link", "add", link, "type", "bridge"], check=True)
        done = run_checker("check", path, "--wait", "0", "--kill")
        assert done.returncode == 1
        assert "network namespace %s (no process holds it)" % namespace in done.stdout
        assert "link %s (no process holds it)" % link in done.stdout
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", link], check=False, capture_output=True)


def test_a_check_without_a_snapshot_is_an_error(tmp_path):
    done = run_checker("check", str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "take one before the run" in done.stderr
