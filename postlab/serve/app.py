"""The HTTP server: OpenAI-compatible chat completions over the rollout engine, with a monitor.

Routes: ``POST /v1/chat/completions`` (JSON or SSE streaming), ``GET /v1/models``, ``GET /metrics``
(Prometheus), ``GET /monitor`` (recent flags), ``GET /health``. When an API key is set, the /v1
routes and /monitor need ``Authorization: Bearer <key>`` (/monitor also takes ``?key=``); /metrics and
/health stay open, as they hold no conversation text. Without a key, every request's Host must be one
of ``allowed_hosts`` (loopback names by default), so a web page cannot reach the server through DNS
rebinding; a cross-origin page cannot send a JSON POST without a CORS preflight, which is never
granted. Request bodies are capped, and prompts that cannot fit the context are refused by length
before tokenising, which runs off the event loop. See docs/serving.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from postlab.rollout import SamplingParams
from postlab.serve import protocol
from postlab.serve.batcher import Batcher, BatchStats, Failed, Finished, GenerationRequest
from postlab.serve.metrics import ServeMetrics
from postlab.serve.monitor import Monitor
from postlab.serve.page import render_monitor
from postlab.serve.protocol import ApiError

log = logging.getLogger("postlab.serve")

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# NFC/NFKC normalisers can compose up to three characters (a Hangul jamo triple) into one, so with one
# the characters-per-token bound below gets this much slack.
NORMALISER_SLACK = 4


@dataclass(frozen=True)
class ServeSettings:
    model_name: str  # the id clients send as "model" and /v1/models lists
    max_model_len: int  # prompt + completion tokens, at most
    default_max_tokens: int = 256  # when a request sets no max_tokens (clipped to what the prompt leaves)
    max_batch: int = 32  # requests decoded together; 1 = no batching
    continuous: bool = True  # new requests join the running batch at the next step (else: dynamic batching)
    api_key: str | None = None
    monitor_log: str | None = None  # JSONL of flagged answers with their conversation (0600)
    keep_system_prompts: bool = False  # log system/developer messages as they are (default: redacted)
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS  # Host headers accepted without an API key ("*" = any)
    max_request_bytes: int = 2 * 1024 * 1024  # request bodies beyond this are refused (413) unread
    memory: str | None = None  # per-user adapters store (postlab memory); requests with a `user` get theirs
    memory_max_loaded: int = 4  # users' adapter engines kept loaded at once (each a copy of the weights)


def max_model_len(model, tokenizer) -> int:
    """The context the model was built for (the tokenizer's limit too, when it states a real one)."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(n) for n in limits if isinstance(n, int) and 0 < n < 1_000_000]
    return min(limits) if limits else 2048


def max_prompt_chars(tokenizer, context: int) -> int:
    """Characters beyond which a prompt cannot fit ``context`` tokens whatever its text: no token spells
    more characters than the longest in the vocabulary (added tokens included). Byte-level BPE vocabularies
    spell one character per byte, so the bound holds for any text; a normaliser may shrink text first."""
    longest = max((len(t) for t in tokenizer.get_vocab()), default=1)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    slack = NORMALISER_SLACK if backend is None or backend.normalizer is not None else 1
    return context * max(longest, 1) * slack


def host_name(host_header: str) -> str:
    """The host of a Host header, without the port: ``[::1]:8000`` -> ``[::1]``, ``Example:80`` -> ``example``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = ApiError(413, f"request body too large: this server accepts at most {limit} bytes",
                         code="request_too_large")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone away (call after the body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _log_failure(future) -> None:
    if future.exception() is not None:
        log.error("monitor failed: %r", future.exception())


class Server:
    """Holds the engine's batcher, the metrics and the monitor; the routes call into it."""

    def __init__(self, engine, settings: ServeSettings):
        self.engine, self.settings = engine, settings
        self.metrics = ServeMetrics()
        m = self.metrics
        self.batcher = Batcher(engine, max_batch=settings.max_batch, continuous=settings.continuous, stats=BatchStats(
            on_waiting=m.waiting.set, on_running=m.running.set, on_batch=m.batch_size.observe,
            on_first_token=lambda r: m.time_to_first_token.observe(r.first_token_at - r.enqueued_at)))
        self.monitor = Monitor(
            log_path=settings.monitor_log, keep_instructions=settings.keep_system_prompts,
            on_checked=lambda a: m.monitor_checks.labels(a.rule, a.check).inc(),
            on_flag=lambda f: m.monitor_flags.labels(f.rule, f.check).inc())
        # One thread scores answers off the request path: responses do not wait for the monitor.
        self._monitor_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postlab-monitor")
        self.started = protocol.now()
        # The worker thread decodes with the engine's tokenizer; requests are encoded with a copy, in one
        # thread of their own (off the event loop), as a Rust-backed tokenizer must not be used from two
        # threads at once.
        self._tokenizer = copy.deepcopy(engine.tokenizer)
        self._encode_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postlab-tokenize")
        self.max_prompt_chars = max_prompt_chars(self._tokenizer, settings.max_model_len)
        self._allowed_hosts = {h.lower() for h in settings.allowed_hosts}
        self.memory = None  # per-user adapters (postlab/serve/memory.py); None: every request is the base model's
        if settings.memory is not None:
            from postlab.serve.memory import AdapterPool

            self.memory = AdapterPool(settings.memory, engine, make_batcher=self._adapter_batcher,
                                      max_loaded=settings.memory_max_loaded)
            self._memory_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postlab-memory")

    def _adapter_batcher(self, engine) -> Batcher:
        """A started batcher for one user's adapter engine (its requests count in the latency metrics)."""
        m = self.metrics
        batcher = Batcher(engine, max_batch=self.settings.max_batch, continuous=self.settings.continuous,
                          stats=BatchStats(on_first_token=lambda r: m.time_to_first_token.observe(
                              r.first_token_at - r.enqueued_at)))
        batcher.start()
        return batcher

    def encode(self, conversation: list[dict]) -> list[int]:
        """Prompt ids exactly as ``TorchEngine.encode_prompts`` makes them."""
        text = self._tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return self._tokenizer(text, add_special_tokens=False)["input_ids"]

    def check_host(self, request: Request) -> None:
        """Without an API key, refuse Host headers outside the allow-list (DNS rebinding)."""
        if self.settings.api_key is not None or "*" in self._allowed_hosts:
            return
        host = host_name(request.headers.get("host", ""))
        if host not in self._allowed_hosts:
            raise ApiError(403, f"Host {host!r} is not allowed: without an API key this server answers only "
                                f"Host {', '.join(sorted(self._allowed_hosts))} (see --allowed-host)",
                           type="permission_error", code="host_not_allowed")

    @staticmethod
    def check_json(request: Request) -> None:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise ApiError(415, f"Content-Type must be application/json (got {media_type or 'none'!r})",
                           code="unsupported_media_type")

    def check_auth(self, request: Request, *, allow_query: bool = False) -> None:
        key = self.settings.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if allow_query and not token:
            token = request.query_params.get("key", "")
        if not hmac.compare_digest(token.encode(), key.encode()):
            raise ApiError(401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                           type="authentication_error", code="invalid_api_key")

    async def prepare(self, req: protocol.ChatCompletionRequest) -> tuple[list[dict], list[int], SamplingParams]:
        """Validate the request against the model and turn it into (conversation, prompt ids, params)."""
        if req.model != self.settings.model_name:
            raise ApiError(404, f"model {req.model!r} does not exist; this server serves {self.settings.model_name!r}",
                           param="model", code="model_not_found")
        limit = self.settings.max_model_len
        if (chars := req.prompt_chars()) > self.max_prompt_chars:
            raise ApiError(400, f"prompt too long: {chars} characters cannot fit this model's {limit}-token context "
                                f"(at most {self.max_prompt_chars} characters)", param="messages",
                           code="context_length_exceeded")
        conversation = req.conversation()
        try:
            prompt_ids = await asyncio.get_running_loop().run_in_executor(self._encode_pool, self.encode, conversation)
        except Exception as e:  # a chat template may reject a conversation (e.g. role order)
            raise ApiError(400, f"messages cannot be formatted for this model: {e}", param="messages") from None
        room = limit - len(prompt_ids)
        if room < 1:
            raise ApiError(400, f"prompt too long: {len(prompt_ids)} tokens, and this model takes at most {limit} "
                                f"tokens of prompt and completion together", param="messages", code="context_length_exceeded")
        wanted = req.requested_max_tokens()
        if wanted is not None and wanted > room:
            raise ApiError(400, f"max_tokens too large: {wanted} requested, but the {len(prompt_ids)}-token prompt "
                                f"leaves room for at most {room} (context {limit})", param="max_tokens")
        params = SamplingParams(max_new_tokens=wanted or min(self.settings.default_max_tokens, room),
                                temperature=req.sampling_temperature(), top_p=req.top_p, seed=req.seed)
        return conversation, prompt_ids, params

    @staticmethod
    def _request(prompt_ids: list[int], params: SamplingParams, stops: list[str]) -> tuple[GenerationRequest, asyncio.Queue]:
        """A request whose events arrive on an asyncio queue of the running loop."""
        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        return GenerationRequest(prompt_ids=prompt_ids, params=params, stops=stops,
                                 sink=lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev)), events

    def submit(self, prompt_ids: list[int], params: SamplingParams, stops: list[str]) -> tuple[GenerationRequest, asyncio.Queue]:
        request, events = self._request(prompt_ids, params, stops)
        self.batcher.submit(request)
        return request, events

    async def dispatch(self, user: str | None, prompt_ids: list[int], params: SamplingParams,
                       stops: list[str]) -> tuple[GenerationRequest, asyncio.Queue, str | None]:
        """``submit``, to ``user``'s memory adapter when the server has a store and the user an accepted adapter
        (then also its ``user/vN``); else to the base model, as ``submit`` alone does."""
        if self.memory is None or user is None:
            return *self.submit(prompt_ids, params, stops), None
        request, events = self._request(prompt_ids, params, stops)
        try:
            adapter = await asyncio.get_running_loop().run_in_executor(self._memory_pool, self.memory.submit, user, request)
        except Exception as e:  # an unreadable adapter: this request fails, the server does not
            log.exception("memory adapter of %r could not be loaded", user)
            raise ApiError(500, f"the memory adapter of user {user!r} could not be loaded: {type(e).__name__}: {e}",
                           type="server_error") from None
        if adapter is None:
            self.batcher.submit(request)
        return request, events, adapter

    def finish(self, request: GenerationRequest, done: Finished, *, completion_id: str, conversation: list[dict]) -> None:
        m = self.metrics
        m.latency.observe(time.perf_counter() - request.enqueued_at)
        m.prompt_tokens.inc(done.prompt_tokens)
        m.generation_tokens.inc(done.completion_tokens)
        m.requests.labels(done.finish_reason).inc()
        future = self._monitor_pool.submit(self.monitor.observe, request_id=completion_id, model=self.settings.model_name,
                                           messages=conversation, answer=done.text)
        future.add_done_callback(_log_failure)

    def abandon(self, request: GenerationRequest) -> None:
        """The client went away before its answer was complete: free its row and count it (not as a success)."""
        request.cancelled.set()
        self.metrics.abandoned.inc()

    def close(self) -> None:
        self.batcher.stop()
        if self.memory is not None:
            self._memory_pool.shutdown(wait=True)
            self.memory.close()
        self._encode_pool.shutdown(wait=True)
        self._monitor_pool.shutdown(wait=True)


async def _complete(server: Server, http: Request, req: protocol.ChatCompletionRequest) -> Response:
    conversation, prompt_ids, params = await server.prepare(req)
    completion_id, created = protocol.new_completion_id(), protocol.now()
    request, events, adapter = await server.dispatch(req.user, prompt_ids, params, req.stop_strings())
    gone = asyncio.ensure_future(_disconnected(http))
    try:
        while True:
            nxt = asyncio.ensure_future(events.get())
            await asyncio.wait({nxt, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not nxt.done():
                nxt.cancel()
                server.abandon(request)
                return Response(status_code=499)  # never delivered: nobody is listening
            event = nxt.result()
            if isinstance(event, Failed):
                raise ApiError(500, event.message, type="server_error")
            if isinstance(event, Finished):
                break
    except asyncio.CancelledError:  # the server cancelled the handler (e.g. on disconnect or shutdown)
        server.abandon(request)
        raise
    finally:
        gone.cancel()
        request.cancelled.set()  # a no-op once finished
    server.finish(request, event, completion_id=completion_id, conversation=conversation)
    return JSONResponse(protocol.completion_body(
        id=completion_id, model=server.settings.model_name, created=created, text=event.text,
        finish_reason=event.finish_reason, prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens),
        headers=_memory_header(adapter))


async def _stream(server: Server, req: protocol.ChatCompletionRequest) -> StreamingResponse:
    conversation, prompt_ids, params = await server.prepare(req)
    completion_id, created = protocol.new_completion_id(), protocol.now()
    request, events, adapter = await server.dispatch(req.user, prompt_ids, params, req.stop_strings())
    name, with_usage = server.settings.model_name, req.include_usage

    def chunk(**fields) -> bytes:
        return protocol.sse(protocol.chunk_body(id=completion_id, model=name, created=created,
                                                with_usage_field=with_usage, **fields))

    async def body() -> AsyncIterator[bytes]:
        ended = False  # answered to the end (or with an error event); otherwise the client went away
        try:
            yield chunk(delta={"role": "assistant", "content": ""})
            while not isinstance(event := await events.get(), Finished):
                if isinstance(event, Failed):
                    ended = True
                    server.metrics.errors.labels("500").inc()
                    yield protocol.sse(ApiError(500, event.message, type="server_error").body())
                    yield protocol.sse("[DONE]")
                    return
                yield chunk(delta={"content": event.text})
            ended = True
            server.finish(request, event, completion_id=completion_id, conversation=conversation)
            yield chunk(finish_reason=event.finish_reason)
            if with_usage:
                yield chunk(usage_=protocol.usage(event.prompt_tokens, event.completion_tokens))
            yield protocol.sse("[DONE]")
        finally:
            if not ended:
                server.abandon(request)
            request.cancelled.set()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", **_memory_header(adapter)})


def _memory_header(adapter: str | None) -> dict[str, str]:
    """``x-postlab-memory: <user>/v<N>`` on answers a user's memory adapter gave."""
    return {"x-postlab-memory": adapter} if adapter else {}


def create_app(engine, settings: ServeSettings) -> FastAPI:
    """The FastAPI app for one engine; the batcher runs while the app's lifespan does."""
    server = Server(engine, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        server.batcher.start()
        yield
        server.close()

    app = FastAPI(title="postlab", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(server.check_host)])
    app.state.server = server

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        server.metrics.errors.labels(str(e.status)).inc()
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return await api_error(request, ApiError(e.status_code, str(e.detail), type="invalid_request_error"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return await api_error(request, ApiError(500, f"internal error: {type(e).__name__}: {e}", type="server_error"))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        server.check_auth(request)
        server.check_json(request)
        req = protocol.parse_request(await _read_body(request, settings.max_request_bytes))
        return await (_stream(server, req) if req.stream else _complete(server, request, req))

    @app.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        server.check_auth(request)
        return JSONResponse(protocol.models_body(settings.model_name, server.started))

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(server.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/monitor")
    async def monitor(request: Request) -> HTMLResponse:
        server.check_auth(request, allow_query=True)
        m = server.monitor
        return HTMLResponse(render_monitor(model=settings.model_name, answers_scored=m.answers_scored,
                                           flag_counts=dict(m.flag_counts), recent=list(m.recent)))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    return app


def describe_layout(choice: dict) -> str:
    """``TorchEngine.choose_single_row``'s result in words, for the start-up line."""
    if choice.get("layouts") == 1:
        return "the one weight layout"
    if choice["layout"] == "compiled":
        return "a step compiled by inductor"
    text = f"{choice['layout']} weights"
    if choice["measured"]:
        text += f" (measured: packed {choice['packed_ms']:.1f} ms, plain {choice['plain_ms']:.1f} ms per step)"
    return text


def serve(*, model: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          max_batch: int = 32, default_max_tokens: int = 256, monitor_log: str | None = "serve-monitor.jsonl",
          dtype: str = "float32", served_name: str | None = None, allowed_hosts: tuple[str, ...] = (),
          allow_remote_without_key: bool = False, keep_system_prompts: bool = False,
          max_request_bytes: int = ServeSettings.max_request_bytes, continuous: bool = True,
          memory: str | None = None, memory_max_loaded: int = 4, single_row: str = "auto") -> None:
    """Load the model, build the engine and run the server until interrupted (``postlab serve``).

    ``allowed_hosts`` adds to the loopback names a keyless server answers as (``*``: any);
    ``continuous=False`` batches dynamically (a request waits for the batch it arrived during); ``memory`` names
    a store of per-user adapters (``postlab memory``) served to requests carrying that ``user``; ``single_row`` is
    the weight layout of decode steps with one request running (``TorchEngine``; "auto" measures at start;
    "compiled" compiles a step with inductor before serving)."""
    import torch
    import uvicorn

    from postlab.errors import ConfigError
    from postlab.models.load import load_model_and_tokenizer
    from postlab.rollout import TorchEngine
    from postlab.rollout.engine import SINGLE_ROW_LAYOUTS
    from postlab.utils.threads import in_passing_thread

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise ConfigError(f"--dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    if max_batch < 1 or default_max_tokens < 1:
        raise ConfigError("--max-batch and --max-tokens must be at least 1")
    if max_request_bytes < 1024:
        raise ConfigError(f"--max-request-bytes must be at least 1024, got {max_request_bytes}")
    if memory is not None and memory_max_loaded < 1:
        raise ConfigError(f"--memory-max-loaded must be at least 1, got {memory_max_loaded}")
    if api_key is None and not is_loopback(host) and not allow_remote_without_key:
        raise ConfigError(f"--host {host} would let anyone on the network use this server: set --api-key, "
                          f"or pass --allow-remote-without-key if that is really what you want")
    if single_row not in SINGLE_ROW_LAYOUTS:
        raise ConfigError(f"--single-row-layout must be one of {', '.join(SINGLE_ROW_LAYOUTS)}, got {single_row!r}")

    def prepare():  # the engine decodes in the batcher's thread; no other live thread may hold an OpenMP team
        lm, tokenizer = load_model_and_tokenizer(model, dtype=dtypes[dtype])
        engine = TorchEngine(model=lm, tokenizer=tokenizer, single_row=single_row)
        if single_row == "compiled":
            print("compiling the one-request decode step (about a minute on a 2-core CPU the first time; inductor "
                  "caches it)", flush=True)
            engine.warm_up()
        return lm, tokenizer, engine, engine.choose_single_row(max_batch)

    lm, tokenizer, engine, layout = in_passing_thread(prepare)
    settings = ServeSettings(model_name=served_name or model, max_model_len=max_model_len(lm, tokenizer),
                             default_max_tokens=default_max_tokens, max_batch=max_batch, api_key=api_key,
                             monitor_log=monitor_log, keep_system_prompts=keep_system_prompts,
                             allowed_hosts=LOOPBACK_HOSTS + tuple(allowed_hosts), max_request_bytes=max_request_bytes,
                             continuous=continuous, memory=memory, memory_max_loaded=memory_max_loaded)
    batching = "off" if max_batch == 1 else "continuous" if continuous and engine.supports_sessions() else "dynamic"
    print(f"serving {settings.model_name} on http://{host}:{port}/v1 ({batching} batching, max batch {max_batch}, "
          f"context {settings.max_model_len}, one-request steps on {describe_layout(layout)}, "
          f"monitor log {monitor_log or 'off'}"
          f"{f', memory adapters {memory}' if memory else ''})", flush=True)
    uvicorn.run(create_app(engine, settings), host=host, port=port, log_level="warning")
