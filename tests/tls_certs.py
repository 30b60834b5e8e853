"""Throwaway certificate authorities made with openssl, for the TLS and mTLS tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import require_binary


class Authority:
    """A throwaway CA in `directory` that issues server and client certificates."""

    def __init__(self, directory: Path, name: str, *, made: bool = False) -> None:
        """A new CA; with `made`, the one already in `directory` (copied there)."""
        self.openssl = require_binary("openssl")
        self.directory = directory
        self.name = name
        self.cert, self.key = directory / f"{name}.pem", directory / f"{name}-key.pem"
        if made:
            return
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                  f"/CN={name}", "-keyout", self.key, "-out", self.cert)  # fmt: skip

    def _run(self, *args: object) -> None:
        subprocess.run([self.openssl, *map(str, args)], check=True, capture_output=True)

    def issue(self, name: str, *, client: bool) -> tuple[Path, Path]:
        cert, key = self.directory / f"{name}.pem", self.directory / f"{name}-key.pem"
        csr, ext = self.directory / f"{name}.csr", self.directory / f"{name}.ext"
        self._run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                  "-keyout", key, "-out", csr)  # fmt: skip
        usage = "clientAuth" if client else "serverAuth"
        ext.write_text(f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
        self._run("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                  "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", cert)  # fmt: skip
        return cert, key


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for the name `redis.test` (not the IP)."""
    openssl = require_binary("openssl")
    files = {name: directory / f"{name}.pem" for name in ("ca", "ca-key", "server", "server-key")}
    run = lambda *args: subprocess.run([openssl, *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", files["ca-key"], "-out", files["ca"])  # fmt: skip
    csr = directory / "server.csr"
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=redis.test",
        "-keyout", files["server-key"], "-out", csr)  # fmt: skip
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=DNS:redis.test\n")
    run("x509", "-req", "-in", csr, "-CA", files["ca"], "-CAkey", files["ca-key"],
        "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", files["server"])  # fmt: skip
    return files
