"""Prometheus rules as code: `python -m alerts.build` writes the rule files beside it."""
