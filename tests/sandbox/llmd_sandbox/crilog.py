"""CRI log files as containerd writes them (`<time> <stream> <P|F> <message>`), and how the kubelet serves
them: timestamps, sinceTime/sinceSeconds and limitBytes."""

from __future__ import annotations

import datetime
from dataclasses import dataclass


def parse_rfc3339(value: str) -> datetime.datetime | None:
    """RFC3339 with up to nanoseconds (Python keeps microseconds)."""
    head, dot, rest = value.rstrip("Z").partition(".")
    text = head + ("." + rest[:6] if dot else "")
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    message: str

    def render(self, timestamps: bool) -> bytes:
        return (f"{self.timestamp} {self.message}\n" if timestamps else f"{self.message}\n").encode()


def parse_cri(data: str, pending: list[str]) -> list[LogLine]:
    """CRI lines (`<time> <stream> <P|F> <message>`); partial (P) pieces are joined with the next full line.
    `pending` carries partial pieces between calls when following."""
    lines = []
    for raw in data.splitlines():
        timestamp, _sep, rest = raw.partition(" ")
        _stream, _sep, rest = rest.partition(" ")
        tag, _sep, message = rest.partition(" ")
        if not pending:
            pending.append(timestamp)
        pending.append(message)
        if tag != "P":
            lines.append(LogLine(pending[0], "".join(pending[1:])))
            pending.clear()
    return lines


class LogWriter:
    """Applies sinceTime and limitBytes to what is written; says when the limit is reached."""

    def __init__(self, since: datetime.datetime | None, limit_bytes: int | None, timestamps: bool):
        self.since, self.remaining, self.timestamps = since, limit_bytes, timestamps

    def render(self, lines: list[LogLine]) -> bytes:
        if self.since:
            lines = [line for line in lines if (parse_rfc3339(line.timestamp) or self.since) >= self.since]
        data = b"".join(line.render(self.timestamps) for line in lines)
        if self.remaining is not None:
            data = data[:self.remaining]
            self.remaining -= len(data)
        return data

    @property
    def exhausted(self) -> bool:
        return self.remaining == 0


def complete_lines(log_file) -> str:
    """What was appended since the last read, up to the last complete line (the rest is read next time)."""
    start = log_file.tell()
    complete = log_file.read()
    complete = complete[:complete.rfind(b"\n") + 1]
    log_file.seek(start + len(complete))
    return complete.decode("utf-8", errors="replace")
