"""The sandbox on the real control plane: `llmd-sandbox up` to every pod Ready for the inference-scheduling
scenario (goal: under 10 s with the binaries built), the memory of all its processes (RSS; goal: under
1.5 GiB), and how long the last cold build of the binaries took (`make setup` writes it)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from llmd_sandbox import cli

RUNS = 3
SCENARIO = "inference-scheduling"
BUILD_LOG = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "llmd-verify", "bin",
                         "last-build-seconds")


def _rss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
    return total


def _descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def main():
    times, memory = [], []
    for _run in range(RUNS):
        with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as directory:
            started = time.monotonic()
            state = cli.up(SCENARIO, directory, watch_pid=os.getpid(), lifetime=300)
            times.append(time.monotonic() - started)
            time.sleep(2)  # let the components settle after start-up before weighing them
            memory.append(_rss_bytes(_descendants(state["pid"])))
            cli.down(directory)
    print(f"llmd-sandbox up {SCENARIO} to all pods Ready: median {statistics.median(times):.1f} s "
          f"(runs: {', '.join(f'{t:.1f}' for t in times)}; goal < 10 s)")
    print(f"sandbox memory (RSS of the daemon and every process under it): median "
          f"{statistics.median(memory) / 2**30:.2f} GiB (goal < 1.5 GiB)")
    try:
        with open(BUILD_LOG) as build:
            print(f"last build of the binaries by make setup: {int(build.read())} s")
    except (FileNotFoundError, ValueError):
        print("last build of the binaries: not recorded (binaries were built before this was measured)")
    load = os.getloadavg()[0]
    print(f"(load average {load:.1f}; nproc {os.cpu_count()})")


if __name__ == "__main__":
    main()
