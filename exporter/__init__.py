"""afirgen-exporter: a pull-style Prometheus exporter for a Python ML backend."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("afirgen-exporter")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.1.0"

__all__ = ["__version__"]
