"""Grafana dashboards as code: `python -m grafana.build` writes the JSON beside it."""
