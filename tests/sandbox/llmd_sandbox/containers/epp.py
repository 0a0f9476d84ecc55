"""The llm-d router in standalone mode (an `epp` / llm-d-inference-scheduler container).

Serves the OpenAI HTTP API itself on `--http-port` (as the Envoy sidecar next to the EPP does), accepts
connections on the ext-proc gRPC port (a placeholder: nothing speaks gRPC to it here) and serves the EPP's
Prometheus metrics on `--metrics-port`. Routes to the ready pods of `--pool-name` (router.py).
"""

import argparse
import asyncio
import time
import uuid

import prometheus_client
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from . import logs
from .kube import KubeReader
from .relay import client_session
from .router import Router, poll_forever, read_view
from .spec import ContainerSpec

# Go's Prometheus client writes no `_created` series.
prometheus_client.disable_created_metrics()
DISAGG_PLUGIN = "disagg-profile-handler"


def parse_args(argv: list, namespace: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="epp")
    parser.add_argument("--pool-name", "-pool-name", required=True)
    parser.add_argument("--pool-namespace", "-pool-namespace", default=namespace)
    parser.add_argument("--pool-group", "-pool-group", help="InferencePool API group (default: try both)")
    parser.add_argument("--http-port", type=int, default=80)
    parser.add_argument("--grpc-port", "-grpc-port", type=int, default=9002)
    parser.add_argument("--metrics-port", "-metrics-port", type=int, default=9090)
    parser.add_argument("--pd", action="store_true", help="P/D disaggregation: pick a prefill pod too")
    parser.add_argument("--pd-threshold", type=int, default=0, help="prompt tokens below which P/D is skipped")
    args, _unknown = parser.parse_known_args(argv)
    return args


class EppMetrics:
    def __init__(self, pool_name: str):
        self.registry = CollectorRegistry()
        self.pool_name = pool_name
        self.requests = Counter("inference_objective_request", "Counter of inference objective requests.",
                                ("model_name", "target_model_name"), registry=self.registry)
        self.errors = Counter("inference_objective_request_error", "Counter of inference objective requests errors.",
                              ("model_name", "target_model_name", "error_code"), registry=self.registry)
        self.duration = Histogram("inference_objective_request_duration_seconds",
                                  "Inference objective response latency distribution in seconds.",
                                  ("model_name", "target_model_name"), registry=self.registry)
        self.ready_pods = Gauge("inference_pool_ready_pods", "The number of ready pods in the inference server pool.",
                                ("name",), registry=self.registry)
        self.decisions = Counter("llm_d_epp_disagg_decision_total",
                                 "Total number of disaggregation routing decisions made",
                                 ("plugin_name", "plugin_type", "model_name", "decision_type"), registry=self.registry)

    def record(self, model: str, status: int, seconds: float, decision: str | None) -> None:
        model = model or "unknown"
        self.requests.labels(model, model).inc()
        self.duration.labels(model, model).observe(seconds)
        if status >= 400:
            self.errors.labels(model, model, str(status)).inc()
        if decision:
            self.decisions.labels(DISAGG_PLUGIN, DISAGG_PLUGIN, model, decision).inc()


async def _accept_and_hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The gRPC ext-proc port: accept, read until the peer goes, answer nothing."""
    while await reader.read(65536):
        pass
    writer.close()


async def run(spec: ContainerSpec, stop: asyncio.Event) -> int:
    args = parse_args(spec.args, spec.namespace)
    kube = KubeReader(spec)
    router = Router(pd=args.pd, pd_threshold=args.pd_threshold)
    metrics = EppMetrics(args.pool_name)

    async def refresh():
        router.view = await read_view(kube, args.pool_namespace, args.pool_name, args.pool_group)
        metrics.ready_pods.labels(args.pool_name).set(len(router.view.decode) + len(router.view.prefill))

    def on_error(error):
        logs.zap("error", "datastore/datastore.go:181", "Failed to refresh InferencePool", error=repr(error),
                 pool=f"{args.pool_namespace}/{args.pool_name}")

    async def route(request):
        started = time.monotonic()
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        routed = await router.handle(request, session)
        metrics.record(routed.model, routed.response.status, time.monotonic() - started, routed.decision)
        logs.zap("info", "requestcontrol/director.go:302", "Request handled", **{
            "x-request-id": request_id, "model": routed.model, "path": request.path,
            "endpoint": routed.endpoint.address if routed.endpoint else None,
            "pod": routed.endpoint.pod if routed.endpoint else None, "decision": routed.decision,
            "status": routed.response.status})
        return routed.response

    async def serve_metrics(request):
        return web.Response(body=prometheus_client.generate_latest(metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    http_app = web.Application(client_max_size=64 * 1024 * 1024)
    http_app.router.add_route("*", "/{tail:.*}", route)
    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", serve_metrics)
    runners = [web.AppRunner(http_app, access_log=None, handle_signals=False),
               web.AppRunner(metrics_app, access_log=None, handle_signals=False)]
    async with client_session(spec.pod_ip) as session:
        for runner, port in zip(runners, (args.http_port, args.metrics_port)):
            await runner.setup()
            await web.TCPSite(runner, spec.listen_host, port).start()
        grpc = await asyncio.start_server(_accept_and_hold, spec.listen_host, args.grpc_port)
        logs.zap("info", "runner/runner.go:291", "Starting EPP", pool=f"{args.pool_namespace}/{args.pool_name}",
                 httpPort=args.http_port, grpcPort=args.grpc_port, metricsPort=args.metrics_port)
        poller = asyncio.create_task(poll_forever(refresh, on_error))
        await stop.wait()
        poller.cancel()
        grpc.close()
        for runner in runners:
            await runner.cleanup()
        await kube.close()
    return 0
