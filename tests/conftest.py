"""Shared fixtures: the machine's real services, skipped (or failed under CI) when down."""

from __future__ import annotations

import pytest

from tests.support import require_service


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
