"""Task-queue config (collectors/task_queue.py through the real loader): errors that name the key
and never echo a password, and passwords read from the environment or a file."""

from __future__ import annotations

import pytest

from collectors.task_queue import KINDS, TaskQueueCollector
from exporter.config import load_config
from exporter.schema import ConfigError

# -- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            {"kind": "rq", "url": "amqp://app:hunter22@127.0.0.1:5672/"},
            "task_queues[0]: url: kind rq needs a redis/rediss/unix URL, got amqp://",
        ),
        (
            {"kind": "sql", "url": "postgresql://127.0.0.1/x"},
            "task_queues[0].query: required key is missing",
        ),
        ({"kind": "redis", "url": "redis://127.0.0.1"}, "task_queues[0].keys: required key"),
        (
            {"kind": "redis", "url": "redis://127.0.0.1", "keys": []},
            "task_queues[0].keys: must not be empty",
        ),
        (
            {"kind": "rabbitmq", "url": "amqp://127.0.0.1"},
            "queues: required for RabbitMQ",
        ),
        (
            {"kind": "celery", "url": "amqp://127.0.0.1"},
            "queues: required for RabbitMQ",
        ),
        # an option of another kind is an unknown key that says where it belongs
        (
            {"kind": "rq", "url": "redis://127.0.0.1", "priority_steps": [0, 5]},
            "task_queues[0].priority_steps: unknown key for kind rq (allowed: ",
        ),
        (
            {"kind": "rq", "url": "redis://127.0.0.1", "priority_steps": [0, 5]},
            "; it applies to kind celery",
        ),
        (
            {"kind": "redis", "url": "redis://127.0.0.1", "keys": [{"key": "k"}], "queues": ["q"]},
            "task_queues[0].queues: unknown key for kind redis",
        ),
        (
            {"kind": "sql", "url": "sqlite://", "query": "SELECT 1", "quueue_limit": 3},
            "unknown key for kind sql; did you mean 'queue_limit'?",
        ),
        ({"url": "redis://127.0.0.1"}, "task_queues[0].kind: required key is missing (one of"),
        (
            {"kind": "sidekiq", "url": "redis://127.0.0.1"},
            f"task_queues[0].kind: must be one of {', '.join(KINDS)}, got str",
        ),
        (
            {"kind": "celery", "url": "redis://127.0.0.1", "priority_steps": [3, 1]},
            "task_queues[0].priority_steps: must be increasing",
        ),
        (
            {"kind": "celery", "url": "redis://:hunter22@127.0.0.1", "transport": "amqp"},
            "transport: amqp does not match the URL scheme redis://",
        ),
        (
            {"kind": "rq", "url": "redis://:hunter22@127.0.0.1", "password": "hunter22"},
            "password: the url already has a password",
        ),
        ({"kind": "rq", "url": "redis://:hunter22@127.0.0.1:99999"}, "url: not a valid URL"),
        ({"kind": "rq", "url": "redis://127.0.0.1", "queue_limit": 0}, "queue_limit: must be"),
        # TLS keys: the Redis collector's own rules
        (
            {"kind": "rq", "url": "redis://:hunter22@127.0.0.1", "server_name": "q.internal"},
            "task_queues[0]: server_name apply only to rediss:// URLs",
        ),
        (
            {"kind": "celery", "url": "amqp://127.0.0.1", "queues": ["q"], "username": "u"},
            "task_queues[0]: username: apply to Celery on Redis only",
        ),
        (
            {"kind": "sql", "url": "not a url", "query": "SELECT 1"},
            "url: not a valid URL (no scheme",
        ),
    ],
)
def test_config_errors_name_the_key_and_never_echo_the_password(entry, problem):
    with pytest.raises(ConfigError) as caught:
        load_config({"task_queues": [{"name": "jobs", **entry}]})
    message = str(caught.value)
    assert problem in message
    assert "hunter22" not in message


def test_password_comes_from_environment_or_file(tmp_path, caplog):
    secret = tmp_path / "pw"
    secret.write_text("s3cret-pw\n")
    config = load_config(
        {
            "task_queues": [
                {
                    "name": "a",
                    "kind": "rq",
                    "url": "redis://127.0.0.1",
                    "password_file": str(secret),
                },
                {"name": "b", "kind": "rq", "url": "redis://:${AFX_TQ_PW}@127.0.0.1/1"},
            ]
        },
        env={"AFX_TQ_PW": "env-pw"},
    )
    a, b = config.targets["task_queues"]
    assert a.password.reveal() == "s3cret-pw" and "s3cret" not in repr(a)
    assert b.url == "redis://:env-pw@127.0.0.1/1"
    assert "s3cret-pw" in config.secrets
    # a failure that quotes either password is logged redacted
    for target, password in ((a, "s3cret-pw"), (b, "env-pw")):
        TaskQueueCollector(target).log_failure("error", RuntimeError(f"auth with {password}"))
        assert password not in caplog.text
    assert "auth with ***" in caplog.text
