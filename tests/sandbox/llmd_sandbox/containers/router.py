"""The routing of the sandbox's own EPP (pd-disaggregation's P/D picker: it needs llm-d-router's plugins, which
cannot be built here): which pods an InferencePool has ready, and which one serves a request.

Reads the pool and its pods from the API server (both InferencePool API groups), keeps decode pods as
targets and, in P/D, prefill pods as `x-prefiller-host-port` candidates. Picks a pod by prefix affinity
(the first 64 characters of the prompt or last message) else round-robin, and proxies to it with
`x-gateway-destination-endpoint`. With no ready pod it answers as Envoy does: 503 `no healthy upstream`.
"""

import asyncio
import collections
import dataclasses
import itertools
import json

import aiohttp
from aiohttp import web

from .kube import KubeReader
from .relay import forwarded_headers, relay

POOL_APIS = (("inference.networking.k8s.io", "v1"), ("inference.networking.x-k8s.io", "v1alpha2"))
ROLE_LABEL = "llm-d.ai/role"
COMPLETION_PATHS = ("/v1/completions", "/v1/chat/completions")
POLL_SECONDS = 0.25
AFFINITY_KEY_CHARS = 64
CHARS_PER_TOKEN = 4  # how the P/D threshold estimates prompt tokens without a tokenizer
ENVOY_CONNECT_FAILURE = ("upstream connect error or disconnect/reset before headers. reset reason: remote "
                         "connection failure, transport failure reason: delayed connect error: 111")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    pod: str
    ip: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclasses.dataclass(frozen=True)
class PoolView:
    """What the router knows of a pool at one moment."""
    found: bool = False
    decode: tuple = ()
    prefill: tuple = ()


async def read_pool(kube: KubeReader, namespace: str, name: str, group: str | None = None) -> dict | None:
    for api_group, version in POOL_APIS:
        if group in (None, api_group):
            pool = await kube.get(f"/apis/{api_group}/{version}/namespaces/{namespace}/inferencepools/{name}")
            if pool is not None:
                return pool
    return None


def pool_target(pool: dict) -> tuple[dict, int]:
    """The pod selector and target port, in either API version's shape."""
    spec = pool.get("spec", {})
    selector = spec.get("selector", {})
    if isinstance(selector.get("matchLabels"), dict):  # v1 wraps the labels, v1alpha2 does not
        selector = selector["matchLabels"]
    ports = spec.get("targetPorts")
    port = ports[0]["number"] if ports else spec.get("targetPortNumber")
    return selector, int(port)


def is_ready(pod: dict) -> bool:
    status = pod.get("status", {})
    return bool(status.get("podIP")) and any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions", []))


async def read_view(kube: KubeReader, namespace: str, name: str, group: str | None = None) -> PoolView:
    pool = await read_pool(kube, namespace, name, group)
    if pool is None:
        return PoolView()
    selector, port = pool_target(pool)
    pods = await kube.get(f"/api/v1/namespaces/{namespace}/pods",
                          labelSelector=",".join(f"{key}={value}" for key, value in sorted(selector.items())))
    ready = [pod for pod in (pods or {}).get("items", []) if is_ready(pod)]
    ready.sort(key=lambda pod: pod["metadata"]["name"])

    def endpoints(role_wanted):
        return tuple(Endpoint(pod["metadata"]["name"], pod["status"]["podIP"], port) for pod in ready
                     if role_wanted(pod.get("metadata", {}).get("labels", {}).get(ROLE_LABEL)))

    # Without role labels every pod decodes; with them, prefill pods are only P/D candidates.
    return PoolView(True, endpoints(lambda role: role != "prefill"), endpoints(lambda role: role == "prefill"))


def prompt_of(fields: dict) -> str:
    """The text prefix affinity and the P/D threshold look at: the prompt, or the last chat message."""
    if isinstance(fields.get("messages"), list) and fields["messages"]:
        last = fields["messages"][-1]
        content = last.get("content", "") if isinstance(last, dict) else ""
        return content if isinstance(content, str) else json.dumps(content)
    prompt = fields.get("prompt", "")
    if isinstance(prompt, list):
        prompt = prompt[0] if prompt else ""
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


@dataclasses.dataclass
class Routed:
    """One routed request, for the caller's log line and metrics."""
    response: web.StreamResponse
    model: str = ""
    endpoint: Endpoint | None = None
    decision: str | None = None


class Router:
    def __init__(self, pd: bool = False, pd_threshold: int = 0):
        self.view = PoolView()
        self.pd, self.pd_threshold = pd, pd_threshold
        self._turn = itertools.count()
        self._prefill_turn = itertools.count()
        self._affinity = collections.OrderedDict()

    def pick(self, prompt: str) -> Endpoint | None:
        targets = self.view.decode
        if not targets:
            return None
        key = prompt[:AFFINITY_KEY_CHARS]
        chosen = self._affinity.get(key)
        if chosen not in targets:
            chosen = targets[next(self._turn) % len(targets)]
        self._affinity[key] = chosen
        self._affinity.move_to_end(key)
        if len(self._affinity) > 10_000:
            self._affinity.popitem(last=False)
        return chosen

    def pick_prefill(self, prompt: str) -> Endpoint | None:
        candidates = self.view.prefill
        if not candidates or len(prompt) // CHARS_PER_TOKEN < self.pd_threshold:
            return None
        return candidates[next(self._prefill_turn) % len(candidates)]

    async def handle(self, request: web.Request, session: aiohttp.ClientSession) -> Routed:
        body = await request.read()
        try:
            fields = json.loads(body) if body else {}
        except ValueError:
            fields = {}
        fields = fields if isinstance(fields, dict) else {}
        prompt = prompt_of(fields)
        routed = Routed(web.Response(status=503, text="no healthy upstream"), str(fields.get("model", "")))
        routed.endpoint = self.pick(prompt)
        if routed.endpoint is None:
            return routed
        extra = {"x-gateway-destination-endpoint": routed.endpoint.address}
        if self.pd and request.path in COMPLETION_PATHS:
            prefill = self.pick_prefill(prompt)
            routed.decision = "prefill-decode" if prefill else "decode-only"
            if prefill:
                extra["x-prefiller-host-port"] = prefill.address
        try:
            routed.response = await relay(request, session, f"http://{routed.endpoint.address}{request.path_qs}",
                                          body, forwarded_headers(request, **extra))
        except aiohttp.ClientConnectorError:
            routed.response = web.Response(status=503, text=ENVOY_CONNECT_FAILURE)
        return routed


async def poll_forever(refresh, on_error) -> None:
    """Call `refresh` every 250 ms. An API server hiccup keeps the last view, as the EPP's datastore does;
    `on_error` hears about each new kind of failure once."""
    last_error = None
    while True:
        try:
            await refresh()
            last_error = None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as error:
            if repr(error) != last_error:
                last_error = repr(error)
                on_error(error)
        await asyncio.sleep(POLL_SECONDS)
