"""Collectors: one module per source, each written against prometheus_client's collector API."""
