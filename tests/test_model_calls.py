"""The app's own calls to a model server (embedded mode): counted by the transport the app
attaches to its httpx client, served by the embedded exporter. A loopback Ollama-like server
answers, fails or streams; the counts are compared with the calls the test made."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from exporter import embed
from exporter.model_calls import ModelCalls
from tests.support import free_port, scrape_url, serve_app

STREAM_CHUNKS = 4
CHUNK_PAUSE = 0.1


async def generate(request: Request) -> Response:
    try:
        body = await request.json()
    except ValueError:
        body = {}
    return JSONResponse({"model": body.get("model"), "response": "ok", "done": True})


async def broken(request: Request) -> Response:
    return JSONResponse({"error": "model crashed"}, status_code=500)


async def chat(request: Request) -> Response:
    async def lines():
        for i in range(STREAM_CHUNKS):
            await asyncio.sleep(CHUNK_PAUSE)
            yield f'{{"message": {{"content": "t{i}"}}, "done": {str(i == 3).lower()}}}\n'

    return StreamingResponse(lines(), media_type="application/x-ndjson")


OLLAMA = Starlette(
    routes=[
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/broken", broken, methods=["POST"]),
        Route("/api/chat", chat, methods=["POST"]),
    ]
)


def sample(calls: ModelCalls, name: str, **labels: str) -> float | None:
    return calls.registry.get_sample_value(name, labels)


def test_sync_calls_are_counted_by_server_model_and_outcome():
    calls = ModelCalls()
    with serve_app(OLLAMA) as url:
        client = httpx.Client(base_url=url, transport=calls.transport("ollama"))
        for _ in range(3):
            assert client.post("/api/generate", json={"model": "llama3", "prompt": "x"}).is_success
        for _ in range(2):
            assert client.post("/api/broken", json={"model": "llama3"}).status_code == 500
        assert client.post("/api/generate", json={"model": "phi3", "prompt": "y"}).is_success
        client.close()
    down = httpx.Client(
        base_url=f"http://127.0.0.1:{free_port()}", transport=calls.transport("down")
    )
    with pytest.raises(httpx.ConnectError):  # the app sees its own error, unchanged
        down.post("/api/generate", json={"model": "llama3"})
    down.close()

    counted = "model_server_requests_total"
    assert sample(calls, counted, server="ollama", model="llama3", status="success") == 3
    assert sample(calls, counted, server="ollama", model="llama3", status="failure") == 2
    assert sample(calls, counted, server="ollama", model="phi3", status="success") == 1
    assert sample(calls, counted, server="down", model="llama3", status="failure") == 1
    timed = "model_server_latency_seconds_count"
    assert sample(calls, timed, server="ollama", model="llama3") == 5  # answered calls
    assert sample(calls, timed, server="down", model="llama3") is None  # no answer: not timed


def test_streamed_answers_are_timed_to_the_end_of_their_body():
    calls = ModelCalls()

    async def stream_one(url: str) -> list[str]:
        transport = calls.async_transport("ollama", model="llama3")
        async with (
            httpx.AsyncClient(base_url=url, transport=transport) as client,
            client.stream("POST", "/api/chat", json={"messages": []}) as response,
        ):
            return [line async for line in response.aiter_lines()]

    with serve_app(OLLAMA) as url:
        lines = asyncio.run(stream_one(url))
    assert len(lines) == STREAM_CHUNKS
    seconds = sample(calls, "model_server_latency_seconds_sum", server="ollama", model="llama3")
    # the headers came at once; the body took STREAM_CHUNKS pauses
    assert seconds is not None and seconds >= STREAM_CHUNKS * CHUNK_PAUSE * 0.9
    assert sample(calls, "model_server_latency_seconds_count", server="ollama", model="llama3") == 1


def test_model_names_beyond_the_budget_are_other():
    calls = ModelCalls(max_models=2)
    with (
        serve_app(OLLAMA) as url,
        httpx.Client(base_url=url, transport=calls.transport("ollama")) as client,
    ):
        for model in ("a", "b", "c", "d", "a"):
            client.post("/api/generate", json={"model": model})
        client.post("/api/generate", content=b"not json", headers={"content-type": "text/plain"})
    counted = "model_server_requests_total"
    assert sample(calls, counted, server="ollama", model="a", status="success") == 2
    assert sample(calls, counted, server="ollama", model="b", status="success") == 1
    # c, d and the call without a JSON body (`unknown`): past the budget of two names
    assert sample(calls, counted, server="ollama", model="other", status="success") == 3
    assert sample(calls, counted, server="ollama", model="unknown", status="success") is None


def test_embedded_exporter_serves_the_apps_calls():
    calls = ModelCalls()
    backend = Starlette()

    async def summarize(request: Request) -> Response:
        async with httpx.AsyncClient(
            base_url=request.app.state.ollama, transport=calls.async_transport("ollama")
        ) as client:
            answer = await client.post("/api/generate", json={"model": "llama3", "prompt": "p"})
        return JSONResponse({"ok": answer.is_success})

    backend.router.routes.append(Route("/summarize", summarize, methods=["POST"]))
    embed(backend, collectors=[calls.collector()])
    with serve_app(OLLAMA) as ollama:
        backend.state.ollama = ollama
        with serve_app(backend) as url:
            for _ in range(4):
                assert httpx.post(f"{url}/summarize").json() == {"ok": True}
            got = scrape_url(f"{url}/prometheus/metrics")
    labels = {"model": "llama3", "server": "ollama"}
    assert got.value("model_server_requests_total", status="success", **labels) == 4
    assert got.value("model_server_latency_seconds_count", **labels) == 4
