"""Engines that die, hang or get dropped by the client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from tests.http_apps import serving


def engine_running(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("vllm:num_requests_running"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError("engine exports no vllm:num_requests_running")


@contextlib.asynccontextmanager
async def fake_engine(model: str, completions: Any) -> AsyncIterator[str]:
    """A tiny upstream serving /v1/models (one model) and `completions` for what engine_mock never does."""
    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": model, "object": "model"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    async with serving(app, shutdown_timeout=0.1) as url:
        yield url


# both upstream clients (gateway/upstream.py, the default, and aiohttp's) keep these semantics
CLIENTS = pytest.mark.parametrize("upstream", ["fast", "aiohttp"])


@CLIENTS
def test_failover_when_an_engine_is_killed(start_engines, start_gateway, upstream):  # type: ignore[no-untyped-def]
    engines = start_engines(2)
    url = start_gateway([e.url for e in engines], "--scrape-interval", "5", "--upstream-client", upstream)   # no scrape to notice first
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    for _ in range(4):
        client.completions.create(model="mock-llm", prompt="warm", max_tokens=1)
    os.kill(engines[0].proc.pid, signal.SIGKILL)
    engines[0].proc.popen.wait(5)
    # every request still succeeds: a connect failure retries on the live engine
    for i in range(10):
        out = client.completions.with_raw_response.create(model="mock-llm", prompt=f"after {i}", max_tokens=1)
        assert out.headers["x-brix-endpoint"] == engines[1].url
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        assert "brix_gateway_upstream_retries_total" in resp.read().decode()


def test_no_ready_endpoint_is_503(start_engines, start_gateway):  # type: ignore[no-untyped-def]
    engines = start_engines(1)
    url = start_gateway([e.url for e in engines])
    engines[0].proc.stop()
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    with pytest.raises(openai.InternalServerError) as info:
        client.completions.create(model="mock-llm", prompt="x", max_tokens=1)
    assert info.value.status_code == 503


def test_unhealthy_engine_gets_no_traffic(start_engines, start_gateway):  # type: ignore[no-untyped-def]
    engines = start_engines(2)
    url = start_gateway([e.url for e in engines])
    urllib.request.urlopen(urllib.request.Request(engines[0].url + "/admin/fault", data=b'{"unhealthy": true}',
                                                  headers={"Content-Type": "application/json"}), timeout=5)
    time.sleep(1.5)   # two /health refreshes at --models-refresh 0.5
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    for i in range(6):
        out = client.completions.with_raw_response.create(model="mock-llm", prompt=f"p{i}", max_tokens=1,
                                                          extra_headers={"routing-strategy": "random"})
        assert out.headers["x-brix-endpoint"] == engines[1].url


@CLIENTS
def test_client_disconnect_cancels_the_upstream_request(start_engines, start_gateway, upstream):  # type: ignore[no-untyped-def]
    engines = start_engines(1)
    url = start_gateway([e.url for e in engines], "--upstream-client", upstream)
    urllib.request.urlopen(urllib.request.Request(engines[0].url + "/admin/fault", data=b'{"slow_factor": 40}',
                                                  headers={"Content-Type": "application/json"}), timeout=5)

    async def read_one_chunk_and_leave() -> None:
        async with aiohttp.ClientSession() as s:
            body = {"model": "mock-llm", "prompt": "long one", "max_tokens": 2000, "stream": True}
            async with s.post(url + "/v1/completions", json=body) as resp:
                assert resp.status == 200
                await resp.content.readany()
                assert engine_running(engines[0].url) == 1.0
            # leaving the block closes the connection mid-stream

    asyncio.run(read_one_chunk_and_leave())
    deadline = time.monotonic() + 5
    while engine_running(engines[0].url) != 0.0:
        assert time.monotonic() < deadline, "the engine kept generating for a client that left"
        time.sleep(0.05)


@CLIENTS
def test_engine_that_never_answers_hits_the_first_byte_timeout(launcher, upstream):  # type: ignore[no-untyped-def]
    # engine_mock always answers, so a tiny upstream that accepts and then says nothing stands in
    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    async def main() -> None:
        async with fake_engine("hang", hang) as engine:
            gw = await asyncio.to_thread(launcher.gateway, [engine], "--first-byte-timeout", "1",
                                         "--upstream-client", upstream)
            async with aiohttp.ClientSession() as s:
                t0 = time.monotonic()
                async with s.post(gw + "/v1/completions", json={"model": "hang", "prompt": "x"}) as resp:
                    doc = json.loads(await resp.read())
                    assert resp.status == 504 and "first-byte" in doc["error"]["message"]
                assert time.monotonic() - t0 < 5

    asyncio.run(main())


@CLIENTS
def test_stream_broken_by_the_engine_ends_with_an_error_event(start_engines, start_gateway, upstream):  # type: ignore[no-untyped-def]
    engines = start_engines(1)
    url = start_gateway([e.url for e in engines], "--upstream-client", upstream)
    urllib.request.urlopen(urllib.request.Request(engines[0].url + "/admin/fault",
                                                  data=b'{"drop_connection_after_tokens": 3}',
                                                  headers={"Content-Type": "application/json"}), timeout=5)
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    got = []
    with pytest.raises(openai.APIError):
        for chunk in client.completions.create(model="mock-llm", prompt="x", max_tokens=20, stream=True):
            got.append(chunk)
    assert 1 <= len(got) <= 3


@CLIENTS
def test_stream_that_goes_quiet_hits_the_idle_timeout(launcher, upstream):  # type: ignore[no-untyped-def]
    # an engine that sends one event and then nothing: the gateway ends the stream with an error event
    async def one_event_then_silence(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"choices": [{"text": "hi"}]}\n\n')
        await asyncio.sleep(3600)
        return resp

    async def main() -> None:
        async with fake_engine("quiet", one_event_then_silence) as engine:
            gw = await asyncio.to_thread(launcher.gateway, [engine], "--idle-timeout", "1",
                                         "--upstream-client", upstream)
            async with aiohttp.ClientSession() as s:
                t0 = time.monotonic()
                body_json = {"model": "quiet", "prompt": "x", "stream": True}
                async with s.post(gw + "/v1/completions", json=body_json) as resp:
                    assert resp.status == 200
                    body = await asyncio.wait_for(resp.read(), 10)
                took = time.monotonic() - t0
            events = [line for line in body.decode().split("\n\n") if line]
            assert events[0] == 'data: {"choices": [{"text": "hi"}]}'
            assert "sent nothing for 1s" in events[-1] and '"code": 504' in events[-1]
            assert 0.9 < took < 5
            with urllib.request.urlopen(gw + "/metrics", timeout=5) as m:
                assert 'status="502"' in m.read().decode()

    asyncio.run(main())
