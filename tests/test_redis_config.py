"""The Redis targets' configuration: URL schemes, URLs named without their secrets, passwords
from the environment and from files, and options overridden per target."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.redis import Options
from collectors.secret import Secret
from exporter.config import load_config
from exporter.schema import ConfigError

# -- configuration ---------------------------------------------------------------------------


def load_redis(entry: dict, env: dict | None = None, base_dir: Path | str = "."):
    config = load_config(
        {"redis": [entry]}, env=env or {}, base_dir=base_dir, source="exporter.yml"
    )
    return config, config.targets["redis"][0]


def problems(entry: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_redis(entry, env)
    return caught.value.problems


def test_config_accepts_the_three_schemes():
    for url in ("redis://127.0.0.1:6379/2", "rediss://127.0.0.1:6380", "unix:///run/r.sock?db=3"):
        _, target = load_redis({"name": "cache", "url": url})
        assert target.url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2-secret@127.0.0.1:6379",
        "redis://:hunter2-secret@127.0.0.1:notaport/0",
        "redis:///hunter2-secret",
        "unix://",
    ],
)
def test_bad_url_is_named_without_echoing_it(url):
    found = problems({"name": "cache", "url": url})
    assert found == [
        "redis[0].url: not a valid Redis URL "
        "(expected redis://HOST:PORT/DB, rediss://... or unix://PATH)"
    ]
    assert "hunter2" not in "".join(found)


def test_password_from_env_and_from_file(tmp_path: Path):
    config, target = load_redis(
        {"name": "a", "url": "redis://127.0.0.1:6379", "password": "${REDIS_PW}"},
        env={"REDIS_PW": "from-env-pw"},
    )
    assert target.password == Secret("from-env-pw")
    assert "from-env-pw" in config.secrets and "from-env-pw" not in repr(target)
    (tmp_path / "pw").write_text("from-file-pw\n")
    config, target = load_redis(
        {"name": "a", "url": "redis://127.0.0.1:6379", "password_file": "pw"}, base_dir=tmp_path
    )
    assert target.password == Secret("from-file-pw")
    assert "from-file-pw" not in repr(config)


def test_unset_env_and_conflicting_settings_are_errors():
    assert problems({"name": "a", "url": "redis://h:1", "password": "${NOPE}"}) == [
        "redis[0].password: environment variable NOPE is not set"
    ]
    assert problems({"name": "a", "url": "redis://h:1", "ca_file": "/etc/hostname"}) == [
        "redis[0]: ca_file apply only to rediss:// URLs"
    ]
    assert problems({"name": "a", "url": "redis://h:1", "command_limit": 0}) == [
        "redis[0].command_limit: must be at least 1, got 0"
    ]
    found = problems({"name": "a", "url": "redis://h:1", "pasword": "x"})
    assert found[0].startswith("redis[0].pasword: unknown key; did you mean 'password'?")


def test_collector_options_and_target_overrides():
    config = load_config(
        {
            "collectors": {"redis": {"command_limit": 7, "latency_histogram": False}},
            "redis": [{"name": "a", "url": "redis://127.0.0.1:1", "command_limit": 3}],
        },
        env={},
    )
    effective = config.targets["redis"][0].effective_options(config.options("redis"))
    assert effective == Options(command_limit=3, latency_histogram=False)
