"""Shared fixtures: the machine's real services, skipped (or failed under CI) when down, and a
guard that fails the run if it flushed or emptied the machine's shared Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import shared_redis_guard
from tests.support import reachable, require_service

#: Fixture modules every test module may use without importing them.
pytest_plugins = ["tests.tq_support"]

SHARED_REDIS = ("127.0.0.1", 6379)


@pytest.fixture(scope="session", autouse=True)
def shared_redis_left_intact() -> Iterator[None]:
    """The shared Redis holds other people's data: no test may flush a db or delete their keys.

    Sentinels and a sample of existing keys are checked at the end (tests/shared_redis_guard.py);
    a failure here is an error at the teardown of the last test.
    """
    if not reachable(*SHARED_REDIS):
        yield  # nothing to protect
        return
    dbs = shared_redis_guard.clients(*SHARED_REDIS)
    snapshot = shared_redis_guard.plant(dbs)
    try:
        yield
        found = shared_redis_guard.problems(dbs, snapshot)
        assert not found, "the test run destroyed data on the shared Redis:\n" + "\n".join(found)
    finally:
        shared_redis_guard.remove(dbs, snapshot)


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", 5432)
    return "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def mariadb_url() -> str:
    require_service("MariaDB", 3306)
    return "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.fixture
def redis_host_port() -> tuple[str, int]:
    require_service("Redis", 6379)
    return ("127.0.0.1", 6379)


@pytest.fixture
def rabbitmq_url() -> str:
    require_service("RabbitMQ", 5672)
    return "amqp://guest:guest@127.0.0.1:5672/"
