"""The FastAPI app the embedded-mode tests serve (a small FIR backend on the test's engine),
and what they read back from its metrics page."""

from __future__ import annotations

import threading
import uuid

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from starlette.responses import StreamingResponse

from exporter.config import Config, load_config
from tests.support import Samples

#: Per run, so two runs on the shared PostgreSQL never meet; test_embed drops it after each test.
TABLE = f"afx_embed_fir_{uuid.uuid4().hex[:8]}"


def no_host_config() -> Config:
    """Only what the tests look at: the host collectors are covered by their own tests."""
    return load_config({"collectors": {"system": {"enabled": False}}})


def api_endpoints(samples: Samples) -> set[str]:
    """The `endpoint` labels of `api_requests_total`."""
    return {
        dict(labels)["endpoint"]
        for name, labels in samples
        if name == "api_requests_total" and "endpoint" in dict(labels)
    }


class NewFir(BaseModel):
    title: str


def fir_app(engine) -> tuple[FastAPI, dict[str, threading.Event]]:
    """A small FIR backend; events let a test hold a request open as long as it needs."""
    events = {"release_pool": threading.Event(), "release_stream": threading.Event()}
    app = FastAPI()

    @app.get("/api/fir/{fir_id}")
    def get_fir(fir_id: int) -> dict:
        with engine.connect() as conn:
            title = conn.execute(
                text(f"SELECT title FROM {TABLE} WHERE id = :id"), {"id": fir_id}
            ).scalar()
        if title is None:
            raise HTTPException(status_code=404, detail="no such FIR")
        return {"id": fir_id, "title": title}

    @app.post("/api/fir", status_code=201)
    def create_fir(fir: NewFir) -> dict:
        try:
            with engine.begin() as conn:
                fir_id = conn.execute(
                    text(f"INSERT INTO {TABLE} (title) VALUES (:title) RETURNING id"),
                    {"title": fir.title},
                ).scalar_one()
        except IntegrityError:
            raise HTTPException(status_code=409, detail="already filed") from None
        return {"id": fir_id, "title": fir.title}

    @app.get("/api/boom")
    async def boom() -> dict:
        raise RuntimeError("the handler failed")

    @app.get("/api/stream")
    def stream() -> StreamingResponse:
        def chunks():
            yield b"first\n"
            events["release_stream"].wait(timeout=30)
            yield b"last\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/api/stream/broken")
    def broken_stream() -> StreamingResponse:
        def chunks():
            yield b"first\n"
            raise RuntimeError("the stream failed half way")

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/api/pool/hold")
    def hold_two_connections() -> dict:
        with engine.connect() as first, engine.connect() as second:
            first.exec_driver_sql("SELECT 1")
            second.exec_driver_sql("SELECT 1")
            events["release_pool"].wait(timeout=30)
        return {"held": 2}

    return app, events
