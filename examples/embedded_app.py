"""A FastAPI backend with the exporter embedded in it.

`/prometheus/metrics` serves the pool of the engine this app really uses, its Redis cache, the
host, and the app's own request metrics by route template. Run it from the repository root
(no venv to activate; the `example` extra is FastAPI plus `[database,redis]`):

    python3 -m venv .venv && .venv/bin/pip install -q -e '.[example]'
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
    REDIS_URL=redis://127.0.0.1:6379/14 \
    .venv/bin/uvicorn examples.embedded_app:app --port 8000

    curl -s -X POST localhost:8000/api/fir -H 'content-type: application/json' \
        -d '{"title": "stolen bicycle"}'
    curl -s localhost:8000/api/fir/1
    curl -s localhost:8000/prometheus/metrics | grep -E '^(api_|db_connection_pool)'

Without DATABASE_URL it uses a SQLite file; without REDIS_URL it runs without a cache. With
several workers (`--workers 2`), set PROMETHEUS_MULTIPROC_DIR to an empty directory first.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select

from exporter import embed

engine = create_engine(
    os.environ.get("DATABASE_URL", "sqlite:///embedded-example.db"), pool_size=5, max_overflow=5
)
cache = redis.Redis.from_url(os.environ["REDIS_URL"]) if os.environ.get("REDIS_URL") else None

metadata = MetaData()
firs = Table(
    "afx_embed_example_fir",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(200), nullable=False),
)


class NewFir(BaseModel):
    title: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    metadata.create_all(engine)  # the app's own start-up; embed() closes the exporter after it
    yield
    engine.dispose()


app = FastAPI(title="FIR backend (embedded exporter example)", lifespan=lifespan)


@app.get("/api/health")
def health() -> dict[str, object]:
    """Which worker answered: handy to see requests spread over `--workers`."""
    return {"status": "ok", "pid": os.getpid()}


@app.post("/api/fir", status_code=201)
def create_fir(fir: NewFir) -> dict[str, object]:
    with engine.begin() as conn:
        fir_id = conn.execute(insert(firs).values(title=fir.title).returning(firs.c.id)).scalar()
    return {"id": fir_id, "title": fir.title}


@app.get("/api/fir/{fir_id}")
def get_fir(fir_id: int) -> dict[str, object]:
    key = f"afx_embed:fir:{fir_id}"
    if cache is not None and (hit := cache.get(key)) is not None:
        return dict(json.loads(hit))
    with engine.connect() as conn:
        row = conn.execute(select(firs).where(firs.c.id == fir_id)).first()
    if row is None:
        raise HTTPException(status_code=404, detail="no such FIR")
    found = {"id": row.id, "title": row.title}
    if cache is not None:
        cache.set(key, json.dumps(found), ex=60)
    return found


embed(app, engine=engine, redis=cache)
