"""DIR/state.json: what a running sandbox is (processes, addresses, tokens, pods), readable only by its owner."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

STATE_FILE = "state.json"
# How long the daemon may take from its start to serving; a 2-core machine with other sandboxes up needs it.
READY_TIMEOUT = 100.0


def state_path(directory: str | os.PathLike) -> Path:
    return Path(directory, STATE_FILE)


def write_state(directory: str | os.PathLike, state: dict) -> None:
    """Atomic (readers never see half a file) and 0600 (it holds the tokens). Each write has its own temporary
    file: with one shared name, two writers at once truncated each other's, and a reader got a torn file."""
    path = state_path(directory)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".tmp")  # mode 0600
    with os.fdopen(fd, "w") as out:
        json.dump(state, out, indent=2, sort_keys=True)
    os.replace(temporary, path)


def alive(pid: int) -> bool:
    """True while pid runs (a zombie, killed but not yet reaped by its parent, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def read_state(directory: str | os.PathLike) -> dict:
    return json.loads(state_path(directory).read_text())
