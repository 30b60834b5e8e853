"""A scrape's families encoded in chunks (a unit's as soon as it is collected), and their join.

A chunk is an encoder's own lines for some families of distinct names, with where each family's
lines are. Chunks whose names are all distinct are joined as written. Families of one name in
several chunks (several targets of one collector) are joined as exporter.families.
merge_same_name then the encoder would write them: the first one's head, the sample lines of
every later one of the first one's type (another type is left out). A family whose lines cannot
be joined that way (text's OpenMetrics-only families written after it, a family the library
wrote whole) is merged and written again by the encoder's `rewrite`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from operator import itemgetter

from prometheus_client.metrics_core import Metric

from exporter.families import merge_same_name

#: (family name, family, start and end of its lines (its head first), whether its lines must
#: be written again to be merged with another chunk's)
Entry = tuple[str, Metric, int, int, bool]


class Chunk:
    """Some families of a scrape, encoded: `lines`, and `index` (an Entry per family)."""

    __slots__ = ("lines", "index")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.index: list[Entry] = []


def joined_lines(chunks: Sequence[Chunk], rewrite: Callable[[Metric], str]) -> str:
    """The chunks' text, in order, with one family per name (see the module's docstring)."""
    if not _repeated_names(chunks):  # each chunk as it was written
        return "".join(chain.from_iterable([chunk.lines for chunk in chunks]))
    output: list[str] = []
    for group in _same_name(chunks):
        if len(group) > 1 and any(entry[4] for _, entry in group):
            output.append(rewrite(merge_same_name([entry[1] for _, entry in group])[0]))
            continue
        first, (_, _, start, end, _) = group[0]
        output.extend(first.lines[start:end])
        for chunk, (_, _, start, end, _) in group[1:]:
            output.extend(chunk.lines[start + 1 : end])  # its samples, not its head
    return "".join(output)


def _same_name(chunks: Sequence[Chunk]) -> Iterable[list[tuple[Chunk, Entry]]]:
    """Each name's (chunk, entry) in the order first seen, of the first one's type."""
    groups: dict[str, list[tuple[Chunk, Entry]]] = {}
    for chunk in chunks:
        for entry in chunk.index:
            group = groups.get(entry[0])
            if group is None:
                groups[entry[0]] = [(chunk, entry)]
            elif group[0][1][1].type == entry[1].type:
                group.append((chunk, entry))
    return groups.values()


def _repeated_names(chunks: Sequence[Chunk]) -> bool:
    """Whether a family name is in more than one chunk (each chunk's are distinct)."""
    entries = sum(len(chunk.index) for chunk in chunks)
    names = set(map(itemgetter(0), chain.from_iterable([chunk.index for chunk in chunks])))
    return len(names) < entries
