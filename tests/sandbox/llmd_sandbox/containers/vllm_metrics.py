"""vLLM's Prometheus metrics (names, labels and buckets of vLLM v1), plus the simulated prefix cache they count."""

import collections
import hashlib

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# vLLM's scrape output has no `_created` series.
prometheus_client.disable_created_metrics()

BLOCK_SIZE = 16           # tokens per KV block (vLLM's default block size)
KV_CAPACITY = 262_144     # tokens the simulated GPU KV cache holds
_CACHED_BLOCKS = 50_000   # prefix blocks remembered before the oldest are evicted

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)


class EngineMetrics:
    def __init__(self, model_name: str):
        self.registry = CollectorRegistry()
        labels = ("model_name", "engine")
        self._labels = {"model_name": model_name, "engine": "0"}
        registry = self.registry

        def gauge(name, doc):
            return Gauge(name, doc, labels, registry=registry).labels(**self._labels)

        def counter(name, doc):
            return Counter(name, doc, labels, registry=registry).labels(**self._labels)

        def histogram(name, doc, buckets):
            return Histogram(name, doc, labels, buckets=buckets, registry=registry).labels(**self._labels)

        self.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self.kv_usage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        self.prefix_queries = counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.")
        self.prefix_hits = counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.")
        self.external_queries = counter("vllm:external_prefix_cache_queries",
                                        "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.")
        self.external_hits = counter("vllm:external_prefix_cache_hits",
                                     "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        self._success = Counter("vllm:request_success", "Count of successfully processed requests.",
                                labels + ("finished_reason",), registry=registry)
        self.ttft = histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS)
        self.itl = histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS)
        self.e2e = histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", E2E_BUCKETS)
        self._blocks = collections.OrderedDict()
        self._tokens_in_flight = 0
        self.running_requests = 0
        # Totals since the last stats line, for vLLM's periodic "Avg prompt throughput" log.
        self.interval_prompt = self.interval_generation = 0
        self.total_queries = self.total_hits = 0

    def succeeded(self, finished_reason: str) -> None:
        self._success.labels(finished_reason=finished_reason, **self._labels).inc()

    def admit(self, tokens: list, remote_prefill: bool) -> None:
        """A request starts: count its prompt against the prefix cache and occupy KV blocks."""
        prompt_tokens = len(tokens)
        hits = self._lookup(tokens)
        self.prefix_queries.inc(prompt_tokens)
        self.prefix_hits.inc(hits)
        self.total_queries += prompt_tokens
        self.total_hits += hits
        if remote_prefill:
            # P/D decode side: the prompt's KV arrives from the prefill pod through the connector.
            self.external_queries.inc(prompt_tokens - hits)
            self.external_hits.inc(prompt_tokens - hits)
        self.prompt_tokens.inc(prompt_tokens)
        self.interval_prompt += prompt_tokens
        self.running_requests += 1
        self.running.set(self.running_requests)
        self._occupy(prompt_tokens)

    def finish(self, prompt_tokens: int) -> None:
        self.running_requests -= 1
        self.running.set(self.running_requests)
        self._occupy(-prompt_tokens)

    def generated(self, tokens: int) -> None:
        self.generation_tokens.inc(tokens)
        self.interval_generation += tokens

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)

    @property
    def kv_usage_fraction(self) -> float:
        return min(1.0, self._tokens_in_flight / KV_CAPACITY)

    def _occupy(self, tokens: int) -> None:
        self._tokens_in_flight += tokens
        self.kv_usage.set(self.kv_usage_fraction)

    def _lookup(self, tokens: list) -> int:
        """Tokens of this prompt already cached: whole leading blocks, as vLLM's automatic prefix caching."""
        hits, chain, missed = 0, hashlib.sha256(), False
        for start in range(0, len(tokens) - BLOCK_SIZE + 1, BLOCK_SIZE):
            chain.update(repr(tokens[start:start + BLOCK_SIZE]).encode())
            digest = chain.hexdigest()
            if not missed and digest in self._blocks:
                hits += BLOCK_SIZE
                self._blocks.move_to_end(digest)
            else:
                missed = True
                self._blocks[digest] = True
        while len(self._blocks) > _CACHED_BLOCKS:
            self._blocks.popitem(last=False)
        return hits
