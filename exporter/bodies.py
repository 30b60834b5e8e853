"""A scrape's body from its families: encoded whole, or unit by unit as each is collected.

A /metrics scrape of several units encodes each unit's families (text, OpenMetrics) in the done
callback of its run, so in its collection's thread, while slower sources are still waited
for; the body then encodes only the last ones and the self-metrics, and joins the chunks
(exporter.chunks): the same bytes as encoding all the families at the end, but where one unit
yields a name twice with two types (merged within the unit first). Protobuf, /probe and a
single unit (nothing to overlap) are encoded whole.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from collectors.base import CollectionResult
from exporter.chunks import Chunk
from exporter.exposition import Format, compress, encode, encoded_chunk, joined
from exporter.families import merge_same_name, with_prefix


def samples(families: Iterable[Metric]) -> int:
    return sum(len(family.samples) for family in families)


@dataclass
class Bodies:
    """The engine's encoding settings, and the size of its last /metrics body."""

    namespace: str = ""
    created_series: bool = True
    gzip_level: int = 1
    #: samples of the last joined body (whether the encoders keep its series' lines)
    _last_samples: int = field(default=0, init=False)

    def named(self, families: list[Metric]) -> list[Metric]:
        """`families` under the namespace, if one is set."""
        if not self.namespace:
            return families
        return with_prefix(families, self.namespace + "_")

    def whole(self, families: list[Metric], fmt: Format, gzipped: bool) -> bytes:
        """The body of families already merged and named."""
        body = encode(families, fmt, created=self.created_series)
        return compress(body, self.gzip_level) if gzipped else body

    def encode_early(self, fmt: Format, run: concurrent.futures.Future[CollectionResult]) -> None:
        """Encode a unit's families as soon as it is collected (a run's done callback), while
        the scrape still waits for slower sources. A failure here leaves the encoding to the
        body, which reports it as before."""
        if run.cancelled() or run.exception() is not None:
            return
        result = run.result()
        key = self._key(fmt)
        if key in result.encodings:  # another scrape asked for the same
            return
        try:
            chunk = self._chunk(result.families, fmt)
        except Exception:  # noqa: BLE001 - encoded (and its error raised) in the body
            return
        result.encodings.setdefault(key, chunk)

    def joined(
        self, results: Sequence[CollectionResult], tail: list[Metric], fmt: Format, gzipped: bool
    ) -> bytes:
        """The body of a /metrics scrape: each unit's chunk (encoded early, or now), then the
        chunk of `tail` (the self-metrics), joined."""
        key = self._key(fmt)
        chunks = []
        for result in results:
            early = result.encodings.get(key)
            chunks.append(early if early is not None else self._chunk(result.families, fmt))
        chunks.append(self._chunk(tail, fmt))
        self._last_samples = sum(samples(result.families) for result in results) + samples(tail)
        body = joined(chunks, fmt)
        return compress(body, self.gzip_level) if gzipped else body

    def _key(self, fmt: Format) -> tuple[object, ...]:
        return (fmt.cache_key, self.namespace, self.created_series)

    def _chunk(self, families: Sequence[Metric], fmt: Format) -> Chunk:
        chunk = encoded_chunk(
            self.named(merge_same_name(families)),
            fmt,
            created=self.created_series,
            scrape_samples=self._last_samples,
        )
        assert chunk is not None  # not protobuf
        return chunk
