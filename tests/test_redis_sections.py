"""INFO sections on Redis >= 7: once a connection's server has answered LATENCY HISTOGRAM, the
collector asks for `INFO default commandstats` (INFO ALL but latencystats). The families are the
same as from INFO ALL; a server that refuses the sections, or answers without commandstats, is
read with INFO ALL again in the same scrape and from then on."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.base import Deadline
from collectors.redis import Target, build
from collectors.redis.collector import INFO_SECTIONS
from tests.redis_server import bulk, error, like_redis, private_redis, resp_server
from tests.support import exposed_samples

ALL = (Path(__file__).parent / "data" / "info_redis7_master.txt").read_bytes()


def without(info: bytes, section: bytes) -> bytes:
    """`info` without one section (its header and lines, up to the blank line after it)."""
    head, _, rest = info.partition(b"# " + section + b"\r\n")
    return head + rest.partition(b"\r\n\r\n")[2]


#: What Redis 7 sends for INFO default commandstats: INFO ALL but latencystats.
SECTIONS = without(ALL, b"Latencystats")
#: A LATENCY HISTOGRAM reply (RESP2): one command.
HISTOGRAM = b"*2\r\n$3\r\nget\r\n*4\r\n$5\r\ncalls\r\n:3\r\n$14\r\nhistogram_usec\r\n*4\r\n:1\r\n:1\r\n:4\r\n:3\r\n"


def redis7(sections: bytes):
    """Answers as Redis 7 does, INFO with several sections answered with `sections`."""

    def info(command: list[bytes]) -> bytes:
        if command[1:] == [b"ALL"]:
            return bulk(ALL)
        assert command[1:] == [s.encode() for s in INFO_SECTIONS]
        return sections

    normal = like_redis(ALL, LATENCY=HISTOGRAM)
    return lambda command: info(command) if command[0] == b"INFO" else normal(command)


def scrapes(answer, runs: int = 3):
    """The INFO arguments each run sent, and each run's exposed samples."""
    with resp_server(answer) as server:
        collector = build(None, Target(name="cache", url=server.url))
        served = []
        for _ in range(runs):
            result = collector.run(Deadline.after(5))
            assert result.success, result.reason
            served.append(exposed_samples(result.families))
        collector.close()
        sent = [command[1:] for command in server.commands if command[0] == b"INFO"]
    return sent, served


def test_latencystats_is_the_only_difference():
    assert b"latency_percentiles_usec_" in ALL and b"latency_percentiles_usec_" not in SECTIONS
    assert SECTIONS.count(b"\r\n# ") == ALL.count(b"\r\n# ") - 1


@pytest.mark.parametrize(
    "answer, asked",
    [
        (bulk(SECTIONS), [["ALL"], [*INFO_SECTIONS], [*INFO_SECTIONS]]),
        # refused (a server that takes one section), or commandstats left out: INFO ALL again
        (error(b"ERR syntax error"), [["ALL"], [*INFO_SECTIONS], ["ALL"], ["ALL"]]),
        (bulk(without(SECTIONS, b"Commandstats")), [["ALL"], [*INFO_SECTIONS], ["ALL"], ["ALL"]]),
    ],
    ids=["taken", "refused", "ignored"],
)
def test_sections_serve_what_info_all_serves(answer, asked):
    sent, served = scrapes(redis7(answer))
    assert sent == [[a.encode() for a in args] for args in asked]
    assert served[0] == served[1] == served[2]
    assert served[0][("redis_commands_total", frozenset({("cache", "cache"), ("command", "get")}))]


def test_redis7_serves_the_same_series_with_sections(tmp_path: Path):
    """A real Redis 7: the first scrape (INFO ALL) and the next ones (sections) serve the same
    families and commands (the second adds INFO's and LATENCY's, first run by the first scrape), and
    INFO's own count goes up by one a scrape."""
    with private_redis(tmp_path) as server:
        client = server.client()
        client.set("k", 1)
        collector = build(None, Target(name="cache", url=server.url))
        series = []
        for _ in range(3):
            result = collector.run(Deadline.after(5))
            assert result.success, result.reason
            series.append(exposed_samples(result.families))
        collector.close()
        assert collector._sections is not False
    names = [{name for name, _ in s} - {"cache_hit_rate"} for s in series]
    assert names[0] == names[1] == names[2]
    commands = [
        {dict(labels)["command"] for name, labels in s if name == "redis_commands_total"}
        for s in series
    ]
    assert {"set", "hello"} <= commands[0]
    assert commands[0] | {"info", "latency|histogram"} == commands[1] == commands[2]
    info = ("redis_commands_total", frozenset({("cache", "cache"), ("command", "info")}))
    assert series[2][info] - series[1][info] == 1
