"""`GET pods/NAME/log`: the kubelet's log endpoint, served from the CRI log files the sandbox's kubelet writes."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .resources import find_resource
from .store import ApiError, Store

PODS = find_resource("", "v1", "pods")
FOLLOW_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class LogOptions:
    container: str | None
    follow: bool
    previous: bool
    timestamps: bool
    tail_lines: int | None
    since: datetime.datetime | None
    limit_bytes: int | None

    @classmethod
    def from_query(cls, query) -> LogOptions:
        def boolean(name: str) -> bool:
            return query.get(name, "false").lower() in ("true", "1")

        def integer(name: str, minimum: int) -> int | None:
            if name not in query:
                return None
            try:
                value = int(query[name])
            except ValueError:
                raise ApiError.bad_request(f'strconv.ParseInt: parsing "{query[name]}": invalid syntax') from None
            if value < minimum:
                raise ApiError(422, "Invalid", f'PodLogOptions "" is invalid: {name}: Invalid value: {value}: '
                               f"must be greater than or equal to {minimum}")
            return value

        since_seconds = integer("sinceSeconds", 1)
        if since_seconds is not None and "sinceTime" in query:
            raise ApiError(422, "Invalid", 'PodLogOptions "" is invalid: sinceSeconds: Forbidden: '
                           "at most one of sinceTime or sinceSeconds may be specified")
        since = None
        if since_seconds is not None:
            since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=since_seconds)
        elif "sinceTime" in query:
            since = parse_rfc3339(query["sinceTime"])
            if since is None:
                raise ApiError.bad_request(f'parsing time "{query["sinceTime"]}" as RFC3339: cannot parse')
        return cls(query.get("container"), boolean("follow"), boolean("previous"), boolean("timestamps"),
                   integer("tailLines", 0), since, integer("limitBytes", 1))


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


def _container_status(pod: dict, container: str) -> dict:
    status = pod.get("status", {})
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            return cs
    return {}


def choose_container(pod: dict, wanted: str | None) -> str:
    """The real API server's rules: the only container by default, else the caller must name one."""
    name = pod["metadata"]["name"]
    containers = [c["name"] for c in pod.get("spec", {}).get("containers") or []]
    init_containers = [c["name"] for c in pod.get("spec", {}).get("initContainers") or []]
    if wanted:
        if wanted not in containers + init_containers:
            raise ApiError.bad_request(f"container {wanted} is not valid for pod {name}")
        return wanted
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise ApiError.bad_request(f"a container name must be specified for pod {name}")
    message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
    if init_containers:
        message += f" or one of the init containers: [{' '.join(init_containers)}]"
    raise ApiError.bad_request(message)


class _LogWriter:
    """Applies sinceTime and limitBytes to what is written; says when the limit is reached."""

    def __init__(self, options: LogOptions):
        self.options = options
        self.remaining = options.limit_bytes

    def render(self, lines: list[LogLine]) -> bytes:
        if self.options.since:
            lines = [line for line in lines if (parse_rfc3339(line.timestamp) or self.options.since)
                     >= self.options.since]
        data = b"".join(line.render(self.options.timestamps) for line in lines)
        if self.remaining is not None:
            data = data[:self.remaining]
            self.remaining -= len(data)
        return data

    @property
    def exhausted(self) -> bool:
        return self.remaining == 0


async def serve_log(request: web.Request, store: Store, log_root: Path, namespace: str, name: str) -> web.StreamResponse:
    options = LogOptions.from_query(request.query)
    pod = store.get(PODS, namespace, name)
    container = choose_container(pod, options.container)
    status = _container_status(pod, container)
    restart_count = status.get("restartCount", 0)
    directory = Path(log_root, f"{namespace}_{name}_{pod['metadata']['uid']}", container)
    if options.previous:
        path = directory / f"{restart_count - 1}.log"
        if restart_count < 1 or not path.exists():
            raise ApiError.bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
    else:
        path = directory / f"{restart_count}.log"
        if not path.exists():
            reason = status.get("state", {}).get("waiting", {}).get("reason", "ContainerCreating")
            raise ApiError.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')

    writer = _LogWriter(options)
    pending: list[str] = []
    with path.open("rb") as log_file:
        lines = parse_cri(_complete_lines(log_file), pending)
        if options.tail_lines is not None:
            lines = lines[-options.tail_lines:] if options.tail_lines else []
        first = writer.render(lines)
        if not options.follow or options.previous:
            return web.Response(body=first, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(first)
        while not writer.exhausted:
            running = _still_running(store, namespace, name, container, restart_count)
            data = writer.render(parse_cri(_complete_lines(log_file), pending))
            if data:
                await response.write(data)
            if not running:
                break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
    await response.write_eof()
    return response


def _complete_lines(log_file) -> str:
    """What was appended since the last read, up to the last complete line (the rest is read next time)."""
    start = log_file.tell()
    complete = log_file.read()
    complete = complete[:complete.rfind(b"\n") + 1]
    log_file.seek(start + len(complete))
    return complete.decode("utf-8", errors="replace")


def _still_running(store: Store, namespace: str, name: str, container: str, restart_count: int) -> bool:
    """A follow ends when the container stops or restarts (its log file is then closed), or the pod is gone."""
    try:
        pod = store.get(PODS, namespace, name)
    except ApiError:
        return False
    status = _container_status(pod, container)
    return "running" in status.get("state", {}) and status.get("restartCount", 0) == restart_count
