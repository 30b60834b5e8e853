"""exporter/webconfig.py: the exporter-toolkit web config file, with mTLS clients whose
certificates openssl makes here, against the real exporter process over HTTPS on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml

from exporter.schema import ConfigError
from exporter.webconfig import load_web_config
from tests.support import (
    ROOT,
    exporter_args,
    free_port,
    require_binary,
    started_process,
    wait_until,
)
from tests.tls_certs import Authority

PASSWORD = "toolkit-pass"


@pytest.fixture(scope="module")
def made_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's CAs and certificates, made once (five RSA keys take seconds)."""
    directory = tmp_path_factory.mktemp("pki")
    ca = Authority(directory, "ca")
    ca.issue("server", client=False)
    ca.issue("client", client=True)
    Authority(directory, "other-ca").issue("stranger", client=True)
    return directory


@pytest.fixture
def pki(made_pki: Path, tmp_path: Path):
    """The module's certificates copied into the test's directory, where its web config names
    them relative to itself; the CA there issues more (a rotation) without touching others'."""
    for made in made_pki.iterdir():
        shutil.copy(made, tmp_path)
    ca = Authority(tmp_path, "ca", made=True)

    def pair(name: str) -> tuple[Path, Path]:
        return tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"

    return {
        "ca": ca,
        "server": pair("server"),
        "client": pair("client"),
        "stranger": pair("stranger"),
    }


def client_context(pki, cert: tuple[Path, Path] | None = None, **versions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"].cert))
    if cert is not None:
        context.load_cert_chain(*map(str, cert))
    for name, value in versions.items():
        setattr(context, name, value)
    return context


def toolkit_file(tmp_path: Path, **tls) -> Path:
    """A web config as an operator has it for a Go exporter (relative file names)."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    body = {
        "tls_server_config": {"cert_file": "server.pem", "key_file": "server-key.pem", **tls},
        "http_server_config": {"http2": True, "headers": {"X-Frame-Options": "deny"}},
        "basic_auth_users": {"prom": hashed},
    }
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(body))
    return path


def replace_file(path: Path, text: str) -> None:
    """Rewrite `path` so that its mtime is sure to differ (coarse file system clocks)."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


@contextlib.contextmanager
def exporter_with(web_config: Path, context: ssl.SSLContext) -> Iterator[tuple[str, object]]:
    port = free_port()
    log = web_config.parent / "exporter.log"
    url = f"https://127.0.0.1:{port}"
    with started_process(
        exporter_args(port, None, "--web.config.file", str(web_config), "--no-collector.system"),
        ready=lambda: (
            httpx.get(f"{url}/-/healthy", verify=context, auth=("prom", PASSWORD)).status_code
            == 200
        ),
        what=f"the exporter over HTTPS (log: {log})",
        log=log,
        timeout=20,
        cwd=ROOT,
    ) as proc:
        yield url, proc


def refused(url: str, context: ssl.SSLContext) -> bool:
    """True when the TLS handshake (or the first read after it) is refused."""
    try:
        httpx.get(f"{url}/metrics", verify=context, auth=("prom", PASSWORD), timeout=5)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return True
    return False


def test_require_and_verify_client_cert_with_basic_auth_and_headers(tmp_path, pki):
    web = toolkit_file(
        tmp_path,
        client_ca_file="ca.pem",
        client_auth_type="RequireAndVerifyClientCert",
        min_version="TLS12",
    )
    trusted = client_context(pki, pki["client"])
    with exporter_with(web, trusted) as (url, _):
        ok = httpx.get(f"{url}/metrics", verify=trusted, auth=("prom", PASSWORD))
        wrong = httpx.get(f"{url}/metrics", verify=trusted, auth=("prom", "nope"))
        no_cert = refused(url, client_context(pki))
        stranger = refused(url, client_context(pki, pki["stranger"]))
    assert ok.status_code == 200 and "process_cpu_seconds_total" in ok.text
    assert ok.headers["x-frame-options"] == "deny"
    assert wrong.status_code == 401 and wrong.headers["x-frame-options"] == "deny"
    assert no_cert and stranger


def test_verify_if_given_lets_certless_clients_in_but_not_strangers(tmp_path, pki):
    web = toolkit_file(
        tmp_path, client_ca_file="ca.pem", client_auth_type="VerifyClientCertIfGiven"
    )
    with exporter_with(web, client_context(pki)) as (url, _):
        certless = httpx.get(f"{url}/metrics", verify=client_context(pki), auth=("prom", PASSWORD))
        stranger = refused(url, client_context(pki, pki["stranger"]))
    assert certless.status_code == 200 and stranger


def test_versions_and_go_cipher_suite_names(tmp_path, pki):
    web = toolkit_file(
        tmp_path,
        max_version="TLS12",
        cipher_suites=["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        prefer_server_cipher_suites=True,
    )
    with exporter_with(web, client_context(pki)) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                negotiated = (tls.version(), tls.cipher()[0])
        too_new = refused(url, client_context(pki, minimum_version=ssl.TLSVersion.TLSv1_3))
    assert negotiated == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    assert too_new


def test_the_file_is_reread_when_it_changes_and_a_bad_one_keeps_the_old(tmp_path, pki):
    web = toolkit_file(tmp_path)  # NoClientCert
    certless, trusted = client_context(pki), client_context(pki, pki["client"])
    with exporter_with(web, certless) as (url, proc):
        assert not refused(url, certless)
        strict = yaml.safe_load(web.read_text())
        strict["tls_server_config"].update(
            client_ca_file="ca.pem", client_auth_type="RequireAndVerifyClientCert"
        )
        replace_file(web, yaml.safe_dump(strict))
        wait_until(lambda: refused(url, certless), timeout=10, what="mTLS after the change")
        assert not refused(url, trusted)
        # a broken file is refused (logged) and the strict one keeps serving
        replace_file(web, "tls_server_config: {cert_fiel: server.pem}\n")
        time.sleep(1.5)  # more than the once-a-second look at the file
        assert refused(url, certless) and not refused(url, trusted)
        # SIGHUP re-reads it too: back to the first file
        web.write_text(yaml.safe_dump({**strict, "tls_server_config": {
            "cert_file": "server.pem", "key_file": "server-key.pem"}}))  # fmt: skip
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: not refused(url, certless), timeout=10, what="NoClientCert again")
    log = (tmp_path / "exporter.log").read_text()
    assert "tls_server_config.cert_fiel: unknown key; did you mean 'cert_file'" in log


def test_a_rotated_certificate_is_served_to_new_connections(tmp_path, pki):
    web = toolkit_file(tmp_path)
    with exporter_with(web, client_context(pki)) as (url, _):
        port = int(url.rsplit(":", 1)[1])

        def served_serial() -> str:
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    return tls.getpeercert()["serialNumber"]

        first = served_serial()
        new_cert, new_key = pki["ca"].issue("server2", client=False)
        data = yaml.safe_load(web.read_text())
        data["tls_server_config"].update(cert_file=new_cert.name, key_file=new_key.name)
        replace_file(web, yaml.safe_dump(data))
        wait_until(lambda: served_serial() != first, timeout=10, what="the new certificate")


@pytest.mark.parametrize(
    ("tls", "problem"),
    [
        ({"cert_fiel": "server.pem"}, "tls_server_config.cert_fiel: unknown key; did you mean 'cert_file'"),
        ({"client_auth_type": "RequireAnyClientCert"}, "tls_server_config.client_auth_type: RequireAnyClientCert accepts client certificates without verifying them"),
        ({"client_auth_type": "Sometimes"}, "tls_server_config.client_auth_type: must be one of"),
        ({"client_auth_type": "RequireAndVerifyClientCert"}, "tls_server_config.client_ca_file: required by RequireAndVerifyClientCert"),
        ({"min_version": "TLS13", "max_version": "TLS12"}, "tls_server_config.min_version: TLS13 is above max_version"),
        ({"min_version": "SSL3"}, "tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13"),
        ({"cipher_suites": ["TLS_FAKE"]}, "tls_server_config.cipher_suites: [0] 'TLS_FAKE' is not a Go cipher suite name"),
        ({"client_allowed_sans": ["a"]}, "tls_server_config.client_allowed_sans: is a toolkit setting afirgen-exporter cannot honour"),
        ({"key_file": "ca.pem"}, "tls_server_config.key_file:"),
        ({"cert_file": "missing.pem"}, "tls_server_config.cert_file: file"),
    ],
)  # fmt: skip
def test_bad_tls_server_config_names_the_key(tmp_path, pki, tls, problem):
    web = toolkit_file(tmp_path, **tls)
    with pytest.raises(ConfigError) as info:
        load_web_config(web)
    assert problem in str(info.value)
    assert str(info.value).startswith(f"{web}: ")


def test_other_bad_keys_name_the_key(tmp_path):
    path = tmp_path / "web.yml"
    cases = {
        "http_server_config: {headers: {Server: evil}}": "http_server_config.headers: 'Server' cannot be set",
        "http_server_config: {headers: {X-Content-Type-Options: sniff}}": "X-Content-Type-Options: must be one of nosniff",
        "basic_auth_users: {prom: plain}": "basic_auth_users.prom: not a bcrypt hash",
        "basic_auth_users: {'a:b': $2b$04$dwSwAsdZwPLi68sGTrg9pugTsiWxBzWLc5C29l8F60Fm6tcveWoEC}": "basic_auth_users: user name 'a:b' contains ':'",
        "rate_limits: {}": "rate_limits: unknown key",
    }  # fmt: skip
    for text, problem in cases.items():
        path.write_text(text + "\n")
        with pytest.raises(ConfigError) as info:
            load_web_config(path)
        assert problem in str(info.value), text


def test_check_config_validates_the_web_config_and_refuses_both_places(tmp_path, pki):
    web = toolkit_file(tmp_path)
    exporter_yml = tmp_path / "exporter.yml"
    exporter_yml.write_text("scrape: {default_timeout_seconds: 5}\n")
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "exporter", "check-config", str(exporter_yml), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    good = run("--web.config.file", str(web))
    assert good.returncode == 0, good.stderr
    assert "TLS TLS12-TLS13, NoClientCert; 1 basic auth users" in good.stdout
    hashed = yaml.safe_load(web.read_text())["basic_auth_users"]["prom"]
    exporter_yml.write_text(yaml.safe_dump({"web": {"basic_auth_users": {"prom": hashed}}}))
    both = run("--web.config.file", str(web))
    assert both.returncode == 2
    assert "web.basic_auth_users: users are also set by" in both.stderr
    web.write_text("tls_server_config: {cert_file: nope.pem}\n")
    bad = run("--web.config.file", str(web))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "tls_server_config.key_file: required key is missing" in bad.stderr


def test_node_exporter_takes_the_same_file(tmp_path, pki):
    """The file is the toolkit's own format: the Go peer serves with it as well."""
    node = require_binary("prometheus-node-exporter")
    web = toolkit_file(
        tmp_path, client_ca_file="ca.pem", client_auth_type="RequireAndVerifyClientCert"
    )
    port = free_port()
    args = [
        node,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.config.file={web}",
        "--collector.disable-defaults",
        "--collector.loadavg",
    ]
    trusted = client_context(pki, pki["client"])
    with started_process(
        args,
        ready=lambda: (
            httpx.get(
                f"https://127.0.0.1:{port}/metrics", verify=trusted, auth=("prom", PASSWORD)
            ).status_code
            == 200
        ),
        what="node_exporter with the same web config",
        timeout=20,
        stop_timeout=10,
    ):
        assert refused(f"https://127.0.0.1:{port}", client_context(pki))


def test_sections_left_empty_load_as_the_toolkit_reads_them(tmp_path):
    """Go's YAML reads `basic_auth_users:` with every user commented out as no users: the
    same file must not be refused here."""
    path = tmp_path / "web.yml"
    path.write_text(
        "basic_auth_users:\n"
        "  # prom: $2b$10$...\n"
        "http_server_config:\n"
        "  headers:\n"
        "tls_server_config:\n"
    )
    web = load_web_config(path)
    assert dict(web.basic_auth_users) == {}
    assert dict(web.http_server_config.headers) == {}
    assert web.http_server_config.http2 is True
    assert web.tls_server_config is None
