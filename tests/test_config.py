"""exporter/config.py: the YAML shape, its defaults, and errors that name the key and the problem."""

from __future__ import annotations

import dataclasses
import textwrap
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from collectors.secret import Secret
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    load_config,
    parse_listen_address,
    read_config,
    with_overrides,
)
from exporter.schema import ConfigError


def problems(data, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(data, env=kwargs.pop("env", {}), **kwargs)
    return info.value.problems


def test_empty_config_gives_loopback_defaults_with_host_collectors_on():
    config = load_config(None, env={})
    assert config.web.listen_address == DEFAULT_LISTEN_ADDRESS
    assert config.web.host == "127.0.0.1"
    assert config.scrape.timeout_offset_seconds == 0.25
    assert config.scrape.default_timeout_seconds == 10
    assert config.enabled("system") and config.enabled("process")


def test_design_shape_for_core_keys_loads():
    config = load_config(
        yaml.safe_load(
            """
            web: {listen_address: "127.0.0.1:9999"}
            scrape: {timeout_offset_seconds: 0.5, default_timeout_seconds: 4}
            collectors: {system: {enabled: false}}
            namespace: afirgen
            """
        ),
        env={},
    )
    assert config.web.port == 9999
    assert config.scrape.timeout_offset_seconds == 0.5
    assert config.scrape.default_timeout_seconds == 4.0
    assert not config.enabled("system")
    assert config.namespace == "afirgen"


def test_a_collector_turned_off_keeps_its_options_checked_and_a_flag_turns_it_on_again():
    # `{enabled: false}` alone does not import the collector's module (tests/test_footprint.py);
    # any other key still is validated against its Options
    found = problems({"collectors": {"system": {"enabled": False, "mountpoint_exclude": "x"}}})
    assert len(found) == 1 and found[0].startswith("collectors.system.mountpoint_exclude:")
    config = load_config({"collectors": {"system": {"enabled": False}}}, env={})
    assert not config.enabled("system") and config.options("system") is None
    again = with_overrides(config, collectors={"system": True})
    assert again.enabled("system") and again.options("system") is None  # the defaults


def test_misspelt_key_names_path_and_suggests_the_close_one():
    found = problems({"scrape": {"timeout_ofset_seconds": 1}})
    assert len(found) == 1
    assert found[0].startswith("scrape.timeout_ofset_seconds: unknown key")
    assert "did you mean 'timeout_offset_seconds'" in found[0]


def test_unknown_top_level_key_and_unknown_collector_are_errors():
    found = problems({"webb": {}, "collectors": {"sytem": {"enabled": True}}})
    assert any(p.startswith("webb: unknown key; did you mean 'web'") for p in found)
    assert any(
        p.startswith("collectors.sytem: unknown collector; did you mean 'system'") for p in found
    )


def test_wrong_types_name_the_key_and_what_was_found():
    found = problems(
        {
            "scrape": {"default_timeout_seconds": "ten", "gzip_level": 12},
            "collectors": {"system": {"enabled": "yes"}},
        }
    )
    assert "scrape.default_timeout_seconds: expected a number, got str 'ten'" in found
    assert "scrape.gzip_level: must be 1-9, got 12" in found
    assert "collectors.system.enabled: expected true or false, got str 'yes'" in found


def test_every_problem_is_reported_at_once():
    found = problems({"web": {"listen_address": "nope"}, "scrape": {"max_timeout_seconds": -1}})
    assert len(found) == 2


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("localhost", "is not HOST:PORT"),
        ("127.0.0.1:70000", "port 70000 is out of range"),
        (":9100", "has no host"),
        ("[zz]:9100", "is not an IPv6 address"),
        ("bad host:1", "is not a host name"),
    ],
)
def test_invalid_listen_address(address, message):
    found = problems({"web": {"listen_address": address}})
    assert found[0].startswith("web.listen_address: ") and message in found[0]


def test_ipv6_listen_address_parses():
    assert parse_listen_address("[::1]:9864") == ("::1", 9864)


def test_env_references_expand_and_missing_ones_are_named():
    config = load_config(
        {"web": {"listen_address": "${HOST}:${PORT:-9111}"}}, env={"HOST": "127.0.0.2"}
    )
    assert config.web.listen_address == "127.0.0.2:9111"
    found = problems({"web": {"listen_address": "${NOPE}:1"}})
    assert found == ["web.listen_address: environment variable NOPE is not set"]


def test_tls_files_must_exist_and_come_in_pairs(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    found = problems({"web": {"tls_cert_file": str(cert)}})
    assert found == ["web: tls_cert_file and tls_key_file must be set together"]
    found = problems({"web": {"tls_cert_file": str(cert), "tls_key_file": str(tmp_path / "k")}})
    assert found == [f"web.tls_key_file: file {tmp_path / 'k'} does not exist"]


def test_basic_auth_users_need_bcrypt_hashes():
    found = problems({"web": {"basic_auth_users": {"prom": "plaintext"}}})
    assert found == ["web.basic_auth_users.prom: not a bcrypt hash (expected $2b$<cost>$...)"]


def test_bad_namespace():
    assert problems({"namespace": "1bad"}) == [
        "namespace: '1bad' is not a valid metric name prefix"
    ]


def test_read_config_reports_unparsable_yaml_with_position(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("web:\n  listen_address: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        read_config(path)
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_read_config_reports_a_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        read_config(tmp_path / "absent.yml")
    assert "cannot read" in str(info.value)


def test_top_level_must_be_a_mapping():
    assert "mapping at the top level" in problems(["a"])[0]


def test_overrides_apply_and_are_validated():
    config = load_config({}, env={})
    changed = with_overrides(config, listen_address="127.0.0.1:1234", collectors={"system": False})
    assert changed.web.port == 1234 and not changed.enabled("system")
    with pytest.raises(ConfigError) as info:
        with_overrides(config, listen_address="x", collectors={"nope": True})
    assert any(p.startswith("--web.listen-address:") for p in info.value.problems)
    assert any(p.startswith("--collector.nope: unknown collector") for p in info.value.problems)


# --- the generic schema loader, on a schema of its own (secrets, files, lists) -------------

from dataclasses import dataclass, field  # noqa: E402

from exporter.schema import Loader  # noqa: E402


@dataclass(frozen=True)
class Sample:
    name: str
    password: Secret | None = None
    password_file: str | None = field(default=None, metadata={"secret_file_for": "password"})
    tags: tuple[str, ...] = ()


def build(data, tmp_path: Path, env=None):
    loader = Loader(env=env or {}, base_dir=tmp_path)
    return loader.build(Sample, data, "things[0]"), loader


def test_secret_file_is_read_relative_to_the_config_and_masked(tmp_path):
    (tmp_path / "pw").write_text("s3cr3t-value\n")
    sample, loader = build({"name": "a", "password_file": "pw"}, tmp_path)
    assert sample.password.reveal() == "s3cr3t-value"
    assert "s3cr3t" not in repr(sample)
    assert "s3cr3t-value" in loader.secrets


def test_missing_secret_file_is_named(tmp_path):
    sample, loader = build({"name": "a", "password_file": "absent"}, tmp_path)
    assert sample is None
    assert loader.problems[0].startswith("things[0].password_file: cannot read")


def test_password_and_password_file_together_is_an_error(tmp_path):
    (tmp_path / "pw").write_text("x")
    _, loader = build({"name": "a", "password": "y", "password_file": "pw"}, tmp_path)
    assert loader.problems == [
        "things[0].password_file: set either password or password_file, not both"
    ]


def test_secret_from_env_is_masked(tmp_path):
    sample, loader = build({"name": "a", "password": "${PW}"}, tmp_path, env={"PW": "hunter22"})
    assert sample.password.reveal() == "hunter22" and "hunter22" not in repr(sample)


def test_required_key_and_list_items_are_checked(tmp_path):
    _, loader = build({"tags": ["ok", {"no": 1}]}, tmp_path)
    assert "things[0].name: required key is missing" in loader.problems
    assert "things[0].tags[1]: expected a string, got a mapping" in loader.problems


def test_a_number_for_a_secret_is_an_error_that_does_not_echo_it(tmp_path):
    _, loader = build({"name": "a", "password": 12345678}, tmp_path)
    assert loader.problems == ["things[0].password: expected a string"]
    assert "12345678" not in loader.problems[0]


def test_example_config_loads_with_every_collector_section():
    example = Path(__file__).resolve().parent.parent / "exporter.example.yml"
    config = load_config(
        yaml.safe_load(textwrap.dedent(example.read_text())), env={}, base_dir=example.parent
    )
    assert set(config.targets) == {"databases", "redis", "model_servers", "task_queues"}
    assert config.web.listen_address == DEFAULT_LISTEN_ADDRESS


def test_a_basic_auth_user_name_with_a_colon_is_refused():
    """Basic auth ends the user name at the first ':': such a user could never log in."""
    hashed = "$2b$04$dwSwAsdZwPLi68sGTrg9pugTsiWxBzWLc5C29l8F60Fm6tcveWoEC"
    found = problems({"web": {"basic_auth_users": {"prom:eu": hashed, "ok": hashed}}})
    assert found == [
        "web.basic_auth_users: user name 'prom:eu' contains ':', which basic auth cannot "
        "carry (the first ':' ends the user name)"
    ]


def test_an_empty_mapping_or_list_key_is_as_if_absent_but_an_empty_number_is_an_error():
    config = load_config(
        yaml.safe_load("web:\n  basic_auth_users:\n    # prom: $2b$...\ncollectors:\n"), env={}
    )
    assert dict(config.web.basic_auth_users) == {}
    assert problems({"scrape": {"default_timeout_seconds": None}}) == [
        "scrape.default_timeout_seconds: a value is required (got null)"
    ]


def test_filesystem_limit_below_one_is_refused():
    """0 or -1 would have meant "no limit" without a word (the budget skips limits <= 0)."""
    for value in (0, -1):
        assert problems({"collectors": {"system": {"filesystem_limit": value}}}) == [
            f"collectors.system.filesystem_limit: must be at least 1, got {value}"
        ]


def config_dataclasses() -> Iterator[tuple[str, type]]:
    """(key path, dataclass) for every section of the config: web, scrape, each collector's
    options and each target type (every variant of a tagged one)."""
    from collectors.catalog import CATALOG
    from exporter.config import ScrapeConfig, WebConfig

    pending: list[tuple[str, Any]] = [("web", WebConfig), ("scrape", ScrapeConfig)]
    for spec in CATALOG:
        module = spec.load()
        if hasattr(module, "Options"):
            pending.append((f"collectors.{spec.name}", module.Options))
        if hasattr(module, "Target"):
            pending.append((f"{spec.section}[]", module.Target))
    while pending:
        path, cls = pending.pop()
        variants = getattr(cls, "schema_variants", None)
        if variants is not None:
            pending.extend((f"{path}({tag})", sub) for tag, sub in variants[1].items())
            continue
        yield path, cls
        hints = typing.get_type_hints(cls)
        for spec_field in dataclasses.fields(cls):
            hint = hints[spec_field.name]
            for candidate in (hint, *typing.get_args(hint)):
                if dataclasses.is_dataclass(candidate) and isinstance(candidate, type):
                    pending.append((f"{path}.{spec_field.name}", candidate))


def test_every_number_in_the_config_has_a_range_check():
    """A number without a check takes any value: a negative limit or timeout is refused at
    load, naming the key, rather than doing something odd at scrape time."""
    unchecked = []
    seen = 0
    for path, cls in config_dataclasses():
        hints = typing.get_type_hints(cls)
        for spec_field in dataclasses.fields(cls):
            if spec_field.name.startswith("_") or not spec_field.init:
                continue
            hint = hints[spec_field.name]
            kinds = {hint, *typing.get_args(hint)} - {type(None)}
            if kinds & {int, float}:
                seen += 1
                if "check" not in spec_field.metadata:
                    unchecked.append(f"{path}.{spec_field.name}")
    assert seen > 20  # the walk reached the collectors' options and targets
    assert unchecked == []
