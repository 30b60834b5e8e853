"""The dashboards, one module per board, in the order the overview's menu lists them."""

from __future__ import annotations

from grafana.boards import (
    api,
    cache,
    database,
    exporter,
    host,
    model_servers,
    overview,
    task_queue,
)
from grafana.panels import Board

BOARDS: tuple[Board, ...] = (
    overview.BOARD,
    exporter.BOARD,
    database.BOARD,
    cache.BOARD,
    model_servers.BOARD,
    task_queue.BOARD,
    host.BOARD,
    api.BOARD,
)
