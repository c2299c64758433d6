"""The HTTP edge of engine-mock: vLLM's OpenAI server routes over the simulated engine.

One asyncio task runs the engine: it plans a step, sleeps until the step's simulated end
(scaled by --speed), records metrics and wakes every request that got a token. Handlers only
parse, enqueue and wait on a future, so a step serves its whole batch in one loop iteration.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import signal
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from brix.commands import UsageError
from brix.logs import kv
from brix.prefix import block_hashes
from brix.tokenizer import token_ids, tokenize
from engine_mock import api
from engine_mock.api import ApiError
from engine_mock.clock import StepClock
from engine_mock.engine import Engine, RequestTooLarge
from engine_mock.kv_cache import KVCache
from engine_mock.lora import LoraError, LoraRegistry
from engine_mock.metrics import EngineMetrics
from engine_mock.model import Fault, Settings, SimRequest
from engine_mock.profiles import Profile

log = logging.getLogger(__name__)
JSON = "application/json"
EMBEDDING_DIM = 256
LATE_SLACK_S = 0.005  # wall seconds of event-loop lateness absorbed without moving simulated time


def _json(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type=JSON)


class EngineServer:
    def __init__(self, settings: Settings, profile: Profile) -> None:
        self.settings = settings
        self.profile = profile
        self.max_model_len = settings.max_model_len or profile.max_model_len
        blocks = settings.kv_blocks or profile.kv_blocks(settings.block_size)
        self.kv = KVCache(blocks, settings.block_size)
        self.engine = Engine(profile, self.kv, settings.max_num_seqs)
        self.loras = LoraRegistry(settings.max_loras, settings.check_lora_paths)
        self.fault = Fault()
        self.names = settings.names
        self.created = int(time.time())
        self.speed = settings.speed
        self.t0 = 0.0
        self.metrics = EngineMetrics(self.engine, self.names[0], settings.max_loras, self.max_model_len,
                                     self.sim_now, v0_metrics=settings.v0_metrics)
        self._fail_rng = random.Random(settings.seed)
        self._ids = itertools.count()
        self._id_prefix = f"{os.getpid():x}{self.created:x}"
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._cursor: float | None = None  # simulated end of the step in flight
        self.pool = None  # engine_mock.kv_pool.PoolLink with --kv-pool
        self.pins: dict[SimRequest, list[int]] = {}  # blocks loaded from the pool, held until admission
        self.pinned_blocks = 0
        self._pool_turn = asyncio.Lock()  # pool lookups in arrival order (asyncio.Lock wakes FIFO)
        self._queue_short = asyncio.Event()  # set by the engine loop when < kv_pool_lookahead wait for admission

    # --- clock and engine loop -------------------------------------------------------------
    def sim_now(self) -> float:
        return (asyncio.get_running_loop().time() - self.t0) * self.speed

    def arrival_time(self) -> float:
        """Simulated arrival: now, but never after the boundary the next step starts at."""
        now = (asyncio.get_running_loop().time() - self.t0) * self.speed
        cursor = self._cursor
        return cursor if cursor is not None and now > cursor else now

    async def engine_loop(self) -> None:
        """Plan a step, sleep until its simulated end, deliver its tokens; repeat while busy.

        Simulated time is authoritative: while the engine stays busy, the next step starts at
        the previous step's end even if the event loop woke a little late (a loaded
        machine, which --speed would otherwise magnify), and the next sleep catches up.
        StepClock (engine_mock/clock.py) keeps that lateness to tens of microseconds.
        """
        clock = StepClock(asyncio.get_running_loop())
        try:
            await self._run_steps(clock, LATE_SLACK_S * self.speed)
        finally:
            clock.close()

    async def _run_steps(self, clock: StepClock, slack: float) -> None:
        loop = asyncio.get_running_loop()
        engine = self.engine
        wake = self._wake
        record = self.metrics.record
        lateness = self.metrics.lateness
        while True:
            if not engine.has_work():
                self._cursor = None
                wake.clear()
                await wake.wait()
                continue
            now = (loop.time() - self.t0) * self.speed
            cursor = self._cursor
            if cursor is not None and now - cursor < slack:
                now = cursor
            engine.slow_factor = self.fault.slow_factor
            step = engine.step(now)
            if step.empty:  # nothing fits right now; wait for an arrival or an abort
                self._cursor = None
                wake.clear()
                await wake.wait()
                continue
            self._cursor = step.end
            await clock.sleep_until(self.t0 + step.end / self.speed)
            late = loop.time() - self.t0 - step.end / self.speed
            lateness.observe(late if late > 0 else 0.0)
            if self.pins:
                self._unpin_admitted()
            if len(engine.waiting) < self.settings.kv_pool_lookahead:
                self._queue_short.set()
            if self.pool is not None:  # the KV of each prefill chunk is saved as it is computed
                for req in step.prefilled:
                    self.pool.write_back(req.block_hashes[:req.scanned_blocks])
            for req in step.emitted:
                waiter = req.waiter
                if waiter is not None and (req.stream or req.finished is not None) and not waiter.done():
                    waiter.set_result(None)
            await asyncio.sleep(0)  # let the woken handlers write their tokens before the metrics work
            record(step)

    async def on_startup(self, app: web.Application) -> None:
        self.t0 = asyncio.get_running_loop().time()
        if self.settings.kv_pool:
            from engine_mock.kv_pool import PoolLink
            from engine_mock.profiles import KV_BYTES_PER_TOKEN

            self.pool = PoolLink(self.settings.kv_pool, self.names[0], self.settings.block_size,
                                 self.settings.block_size * KV_BYTES_PER_TOKEN, self.settings.kv_pool_bandwidth,
                                 self.settings.kv_pool_value_bytes)
            await self.pool.start()
        self._loop_task = asyncio.create_task(self.engine_loop(), name="engine-loop")

    async def on_cleanup(self, app: web.Application) -> None:
        if self._loop_task:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
        if self.pool is not None:
            await self.pool.close()

    async def _add_after_pool_lookup(self, req: SimRequest) -> float:
        """Ask the pool for the request's missing prefix blocks when the engine is about to admit it,
        then queue it; returns the simulated time it joins the engine.

        Resolved in the edge, outside the pure scheduler. Lookups happen one request at a time, in
        arrival order (so transfers queue on the one modelled link), once fewer than
        --kv-pool-lookahead requests wait for admission: asked at arrival, a request queued behind
        others would miss the blocks that other engines are still computing; asked only when none
        waits, the engine would admit nothing while a lookup and its transfer are under way. The
        waits count in TTFT (req.arrival stays the HTTP arrival).
        """
        lookahead = self.settings.kv_pool_lookahead
        async with self._pool_turn:
            while len(self.engine.waiting) >= lookahead:
                self._queue_short.clear()
                await self._queue_short.wait()
            pinned = await self.pool.fetch(self.kv, req.block_hashes, req.prompt_len, self.speed,  # type: ignore[union-attr]
                                           self.kv.num_blocks // 2 - self.pinned_blocks)
            if pinned:
                self.pins[req] = pinned
                self.pinned_blocks += len(pinned)
            self.engine.add(req)
            return self.arrival_time()

    def _unpin_admitted(self) -> None:
        for req in [r for r in self.pins if r.first_scheduled is not None or r.done]:
            pinned = self.pins.pop(req)
            self.pinned_blocks -= len(pinned)
            self.kv.release(pinned, 0)

    # --- helpers ----------------------------------------------------------------------------
    def resolve_model(self, name: str) -> str | None:
        """The adapter a model name selects (None for the base model); 404 if unknown."""
        if name in self.names:
            return None
        if name in self.loras:
            return name
        raise api.not_found_model(name)

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        return api.parse_json(await request.read())

    # --- generation -------------------------------------------------------------------------
    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        # Like vLLM's API server, a request arrives when it is received: reading the body,
        # tokenizing and hashing it are part of its time to first token, not before it.
        received = self.arrival_time()
        try:
            body = await self._read_json(request)
            gen = api.parse_generate(body, chat, self.settings.seed, self.max_model_len)
            lora = self.resolve_model(gen.model)
        except ApiError as exc:
            return _json(exc.status, exc.body())
        if self.settings.fail_rate and self._fail_rng.random() < self.settings.fail_rate:
            return _json(500, api.error_body(500, "injected failure (--fail-rate)", "InternalServerError"))
        req = SimRequest(rid=next(self._ids), prompt_len=len(gen.prompt_ids), max_tokens=gen.max_tokens,
                         block_hashes=block_hashes(gen.prompt_ids, self.kv.block_size), arrival=received,
                         lora=lora, stream=gen.stream)
        start = req.arrival
        try:
            if self.pool is not None and self.engine.blocks_needed(req.prompt_len, req.max_tokens) <= self.kv.num_blocks:
                start = await self._add_after_pool_lookup(req)
            else:
                self.engine.add(req)
        except RequestTooLarge as exc:
            return _json(400, api.error_body(400, str(exc), "BadRequestError", "max_tokens"))
        if lora is not None:
            self.metrics.lora_arrived(lora)
        if self._cursor is None:  # an idle engine starts its next step at this arrival
            self._cursor = start
        self._wake.set()
        pieces = api.output_pieces(gen.prompt_text, gen.seed, gen.max_tokens)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{self._id_prefix}{req.rid:x}"
        created = int(time.time())
        if gen.stream:
            return await self._stream(request, req, gen, pieces, rid, created)
        drop = self.fault.drop_connection_after_tokens
        if drop is not None:
            return await self._stream(request, req, gen, pieces, rid, created, drop_only=True)
        waiter = asyncio.get_running_loop().create_future()
        req.waiter = waiter
        try:
            await waiter
        except asyncio.CancelledError:
            self.engine.abort(req)
            raise
        text = "".join(pieces)
        build = api.chat_body if chat else api.completion_body
        return _json(200, build(rid, created, gen.model, text, req.prompt_len, req.num_generated))

    async def _stream(self, request: web.Request, req: SimRequest, gen: api.GenRequest, pieces: list[str],
                      rid: str, created: int, drop_only: bool = False) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        resp = None
        if not drop_only:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await resp.prepare(request)
        model, chat, last = gen.model, gen.chat, gen.max_tokens - 1
        req.stream = True
        sent = 0
        if chat and resp is not None:  # vLLM's first chunk: the role alone, with empty content
            await resp.write(api.chat_chunk(rid, created, model, {"role": "assistant", "content": ""}, None))
        try:
            while True:
                if req.num_generated == sent and not req.done:
                    waiter = loop.create_future()
                    req.waiter = waiter
                    await waiter
                upto = req.num_generated
                drop = self.fault.drop_connection_after_tokens
                if drop is not None and upto >= drop:
                    upto = drop
                parts = []
                for i in range(sent, upto):
                    finish = "length" if i == last else None
                    if chat:
                        parts.append(api.chat_chunk(rid, created, model, {"content": pieces[i]}, finish))
                    else:
                        parts.append(api.completion_chunk(rid, created, model, pieces[i], finish))
                if parts and resp is not None:
                    await resp.write(b"".join(parts))
                sent = upto
                if drop is not None and sent >= drop and not req.done:
                    self.engine.abort(req)
                    kv(log, "fault: dropping connection", request=rid, after_tokens=sent)
                    if request.transport is not None:
                        request.transport.abort()
                    raise asyncio.CancelledError
                if req.done:
                    break
        except (asyncio.CancelledError, ConnectionResetError):
            self.engine.abort(req)
            raise
        if resp is None:  # non-streaming request that finished before the drop point
            build = api.chat_body if chat else api.completion_body
            return _json(200, build(rid, created, model, "".join(pieces), req.prompt_len, req.num_generated))
        tail = b""
        if gen.include_usage:
            tail = api.usage_chunk(rid, created, model, chat, req.prompt_len, req.num_generated)
        await resp.write(tail + api.SSE_DONE)
        await resp.write_eof()
        return resp

    async def embeddings(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_json(request)
            model = body.get("model")
            if not isinstance(model, str):
                raise ApiError(400, "'model' is required and must be a string", param="model")
            self.resolve_model(model)
            inputs = body.get("input")
            if isinstance(inputs, str):
                inputs = [inputs]
            elif isinstance(inputs, list) and inputs and all(isinstance(t, int) for t in inputs):
                inputs = [" ".join(map(str, inputs))]
            if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
                raise ApiError(400, "'input' must be a string, a list of strings or a list of token ids",
                               param="input")
        except ApiError as exc:
            return _json(exc.status, exc.body())
        tokens = sum(len(token_ids(t)) for t in inputs)
        data = [{"object": "embedding", "index": i, "embedding": api.embedding_vector(t, EMBEDDING_DIM)}
                for i, t in enumerate(inputs)]
        doc = {"id": f"embd-{self._id_prefix}{next(self._ids):x}", "object": "list", "created": int(time.time()),
               "model": model, "data": data, "usage": api.usage(tokens, 0)}
        return web.json_response(doc)

    async def tokenize(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_json(request)
            if "messages" in body:
                text = api.chat_prompt(body["messages"])
            elif isinstance(body.get("prompt"), str):
                text = body["prompt"]
            else:
                raise ApiError(400, "send 'prompt' (a string) or 'messages'", param="prompt")
            if isinstance(body.get("model"), str):
                self.resolve_model(body["model"])
        except ApiError as exc:
            return _json(exc.status, exc.body())
        ids = token_ids(text)
        strs = tokenize(text) if body.get("return_token_strs") else None
        return web.json_response({"count": len(ids), "max_model_len": self.max_model_len, "tokens": ids,
                                  "token_strs": strs})

    # --- models and adapters ----------------------------------------------------------------
    async def models(self, request: web.Request) -> web.Response:
        data = [self._model_card(name, self.settings.model, None, self.created) for name in self.names]
        data += [self._model_card(a.name, a.path, self.names[0], a.created) for a in self.loras.adapters()]
        return web.json_response({"object": "list", "data": data})

    def _model_card(self, name: str, root: str, parent: str | None, created: int) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": created, "owned_by": "vllm", "root": root,
                "parent": parent, "max_model_len": self.max_model_len,
                "permission": [{"id": f"modelperm-{name}", "object": "model_permission", "created": created,
                                "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                                "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                                "organization": "*", "group": None, "is_blocking": False}]}

    async def load_lora(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_json(request)
            text = self.loras.load(body.get("lora_name"), body.get("lora_path"), int(time.time()), set(self.names))
        except ApiError as exc:
            return _json(exc.status, exc.body())
        except LoraError as exc:
            return _json(exc.status, api.error_body(exc.status, exc.message, exc.type))
        kv(log, "lora adapter loaded", lora_name=body["lora_name"], lora_path=body["lora_path"])
        return web.Response(text=text)

    async def unload_lora(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_json(request)
            text = self.loras.unload(body.get("lora_name"))
        except ApiError as exc:
            return _json(exc.status, exc.body())
        except LoraError as exc:
            return _json(exc.status, api.error_body(exc.status, exc.message, exc.type))
        kv(log, "lora adapter unloaded", lora_name=body["lora_name"])
        return web.Response(text=text)

    # --- health, metrics, faults ------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        if self.fault.unhealthy:
            return _json(503, api.error_body(503, "engine marked unhealthy by /admin/fault", "ServiceUnavailable"))
        return web.Response(status=200)

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "brix-engine-mock"})

    async def metrics_handler(self, request: web.Request) -> web.Response:
        page = self.metrics.render()
        if self.pool is not None:
            page += self.pool.render(self.names[0]).encode()
        resp = web.Response(body=page)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def get_fault(self, request: web.Request) -> web.Response:
        return web.json_response(vars(self.fault))

    async def set_fault(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_json(request)
            fault = api.parse_fault(body, self.fault)
        except ApiError as exc:
            return _json(exc.status, exc.body())
        self.fault = fault
        kv(log, "fault knobs changed", **vars(fault))
        return web.json_response(vars(fault))

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.on_startup.append(self.on_startup)
        app.on_cleanup.append(self.on_cleanup)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/load_lora_adapter", self.load_lora)
        app.router.add_post("/v1/unload_lora_adapter", self.unload_lora)
        for path in ("/health", "/healthz", "/ping"):
            app.router.add_get(path, self.health)
        app.router.add_get("/version", self.version)
        app.router.add_get("/metrics", self.metrics_handler)
        app.router.add_get("/admin/fault", self.get_fault)
        app.router.add_post("/admin/fault", self.set_fault)
        return app


async def serve(settings: Settings, profile: Profile) -> None:
    server = EngineServer(settings, profile)
    # handler_cancellation: a client that disconnects aborts its request in the engine, as in vLLM
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=4096)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"cannot listen on {settings.host}:{settings.port} ({exc.strerror});"
                         " pick a free --port or another --host") from None
    kv(log, "engine-mock serving", host=settings.host, port=settings.port, model=",".join(server.names),
       gpu=profile.name, kv_blocks=server.kv.num_blocks, block_size=server.kv.block_size,
       max_model_len=server.max_model_len, speed=settings.speed, profile=profile.source,
       prefill_us_per_token=round(profile.flop_s_per_token * 1e6, 1), decode_step_ms=round(profile.weights_s * 1e3, 2))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    kv(log, "engine-mock stopping")
    await runner.cleanup()


def run(settings: Settings, profile: Profile) -> int:
    asyncio.run(serve(settings, profile))
    return 0
