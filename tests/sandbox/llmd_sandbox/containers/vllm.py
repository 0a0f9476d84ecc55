"""A vLLM / llm-d-inference-sim compatible model server (the `vllm` container of a model server pod).

On the wire it answers like vLLM's OpenAI server: the same paths, JSON shapes, SSE chunks, error bodies and
metric names. Its logs look like vLLM's. Timing is the point of a simulator: the first token is written
`--time-to-first-token` ms after the request arrived and each next one `--inter-token-latency` ms later,
against a monotonic clock, so a client's measurement can be compared with this ground truth.
"""

import argparse
import asyncio
import functools
import http
import json
import os
import time
import uuid

from aiohttp import abc, web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from . import logs, textgen
from .spec import ContainerSpec
from .vllm_metrics import KV_CAPACITY, EngineMetrics

VERSION = "0.10.1.1"
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # vLLM's default for /v1/completions
OOM_MESSAGE = ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
               "of 79.19 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 78.12 GiB memory "
               "in use. Of the allocated memory 76.40 GiB is allocated by PyTorch, and 1.10 GiB is reserved by PyTorch "
               "but unallocated. If reserved but unallocated memory is large try setting "
               "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory "
               "Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")
# Compact JSON, as pydantic and Starlette write it.
_dumps = functools.partial(json.dumps, separators=(",", ":"))
_ENGINE = "/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py"
CRASH_TRACEBACK = (
    "EngineCore encountered a fatal error.",
    "Traceback (most recent call last):",
    f'  File "{_ENGINE}", line 691, in run_engine_core',
    "    engine_core.run_busy_loop()",
    f'  File "{_ENGINE}", line 718, in run_busy_loop',
    "    self._process_engine_step()",
    f'  File "{_ENGINE}", line 743, in _process_engine_step',
    "    outputs, model_executed = self.step_fn()",
    '  File "/usr/local/lib/python3.12/dist-packages/vllm/v1/worker/gpu_model_runner.py", line 1529, in execute_model',
    "    hidden_states = self.model(",
    '  File "/usr/local/lib/python3.12/dist-packages/torch/nn/modules/module.py", line 1773, in _wrapped_call_impl',
    "    return self._call_impl(*args, **kwargs)",
)


def parse_args(argv: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vllm serve")
    parser.add_argument("model_tag", nargs="?", help="the model, as `vllm serve MODEL` takes it")
    parser.add_argument("--model")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", nargs="+", default=[])
    parser.add_argument("--lora-modules", nargs="+", default=[])
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--time-to-first-token", type=float, default=0.0, help="ms")
    parser.add_argument("--inter-token-latency", type=float, default=0.0, help="ms")
    parser.add_argument("--mode", choices=("random", "echo"), default="random")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--startup-seconds", type=float, default=0.0)
    parser.add_argument("--crash-after-seconds", type=float)
    parser.add_argument("--crash-message", default=OOM_MESSAGE)
    parser.add_argument("--stats-interval", type=float, default=10.0)
    # Real manifests carry many engine flags (--block-size, --kv-transfer-config, ...): accept and ignore them.
    if argv[:2] == ["vllm", "serve"]:
        argv = argv[2:]
    args, _unknown = parser.parse_known_args(argv)
    args.model = args.model or args.model_tag or "random"
    args.served_model_name = args.served_model_name or [args.model]
    args.loras = dict(_parse_lora(module) for module in args.lora_modules)
    return args


def _parse_lora(module: str) -> tuple:
    """`name=path` or vLLM's JSON form `{"name": ..., "path": ...}`."""
    if module.startswith("{"):
        spec = json.loads(module)
        return spec["name"], spec["path"]
    name, _sep, path = module.partition("=")
    return name, path


class RequestError(Exception):
    """An error answer in vLLM's current shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, err_type: str, param=None):
        super().__init__(message)
        self.status, self.err_type, self.param = status, err_type, param

    def response(self) -> web.Response:
        body = {"error": {"message": str(self), "type": self.err_type, "param": self.param, "code": self.status}}
        return web.json_response(body, status=self.status, dumps=_dumps)


def validation_error(errors: list) -> RequestError:
    """FastAPI's RequestValidationError as vLLM's handler renders it (pydantic error dicts, repr'd)."""
    label = "error" if len(errors) == 1 else "errors"
    message = f"{len(errors)} validation {label}:\n" + "".join(f"  {error}\n" for error in errors)
    param = ".".join(str(part) for part in errors[0]["loc"])
    return RequestError(400, message.rstrip(), http.HTTPStatus.BAD_REQUEST.phrase, param)


def _pydantic(kind: str, field: str, msg: str, value) -> dict:
    return {"type": kind, "loc": ("body", field), "msg": msg, "input": value}


def _check_types(body: dict, chat: bool) -> list:
    """The request model's type checks. Integers are strict: "1" is not 1 (the seed's curl mistake)."""
    errors = []
    required = "messages" if chat else "prompt"
    if required not in body:
        errors.append(_pydantic("missing", required, "Field required", body))
    elif chat and not isinstance(body["messages"], list):
        errors.append(_pydantic("list_type", "messages", "Input should be a valid list", body["messages"]))
    elif not chat and not isinstance(body["prompt"], (str, list)):
        errors.append(_pydantic("string_type", "prompt", "Input should be a valid string", body["prompt"]))
    for field in ("max_tokens", "max_completion_tokens", "seed", "n"):
        value = body.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            errors.append(_pydantic("int_type", field, "Input should be a valid integer", value))
    for field in ("model",):
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            errors.append(_pydantic("string_type", field, "Input should be a valid string", value))
    temperature = body.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))):
        errors.append(_pydantic("float_type", "temperature", "Input should be a valid number", temperature))
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        errors.append(_pydantic("bool_type", "stream", "Input should be a valid boolean", body["stream"]))
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(item, str) for item in stop)):
        errors.append(_pydantic("string_type", "stop", "Input should be a valid string", stop))
    return errors


def parse_request(raw: bytes, chat: bool) -> dict:
    try:
        body = json.loads(raw)
    except ValueError as error:
        position = getattr(error, "pos", 0)
        raise validation_error([{"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error",
                                 "input": {}, "ctx": {"error": getattr(error, "msg", str(error))}}])
    if not isinstance(body, dict):
        raise validation_error([{"type": "model_attributes_type", "loc": ("body",), "input": body,
                                 "msg": "Input should be a valid dictionary or object to extract fields from"}])
    errors = _check_types(body, chat)
    if errors:
        raise validation_error(errors)
    return body


class GenerationRequest:
    """One validated generation request, with the answer planned."""

    def __init__(self, body: dict, chat: bool, args: argparse.Namespace):
        self.chat = chat
        self.model = body.get("model") or args.served_model_name[0]
        if self.model not in args.served_model_name and self.model not in args.loras:
            raise RequestError(404, f"The model `{self.model}` does not exist.", "NotFoundError", "model")
        if chat:
            self.prompt_tokens = textgen.chat_prompt_tokens(body["messages"])
            users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
            prompt_text = textgen.message_text(users[-1]) if users else ""
        else:
            self.prompt_tokens = textgen.prompt_tokens(body["prompt"])
            prompt = body["prompt"][0] if isinstance(body["prompt"], list) and body["prompt"] else body["prompt"]
            prompt_text = prompt if isinstance(prompt, str) else " ".join(str(token) for token in prompt)
        requested = body.get("max_completion_tokens") if chat else None
        requested = requested if requested is not None else body.get("max_tokens")
        room = args.max_model_len - len(self.prompt_tokens)
        if requested is not None and requested < 1:
            raise RequestError(400, f"max_tokens must be at least 1, got {requested}.", "BadRequestError")
        if room < 1 or (requested is not None and requested > room):
            wanted = len(self.prompt_tokens) + (requested or 0)
            raise RequestError(400, (
                f"This model's maximum context length is {args.max_model_len} tokens. However, you requested "
                f"{wanted} tokens ({len(self.prompt_tokens)} in the messages, {requested or 0} in the completion). "
                "Please reduce the length of the messages or completion."), "BadRequestError")
        if requested is None:
            requested = room if chat else min(COMPLETIONS_DEFAULT_MAX_TOKENS, room)
        stop = body.get("stop") or []
        self.choices = [
            textgen.plan_choice(mode=args.mode, prompt_text=prompt_text, max_tokens=requested,
                                stop=[stop] if isinstance(stop, str) else stop,
                                seed=body.get("seed", args.seed), temperature=body.get("temperature"), index=index)
            for index in range(body.get("n") or 1)]
        self.stream = bool(body.get("stream"))
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.kv_transfer = body.get("kv_transfer_params") or {}
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.object = "chat.completion" if chat else "text_completion"

    @property
    def completion_tokens(self) -> int:
        return sum(len(choice.tokens) for choice in self.choices)

    def usage(self) -> dict:
        prompt = len(self.prompt_tokens)
        return {"prompt_tokens": prompt, "total_tokens": prompt + self.completion_tokens,
                "completion_tokens": self.completion_tokens, "prompt_tokens_details": None}

    def chunk(self, choices: list, usage=None) -> bytes:
        body = {"id": self.id, "object": f"{self.object}.chunk" if self.chat else self.object,
                "created": self.created, "model": self.model, "choices": choices}
        if usage is not None:
            body["usage"] = usage
        return b"data: " + _dumps(body).encode() + b"\n\n"

    def stream_choice(self, index: int, piece: str, last: bool, first: bool = False) -> dict:
        choice = self.choices[index]
        finish = choice.finish_reason if last else None
        stop_reason = choice.stop_reason if last else None
        if self.chat:
            # vLLM leaves stop_reason out of chat chunks until the last one (it dumps with exclude_unset).
            delta = {"role": "assistant", "content": ""} if first else {"content": piece}
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish,
                    **({"stop_reason": stop_reason} if last else {})}
        return {"index": index, "text": piece, "logprobs": None, "finish_reason": finish, "stop_reason": stop_reason}

    def full_response(self, kv_transfer_params) -> dict:
        choices = []
        for index, choice in enumerate(self.choices):
            text = "".join(choice.tokens)
            if self.chat:
                message = {"role": "assistant", "content": text, "refusal": None, "annotations": None,
                           "audio": None, "function_call": None, "tool_calls": [], "reasoning_content": None}
                choices.append({"index": index, "message": message, "logprobs": None,
                                "finish_reason": choice.finish_reason, "stop_reason": choice.stop_reason})
            else:
                choices.append({"index": index, "text": text, "logprobs": None, "finish_reason": choice.finish_reason,
                                "stop_reason": choice.stop_reason, "prompt_logprobs": None})
        return {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
                "choices": choices, "service_tier": None, "system_fingerprint": None, "usage": self.usage(),
                "prompt_logprobs": None, "kv_transfer_params": kv_transfer_params}


class UvicornAccessLogger(abc.AbstractAccessLogger):
    """`INFO:     127.0.0.1:51234 - "GET /metrics HTTP/1.1" 200 OK`, as vLLM's uvicorn prints it."""

    def log(self, request, response, time):
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = f"{peer[0]}:{peer[1]}" if peer else "-"
        version = f"{request.version.major}.{request.version.minor}"
        phrase = http.HTTPStatus(response.status).phrase
        logs.uvicorn(f'{client} - "{request.method} {request.path_qs} HTTP/{version}" {response.status} {phrase}')


async def _sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


@web.middleware
async def fastapi_errors(request, handler):
    """Unknown paths and methods answer as FastAPI does."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        return web.json_response({"detail": "Method Not Allowed"}, status=405, dumps=_dumps)
    except web.HTTPNotFound:
        return web.json_response({"detail": "Not Found"}, status=404, dumps=_dumps)


class ModelServer:
    def __init__(self, spec: ContainerSpec, args: argparse.Namespace):
        self.spec, self.args = spec, args
        self.metrics = EngineMetrics(args.served_model_name[0])
        self.ready = False
        self.dead = False
        self.ttft = args.time_to_first_token / 1000.0
        self.itl = args.inter_token_latency / 1000.0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[fastapi_errors], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_get("/health/ready", self.health)
        app.router.add_get("/version", self.version)
        app.router.add_get("/metrics", self.metrics_handler)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        return app

    # ---- small endpoints ----------------------------------------------------------------------------

    async def health(self, request):
        return web.Response(status=200 if self.ready and not self.dead else 503)

    async def version(self, request):
        return web.json_response({"version": VERSION}, dumps=_dumps)

    async def metrics_handler(self, request):
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def models(self, request):
        created = int(time.time())

        def card(model_id, root, parent, max_model_len):
            permission = {"id": f"modelperm-{uuid.uuid4().hex}", "object": "model_permission", "created": created,
                          "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                          "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                          "organization": "*", "group": None, "is_blocking": False}
            return {"id": model_id, "object": "model", "created": created, "owned_by": "vllm", "root": root,
                    "parent": parent, "max_model_len": max_model_len, "permission": [permission]}

        base = self.args.served_model_name[0]
        data = [card(name, self.args.model, None, self.args.max_model_len) for name in self.args.served_model_name]
        data += [card(name, path, base, None) for name, path in self.args.loras.items()]
        return web.json_response({"object": "list", "data": data}, dumps=_dumps)

    # ---- generation ---------------------------------------------------------------------------------

    async def completions(self, request):
        return await self._generate(request, chat=False)

    async def chat_completions(self, request):
        return await self._generate(request, chat=True)

    async def _generate(self, request: web.Request, chat: bool):
        started = time.monotonic()
        if self.dead:
            return RequestError(503, "The engine is dead.", "ServiceUnavailableError").response()
        try:
            job = GenerationRequest(parse_request(await request.read(), chat), chat, self.args)
        except RequestError as error:
            return error.response()
        headers = {"x-inference-pod": self.spec.pod, "x-inference-namespace": self.spec.namespace,
                   "x-inference-port": str(self.args.port)}
        self.metrics.admit(job.prompt_tokens, remote_prefill=bool(job.kv_transfer.get("do_remote_prefill")))
        try:
            if job.stream:
                return await self._stream(request, job, started, headers)
            longest = max(len(choice.tokens) for choice in job.choices)
            await _sleep_until(started + self.ttft + (longest - 1) * self.itl)
            self._observe_timing(job, started)
            return web.json_response(job.full_response(self._kv_transfer_answer(job)), headers=headers, dumps=_dumps)
        finally:
            self.metrics.finish(len(job.prompt_tokens))

    async def _stream(self, request, job: GenerationRequest, started: float, headers: dict):
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        longest = max(len(choice.tokens) for choice in job.choices)
        for step in range(longest):
            await _sleep_until(started + self.ttft + step * self.itl)
            if step == 0:
                self.metrics.ttft.observe(time.monotonic() - started)
                if job.chat:
                    # vLLM's first chat chunk announces the role, with empty content.
                    await response.write(job.chunk(
                        [job.stream_choice(index, "", False, first=True) for index in range(len(job.choices))]))
            else:
                self.metrics.itl.observe(self.itl)
            for index, choice in enumerate(job.choices):
                if step < len(choice.tokens):
                    last = step == len(choice.tokens) - 1
                    # One write per token: the client must see each token when it is produced.
                    await response.write(job.chunk([job.stream_choice(index, choice.tokens[step], last)]))
        self._count_success(job, started)
        if job.include_usage:
            await response.write(job.chunk([], usage=job.usage()))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _observe_timing(self, job: GenerationRequest, started: float) -> None:
        self.metrics.ttft.observe(self.ttft)
        for _gap in range(max(len(choice.tokens) for choice in job.choices) - 1):
            self.metrics.itl.observe(self.itl)
        self._count_success(job, started)

    def _count_success(self, job: GenerationRequest, started: float) -> None:
        self.metrics.generated(job.completion_tokens)
        self.metrics.e2e.observe(time.monotonic() - started)
        for choice in job.choices:
            self.metrics.succeeded(choice.finish_reason)

    def _kv_transfer_answer(self, job: GenerationRequest):
        """A prefill request (P/D, nixlv2) tells the decode side where to fetch the KV blocks from."""
        if not job.kv_transfer.get("do_remote_decode"):
            return None
        blocks = max(1, len(job.prompt_tokens) // 16)
        return {"do_remote_prefill": True, "do_remote_decode": False, "remote_block_ids": list(range(blocks)),
                "remote_engine_id": str(uuid.uuid4()), "remote_host": self.spec.pod_ip, "remote_port": 5600,
                "tp_size": 1}

    # ---- life cycle ---------------------------------------------------------------------------------

    async def start_up(self) -> web.AppRunner:
        """Log like a loading vLLM for `--startup-seconds`, then listen (the port is closed until then)."""
        args, begin = self.args, time.monotonic()
        duration = args.startup_seconds
        non_default = {"model_tag": args.model, "model": args.model, "port": args.port,
                       "served_model_name": args.served_model_name, "max_model_len": args.max_model_len}
        steps = (
            (0.0, "__init__.py:241", "Automatically detected platform cuda."),
            (0.0, "api_server.py:1805", f"vLLM API server version {VERSION}"),
            (0.0, "utils.py:326", f"non-default args: {non_default}"),
            (0.05, "__init__.py:711", "Resolved architecture: LlamaForCausalLM"),
            (0.1, "core.py:654", "Waiting for init message from front-end."),
            (0.15, "gpu_model_runner.py:1953", f"Starting to load model {args.model}..."),
            (0.6, "default_loader.py:262", f"Loading weights took {duration * 0.45:.2f} seconds"),
            (0.65, "gpu_model_runner.py:2007", f"Model loading took 1.1216 GiB and {duration * 0.5:.6f} seconds"),
            (0.85, "kv_cache_utils.py:849", f"GPU KV cache size: {KV_CAPACITY:,} tokens"),
            (0.95, "core.py:214", f"init engine (profile, create kv cache, warmup model) took {duration * 0.8:.2f} seconds"),
            (1.0, "api_server.py:1611", "Supported_tasks: ['generate']"),
            (1.0, "api_server.py:1880", f"Starting vLLM API server on http://0.0.0.0:{args.port}"),
            (1.0, "launcher.py:36", "Available routes are:"),
        )
        for fraction, source, message in steps:
            await _sleep_until(begin + fraction * duration)
            logs.vllm("INFO", source, message)
        app = self.app()
        for resource in app.router.resources():
            methods = sorted({route.method for route in resource})
            logs.vllm("INFO", "launcher.py:44", f"Route: {resource.canonical}, Methods: {', '.join(methods)}")
        runner = web.AppRunner(app, access_log_class=UvicornAccessLogger, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, self.spec.listen_host, args.port).start()
        logs.uvicorn(f"Started server process [{os.getpid()}]")
        logs.uvicorn("Waiting for application startup.")
        logs.uvicorn("Application startup complete.")
        self.ready = True
        return runner

    async def log_stats(self) -> None:
        """vLLM's periodic engine line: INFO when there was work, DEBUG (as in the seed's sample) when idle."""
        metrics, interval = self.metrics, self.args.stats_interval
        while True:
            await asyncio.sleep(interval)
            prompt, generation = metrics.interval_prompt / interval, metrics.interval_generation / interval
            metrics.interval_prompt = metrics.interval_generation = 0
            running = metrics.running_requests
            hit_rate = 100.0 * metrics.total_hits / metrics.total_queries if metrics.total_queries else 0.0
            level = "INFO" if prompt or generation or running else "DEBUG"
            logs.vllm(level, "loggers.py:122",
                      f"Engine 000: Avg prompt throughput: {prompt:.1f} tokens/s, Avg generation throughput: "
                      f"{generation:.1f} tokens/s, Running: {running} reqs, Waiting: 0 reqs, GPU KV cache usage: "
                      f"{100.0 * metrics.kv_usage_fraction:.1f}%, Prefix cache hit rate: {hit_rate:.1f}%")

    def log_crash(self) -> None:
        self.dead = True
        for line in CRASH_TRACEBACK + (self.args.crash_message,):
            logs.vllm("ERROR", "core.py:700", line)
        logs.vllm("ERROR", "async_llm.py:420", "AsyncLLM output_handler failed.")
        logs.vllm("ERROR", "async_llm.py:420", "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered "
                                               "an issue. See stack trace (above) for the root cause.")


async def run(spec: ContainerSpec, stop: asyncio.Event) -> int:
    args = parse_args(spec.args)
    server = ModelServer(spec, args)
    crash_at = None if args.crash_after_seconds is None else time.monotonic() + args.crash_after_seconds
    crashed = asyncio.Event()

    async def crash_later():
        await _sleep_until(crash_at)
        server.log_crash()
        crashed.set()

    tasks = [asyncio.create_task(crash_later())] if crash_at is not None else []
    runner = None

    async def serve():
        nonlocal runner
        runner = await server.start_up()
        tasks.append(asyncio.create_task(server.log_stats()))

    tasks.append(asyncio.create_task(serve()))
    stop_wait, crash_wait = asyncio.create_task(stop.wait()), asyncio.create_task(crashed.wait())
    await asyncio.wait({stop_wait, crash_wait}, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks + [stop_wait, crash_wait]:
        task.cancel()
    await asyncio.gather(*tasks, stop_wait, crash_wait, return_exceptions=True)
    if runner is not None:
        logs.uvicorn("Shutting down")
        logs.uvicorn("Waiting for application shutdown.")
        await runner.cleanup()
        logs.uvicorn("Application shutdown complete.")
        logs.uvicorn(f"Finished server process [{os.getpid()}]")
    return 1 if crashed.is_set() else 0
