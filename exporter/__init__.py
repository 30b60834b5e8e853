"""afirgen-exporter: a pull-style Prometheus exporter for a Python ML backend.

`exporter.embed(app, ...)` mounts it inside a Starlette/FastAPI app; it is imported on first
use so that `import exporter` stays cheap.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("afirgen-exporter")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.1.0"

if TYPE_CHECKING:
    from exporter.embedded import embed

__all__ = ["__version__", "embed"]


def __getattr__(name: str) -> Any:
    if name == "embed":
        from exporter.embedded import embed

        return embed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
