"""afirgen-exporter: a pull-style Prometheus exporter for a Python ML backend.

`exporter.embed(app, ...)` mounts it inside a Starlette/FastAPI app; it is imported on first
use so that `import exporter` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

#: The one place the version is written: pyproject.toml reads it from here. (Asking
#: `importlib.metadata` instead imports email, zipfile, csv and shutil: 2.7 MiB of RSS in an
#: exporter whose collectors do not need them.)
__version__ = "0.1.0"

if TYPE_CHECKING:
    from exporter.embedded import embed

__all__ = ["__version__", "embed"]


def __getattr__(name: str) -> Any:
    if name == "embed":
        from exporter.embedded import embed

        return embed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
