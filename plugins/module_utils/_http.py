# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP to an endpoint URL with the options of the llmd.verify.http_client doc fragment (on requests).

A request returns a Response as soon as the headers are in; its body is read as it arrives, each piece
stamped on time.perf_counter, so streamed tokens can be timed. Failures become TransportError naming the
phase (connect, first byte, stream) and whether they mean "not ready yet" (connection refused).
An answer's body is read without raising, whatever it holds (excerpt, decode_json), and an error body of any
shape becomes one error record (http_error, describe_error), for every HTTP reader (OpenAI checks, metrics).
"""

from __future__ import annotations

import http.client
import json
import time
import traceback

from ansible_collections.llmd.verify.plugins.module_utils._errors import MESSAGE_EXCERPT, LlmdError

try:
    import requests
    import requests.adapters
    import urllib3
    import urllib3.exceptions
    import urllib3.util
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
    _HTTPAdapter = _PoolManager = object
    _URLLIB3_STREAM_ERRORS = ()
else:
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
    _HTTPAdapter = requests.adapters.HTTPAdapter
    _PoolManager = urllib3.PoolManager
    _URLLIB3_STREAM_ERRORS = (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError)

READ_SIZE = 65536

HTTP_ARG_SPEC = dict(
    endpoint=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    headers=dict(type="dict", default={}),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),
    timeout=dict(type="float", default=30),
    proxy=dict(type="str"),
    resolve=dict(type="dict", default={}),
)


class TransportError(LlmdError):
    """The request got no HTTP answer. not_ready: the target refused the connection (it may come up)."""

    def __init__(self, msg, phase, not_ready=False, hint=None, **details):
        super().__init__(msg, hint=hint, phase=phase, **details)
        self.phase = phase
        self.not_ready = not_ready


class Response:
    """An HTTP answer whose headers are in and whose body is read on demand.

    raw is a urllib3 HTTPResponse (requests and the kubernetes client both give one). started is the
    perf_counter reading taken just before the request was sent.
    """

    def __init__(self, raw, started, target, timeout, on_close=None):
        self.raw = raw
        self.started = started
        self.headers_at = time.perf_counter()
        self.target = target
        self.timeout = timeout
        self.status = raw.status
        self.headers = {name.lower(): value for name, value in raw.headers.items()}
        self.truncated = None  # why the body ended early, if it did
        self._complete = False
        self._on_close = on_close

    def chunks(self):
        """Yield (perf_counter time, bytes) for each piece of the body as it arrives.

        A connection cut mid-body ends the iteration and sets truncated; a read timeout raises a
        TransportError for the phase "stream".
        """
        received = 0
        while True:
            try:
                data = self.raw.read1(READ_SIZE)
            except _URLLIB3_STREAM_ERRORS as exc:
                self.truncated = "the connection ended before the body was complete (%s)" % _reason(exc)
                return
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
                raise TransportError(
                    "%s: stream timed out: no data for %s s while reading the response body (%d bytes received)" % (
                        self.target, self.timeout, received),
                    phase="stream", status=self.status, hint="raise timeout, or check the model server under load",
                ) from exc
            if not data:
                self._complete = True
                return
            received += len(data)
            yield time.perf_counter(), data

    def read(self):
        """The whole body (possibly cut short: see truncated)."""
        return b"".join(data for _at, data in self.chunks())

    def close(self):
        """Give the connection back for reuse when the body was read whole, else drop it."""
        if self._complete:
            self.raw.release_conn()
        else:
            self.raw.close()
        if self._on_close:
            self._on_close()


def _chain(exc, follow_cause=True):
    """exc and the exceptions inside it: urllib3's reason, an exception given as argument, then (with
    follow_cause) the cause or context. At most 20: a chain is short, and one that loops must not hang."""
    for _depth in range(20):
        if exc is None:
            return
        yield exc
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in getattr(exc, "args", ()) if isinstance(arg, BaseException)), None)
        if inner is None and follow_cause:
            inner = exc.__cause__ or exc.__context__
        exc = inner


def _reason(exc):
    """The innermost message of a urllib3/requests exception chain, for a readable error."""
    return str(list(_chain(exc, follow_cause=False))[-1])


def _is_refused(exc):
    return any(isinstance(seen, ConnectionRefusedError) or "Connection refused" in str(seen) for seen in _chain(exc))


def _closed_without_answer(exc):
    """Whether the server (or a proxy or port-forward on the way) closed the connection before any answer."""
    return any(isinstance(seen, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))
               for seen in _chain(exc))


def transport_error(exc, target, timeout):
    """A TransportError for an exception raised while connecting or waiting for the response headers."""
    connect_timeout = (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)
    read_timeout = (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)
    if isinstance(exc, connect_timeout) or isinstance(getattr(exc, "reason", None), urllib3.exceptions.ConnectTimeoutError):
        return TransportError("%s: connect timed out after %s s" % (target, timeout), phase="connect",
                              hint="check the address is reachable from here (firewall, LoadBalancer pending)")
    if isinstance(exc, read_timeout) or isinstance(getattr(exc, "reason", None), urllib3.exceptions.ReadTimeoutError):
        return TransportError("%s: first byte timed out: connected, but no response within %s s" % (target, timeout),
                              phase="first byte",
                              hint="the server accepted the request but did not answer; raise timeout or check the model server")
    if isinstance(exc, (requests.exceptions.SSLError, urllib3.exceptions.SSLError)):
        return TransportError("%s: TLS failed: %s" % (target, _reason(exc)), phase="connect",
                              hint="set ca_path to the CA that signed the server certificate, use resolve for a host without DNS, "
                                   "or validate_certs=false")
    if _is_refused(exc):
        return TransportError("%s: connection refused" % target, phase="connect", not_ready=True,
                              hint="nothing listens there yet: is the gateway or port-forward up?")
    if isinstance(exc, (requests.exceptions.ProxyError, urllib3.exceptions.ProxyError)):
        return TransportError("%s: the HTTP proxy failed: %s" % (target, _reason(exc)), phase="connect")
    if _closed_without_answer(exc):
        return TransportError("%s: the connection was closed before any answer (%s)" % (target, _reason(exc)),
                              phase="first byte",
                              hint="the server or a proxy on the way closed it: a pod restarting behind the gateway "
                                   "or port-forward, or an idle timeout")
    return TransportError("%s: %s" % (target, _reason(exc)), phase="connect")


# ---- reading an answer's body: never raises ----------------------------------------------------

def excerpt(data):
    """The first 500 characters of a body, as text."""
    if isinstance(data, bytes):
        data = data[:MESSAGE_EXCERPT * 4].decode("utf-8", errors="replace")
    return data[:MESSAGE_EXCERPT]


def decode_json(data):
    """(object, None) for a JSON body, (None, reason) for anything else."""
    try:
        return json.loads(data), None
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None, "not JSON (%s)" % exc
    except RecursionError:
        return None, "not JSON (nested deeper than this parser follows)"


def as_text(value):
    """value when it is a string, else None (fields of a JSON answer may be anything)."""
    return value if isinstance(value, str) else None


def http_error(status, data):
    """The server's error, whatever its shape: {status, message, type, code, param}, plus body when not JSON.

    Knows the current OpenAI/vLLM shape {"error": {...}}, the older flat {"object": "error", ...}, a
    Kubernetes Status (from the API server proxy), {"detail": ...} and {"error": "text"}.
    """
    error = {"status": status, "message": None, "type": None, "code": None, "param": None}
    obj, problem = decode_json(data) if data else (None, "empty body")
    inner = None
    if isinstance(obj, dict):
        if isinstance(obj.get("error"), dict):
            inner = obj["error"]
        elif obj.get("object") == "error" or obj.get("kind") == "Status" or "message" in obj:
            inner = obj
        elif isinstance(obj.get("error"), str):
            inner = {"message": obj["error"]}
        elif obj.get("detail") is not None:
            inner = {"message": obj["detail"] if isinstance(obj["detail"], str) else json.dumps(obj["detail"])}
    if inner is not None:
        message = as_text(inner.get("message")) or (json.dumps(inner.get("message")) if inner.get("message") else None)
        error["message"] = excerpt(message) if message else None  # a server may send a megabyte of it
        error["type"] = (as_text(inner.get("type")) or as_text(inner.get("reason")) or "")[:100] or None
        error["code"] = inner.get("code") if isinstance(inner.get("code"), (int, str)) else None
        error["param"] = as_text(inner.get("param"))
    else:
        text = excerpt(data or b"")
        error["body"] = text
        error["message"] = text.strip().splitlines()[0][:200] if text.strip() else problem
    return error


def describe_error(error):
    """One line: HTTP 404: The model `x` does not exist. (NotFoundError)"""
    line = "HTTP %s" % error["status"]
    if error.get("message"):
        line += ": %s" % error["message"]
    if error.get("type"):
        line += " (%s)" % error["type"]
    return line


class _ResolvingPoolManager(_PoolManager):
    """A PoolManager that connects to a fixed address for some hosts (curl --resolve).

    TLS keeps the original name: it is sent as SNI and the certificate must match it.
    """

    def __init__(self, resolve, **kwargs):
        super().__init__(**kwargs)
        self.resolve = resolve

    def connection_from_host(self, host, port=None, scheme="http", pool_kwargs=None):
        address = lookup_resolve(self.resolve, host, port or (443 if scheme == "https" else 80))
        if address is None:
            return super().connection_from_host(host, port, scheme, pool_kwargs=pool_kwargs)
        pool_kwargs = dict(pool_kwargs or {})
        if scheme == "https":
            pool_kwargs.update(server_hostname=host, assert_hostname=host)
        return super().connection_from_host(address, port, scheme, pool_kwargs=pool_kwargs)


class ResolvingAdapter(_HTTPAdapter):
    """A requests transport adapter for resolve: a fixed address, and the original Host header."""

    def __init__(self, resolve, **kwargs):
        self.resolve = resolve
        super().__init__(**kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        self.poolmanager = _ResolvingPoolManager(self.resolve, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs)

    def send(self, request, *args, **kwargs):
        url = urllib3.util.parse_url(request.url)
        if lookup_resolve(self.resolve, url.host, url.port or (443 if url.scheme == "https" else 80)) is not None:
            request.headers.setdefault("Host", url.netloc)
        return super().send(request, *args, **kwargs)


def lookup_resolve(resolve, host, port):
    """The address resolve gives for host:port (a key may be "host" or "host:port"), or None."""
    if not resolve or host is None:
        return None
    host = host.strip("[]").lower()
    for key in ("%s:%s" % (host, port), host):
        for name, address in resolve.items():
            if name.lower() == key:
                return address.strip("[]")
    return None


def check_timeout(timeout):
    """timeout, a number of seconds above 0; urllib3 refuses 0 and below with a ValueError."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise LlmdError("timeout must be a number of seconds above 0, got %r" % (timeout,), hint="for example timeout: 30")
    return timeout


class HttpTransport:
    """Requests to an endpoint URL: the "direct" transport."""

    kind = "direct"
    coarse_timing = False

    def __init__(self, endpoint, api_key=None, headers=None, validate_certs=True, ca_path=None, client_cert=None,
                 client_key=None, timeout=30, proxy=None, resolve=None):
        if not HAS_REQUESTS:
            raise LlmdError("the requests Python package is required", hint="pip install requests",
                            exception=REQUESTS_IMPORT_ERROR)
        if not endpoint:
            raise LlmdError("endpoint is required for transport=direct", hint="give the URL, for example http://127.0.0.1:8000")
        parsed = urllib3.util.parse_url(endpoint if "://" in endpoint else "http://" + endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise LlmdError("endpoint %r is not an http(s) URL" % endpoint, hint="for example http://10.0.0.5 or https://llm.example.com")
        self.base = parsed.url.rstrip("/")
        self.target = self.base
        self.timeout = check_timeout(timeout)
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        if api_key:
            self.session.headers["Authorization"] = "Bearer %s" % api_key
        self.session.headers.update(headers or {})
        for name, value in self.session.headers.items():  # http.client sends header values as Latin-1
            if isinstance(value, str) and not all(ord(char) < 256 for char in value):
                raise LlmdError("%s holds characters an HTTP header cannot carry (only Latin-1)"
                                % ("api_key" if name == "Authorization" else "header %s" % name),
                                hint="check api_key and headers for pasted or non-ASCII characters")
        # Passed with each request: a session's verify loses to REQUESTS_CA_BUNDLE from the environment.
        self.verify = ca_path if (validate_certs and ca_path) else bool(validate_certs)
        self.cert = ((client_cert, client_key) if client_key else client_cert) if client_cert else None
        if proxy:
            self.session.proxies = {"http": proxy, "https": proxy}
            self.session.trust_env = False
        if resolve:
            adapter = ResolvingAdapter(dict(resolve))
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        if not validate_certs:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def url(self, path):
        """The URL of path under the endpoint (the endpoint may carry a base path such as /v1 prefix)."""
        return self.base + "/" + path.lstrip("/")

    def request(self, method, path, body=None):
        """Send the request; return a Response once its headers are in."""
        url = self.url(path)
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                response = self.session.request(method, url, data=data, headers=headers, stream=True,
                                                verify=self.verify, cert=self.cert,
                                                timeout=(self.timeout, self.timeout), allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                # A kept-alive connection closed before any answer (the pod behind a port-forward was replaced,
                # an idle timeout): sent once more, on a fresh connection, as curl does.
                if attempt == 1 and _closed_without_answer(exc):
                    continue
                raise transport_error(exc, url, self.timeout) from exc
            return Response(response.raw, started, url, self.timeout, on_close=response.close)

    def close(self):
        self.session.close()


def transport_from_params(params):
    """An HttpTransport from the options of the llmd.verify.http_client doc fragment."""
    return HttpTransport(**{name: params.get(name) for name in HTTP_ARG_SPEC})
