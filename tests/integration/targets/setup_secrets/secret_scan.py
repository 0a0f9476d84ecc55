"""Secrets stay out of everything the collection writes; shared by the rbac and faults targets.

    python secret_scan.py scan SECRETS_FILE PATH...             # no secret (one a line), no Authorization value under PATH
    python secret_scan.py state-modes DIR                       # DIR 0700, every file in it 0600
    python secret_scan.py state-secrets SECRETS_FILE DIR        # while a forward runs: modes, >= 1 file, no secret
    python secret_scan.py listens-loopback PORT                 # every listener on PORT is bound to loopback

secrets.yml beside it runs a port-forward and the checks with an API key and calls these while the forward runs.
The functions are importable too (the faults target's soak calls them after every run).
"""
import os
import re
import stat
import sys


def cmd_scan(secrets_file, *paths):
    """No secret, no Authorization header value and no Bearer token in any file under paths; modes of state."""
    with open(secrets_file) as handle:
        secrets = [line.strip() for line in handle if line.strip()]
    assert secrets and all(len(s) >= 16 for s in secrets), "give long secrets, one a line"
    leaks = []
    scanned = 0
    for top in paths:
        files = [top] if os.path.isfile(top) else [os.path.join(d, f) for d, _s, fs in os.walk(top) for f in fs]
        for name in files:
            with open(name, "rb") as handle:
                data = handle.read()
            scanned += 1
            for secret in secrets:
                if secret.encode() in data:
                    leaks.append("%s holds the secret %s..." % (name, secret[:4]))
            for match in re.finditer(rb"(?i)authorization[\"']?\s*[:=]\s*[\"']?(bearer|basic)\s+([^\s\"',}]+)", data):
                if match.group(2) not in (b"********", b"VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"):
                    leaks.append("%s holds an Authorization header value: %s" % (name, match.group(0)[:40]))
    assert not leaks, "\n".join(leaks)
    print("no secret in %d file(s) under %s" % (scanned, ", ".join(paths)))


def cmd_state_modes(directory):
    """The port-forward state directory is 0700 and every state file in it 0600."""
    mode = stat.S_IMODE(os.stat(directory).st_mode)
    assert mode == 0o700, "%s is %o, not 700" % (directory, mode)
    for name in os.listdir(directory):
        file_mode = stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode)
        assert file_mode == 0o600, "%s/%s is %o, not 600" % (directory, name, file_mode)
    print("%s is 700, its %d file(s) 600" % (directory, len(os.listdir(directory))))


def cmd_state_secrets(secrets_file, directory):
    """While a forward runs: its state directory 0700, at least one state file, each 0600, none with a secret."""
    cmd_state_modes(directory)
    assert os.listdir(directory), "no state file in %s while the forward runs" % directory
    cmd_scan(secrets_file, directory)


def cmd_listens_loopback(port):
    """Every listening TCP socket on port is bound to 127.0.0.1 (or ::1), none to a wildcard or other address."""
    listening = []
    for table, loopback in (("/proc/net/tcp", "0100007F"), ("/proc/net/tcp6", "00000000000000000000000001000000")):
        if not os.path.exists(table):
            continue
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hexport = local.split(":")
                if state == "0A" and int(hexport, 16) == int(port):
                    listening.append((address, address == loopback))
    assert listening, "nothing listens on port %s" % port
    assert all(ok for _address, ok in listening), "port %s listens on %s" % (port, listening)
    print("port %s listens on loopback only" % port)


COMMANDS = {"scan": cmd_scan, "state-modes": cmd_state_modes, "state-secrets": cmd_state_secrets,
            "listens-loopback": cmd_listens_loopback}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
