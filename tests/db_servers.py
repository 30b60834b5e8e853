"""Private PostgreSQL and MariaDB servers for tests that need server settings the shared ones
do not have (pg_stat_statements preloaded, performance_schema on).

Each runs from a fresh data directory on a free loopback port with its socket in that
directory, and is stopped by its PID (`support.started_process`) and its directory removed
when the context exits. The shared servers are never touched. PostgreSQL refuses to run as
root, so it runs as the `postgres` OS user from a directory that user owns (pytest's tmp_path
is private to root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy

from tests.support import free_port, require_binary, started_process, unavailable

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _can_connect(url: str) -> bool:
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        return True
    finally:
        engine.dispose()


@contextlib.contextmanager
def private_postgres(*settings: str) -> Iterator[str]:
    """A PostgreSQL 15 started with `-c` settings; yields a URL to its `postgres` database."""
    if not (PG_BIN / "initdb").exists():
        unavailable(f"PostgreSQL server binaries not found in {PG_BIN}")
    user = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="afx-db-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data = base / "data"
    port = free_port()
    subprocess.run(
        [
            PG_BIN / "initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    args = [
        PG_BIN / "postgres",
        "-D",
        data,
        "-p",
        str(port),
        "-k",
        str(base),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=30",
        "-c",
        "shared_buffers=16MB",
    ]
    for setting in settings:
        args += ["-c", setting]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        with started_process(
            args,
            ready=lambda: _can_connect(url),
            what="the private PostgreSQL to accept connections",
            log=base / "server.log",
            stop_timeout=20,
            stop_signal=signal.SIGINT,  # fast shutdown: SIGTERM waits for every client
            user=user,
        ):
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def private_mariadb(*options: str) -> Iterator[str]:
    """A MariaDB started with extra `--options`; yields a URL to its `test` database."""
    install = require_binary("mariadb-install-db")
    server = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
    if not Path(server).exists():
        unavailable("mariadbd is not installed")
    base = Path(tempfile.mkdtemp(prefix="afx-db-my-"))
    data = base / "data"
    port = free_port()
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    args = [
        server,
        "--no-defaults",
        f"--datadir={data}",
        "--user=root",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={base / 'sock'}",
        f"--pid-file={base / 'pid'}",
        f"--log-error={base / 'error.log'}",
        "--innodb-buffer-pool-size=16M",
        "--skip-log-bin",
        *options,
    ]
    admin = f"mysql+pymysql://root@127.0.0.1:{port}/mysql"
    try:
        with started_process(
            args,
            ready=lambda: _can_connect(admin),
            what="the private MariaDB to accept connections",
            stop_timeout=20,
        ):
            engine = sqlalchemy.create_engine(admin, poolclass=sqlalchemy.pool.NullPool)
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text("CREATE DATABASE IF NOT EXISTS test"))
            engine.dispose()
            yield f"mysql+pymysql://root@127.0.0.1:{port}/test"
    finally:
        shutil.rmtree(base, ignore_errors=True)
