"""Reading the files a config names (the config itself, secret files) without hanging or
running out of memory.

`open()` on a FIFO blocks until a writer appears, and `read()` of `/dev/zero` never ends: a
config pointing `password_file` at either hung `check-config` and ate 2 GB on reload. So a
file is opened with O_NONBLOCK, must be a regular file (fstat on the open descriptor, so it
cannot be swapped in between), and is read up to a size cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from collectors.checks import check_path, shown_path

#: A secret file (password, token) is at most this large.
SECRET_FILE_LIMIT = 64 * 1024
#: A config file is at most this large (10,000 targets take about 1 MiB).
CONFIG_FILE_LIMIT = 64 * 1024 * 1024


def read_regular_file(path: Path, limit: int) -> bytes:
    """The content of `path`; ValueError (a message naming the file) for anything else than a
    regular file of at most `limit` bytes."""
    name = shown_path(str(path))
    check_path(str(path))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ValueError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{name} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{name} is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            raise ValueError(f"{name} is larger than {limit} bytes")
    except OSError as exc:
        raise ValueError(f"cannot read {name}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def decode_text(content: bytes, name: str) -> str:
    """UTF-8 text; ValueError saying where it is not."""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start + 1} is 0x{content[exc.start]:02x}"
        raise ValueError(f"{shown_path(name)} is not UTF-8 text ({where})") from None
