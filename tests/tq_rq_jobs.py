"""Jobs for the RQ tests: real `rq worker` processes import them by dotted name."""

from __future__ import annotations


def ok(x: int) -> int:
    return x * 2


def boom() -> None:
    raise RuntimeError("this job fails on purpose")


def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds
