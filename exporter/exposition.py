"""Choosing and producing the exposition format: text, OpenMetrics or protobuf, maybe gzipped.

Negotiation follows Prometheus's own (common/expfmt): the `Accept` clauses are taken by q
value, highest first (a more specific media type first among equal q); the first one we can
serve wins: protobuf (`application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
encoding=delimited`), OpenMetrics, text (`text/plain` 0.0.4 or 1.0.0, `text/*`, `*/*`). With
`prefer_text` on, a client that accepts both OpenMetrics and text gets text (cheaper; what the
Go exporters answer). Prometheus with native histograms enabled asks for protobuf first, and
gets it. An `escaping=` parameter of the chosen clause is honoured and echoed in
`Content-Type` (exporter/name_escaping.py); without one the output is as before.

The text format is encoded by `exporter.text_format`, protobuf by `exporter.protobuf_format`,
OpenMetrics by `exporter.openmetrics_format` (each byte-for-byte the library's own output).
gzip runs at level 1 by default (`scrape.gzip_level`): a fifth of level 6's CPU for bodies ~15%
larger; prometheus_client's level 9 costs ~75x level 1's. (Its strategies Z_RLE and
Z_HUFFMAN_ONLY measured slower than level 1 here, for bodies three times as large.)
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om_exposition

from exporter import protobuf_format
from exporter.chunks import Chunk
from exporter.name_escaping import ALLOW_UTF8, DOTS, SCHEMES, UNDERSCORES, VALUES, escape_families
from exporter.openmetrics_format import (
    generate_openmetrics,
    joined_openmetrics,
    openmetrics_chunk,
)
from exporter.text_format import generate_text, joined_text, text_chunk

PROTOBUF_TYPE = "application/vnd.google.protobuf"
PROTOBUF_PROTO = "io.prometheus.client.MetricFamily"


class Encoding(Enum):
    TEXT = "text"
    OPENMETRICS = "openmetrics"
    PROTOBUF = "protobuf"


@dataclass(frozen=True)
class Format:
    """What to answer: the format, its text version and the name escaping asked for."""

    encoding: Encoding
    #: `escaping=` of the chosen Accept clause (one of name_escaping.SCHEMES), or None.
    escaping: str | None = None
    #: Text format version to announce: 0.0.4, or 1.0.0 when the client asked for it.
    text_version: str = "0.0.4"

    TEXT: ClassVar[Format]
    OPENMETRICS: ClassVar[Format]
    PROTOBUF: ClassVar[Format]

    @property
    def cache_key(self) -> tuple[Encoding, str | None]:
        """What the encoded bytes depend on (the text version only changes Content-Type)."""
        return (self.encoding, self.escaping)

    @property
    def name(self) -> str:
        return self.encoding.name

    @property
    def content_type(self) -> str:
        if self.encoding is Encoding.TEXT:
            base = f"text/plain; version={self.text_version}; charset=utf-8"
        elif self.encoding is Encoding.OPENMETRICS:
            base = om_exposition.CONTENT_TYPE_LATEST
        else:
            base = protobuf_format.CONTENT_TYPE
        return f"{base}; escaping={self.escaping}" if self.escaping else base


Format.TEXT = Format(Encoding.TEXT)
Format.OPENMETRICS = Format(Encoding.OPENMETRICS)
Format.PROTOBUF = Format(Encoding.PROTOBUF)


@dataclass(frozen=True)
class _Clause:
    media: str
    params: dict[str, str]
    q: float
    position: int

    @property
    def specificity(self) -> int:
        kind, _, sub = self.media.partition("/")
        return 0 if kind == "*" else 1 if sub == "*" else 2


def _clauses(header: str) -> list[_Clause]:
    """Accept clauses, best first: higher q, then more specific, then as written."""
    found = []
    for position, part in enumerate(header.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        params: dict[str, str] = {}
        for param in fields[1:]:
            key, _, value = param.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0.0:
            found.append(_Clause(media, params, q, position))
    return sorted(found, key=lambda c: (-c.q, -c.specificity, c.position))


def _served(clause: _Clause) -> Format | None:
    """The format a clause asks for, if we can serve it."""
    media, params = clause.media, clause.params
    escaping = params.get("escaping")
    if escaping not in SCHEMES:
        escaping = None  # unknown schemes are ignored, as Prometheus does
    if media == PROTOBUF_TYPE:
        if params.get("proto") == PROTOBUF_PROTO and params.get("encoding") == "delimited":
            return Format(Encoding.PROTOBUF, escaping)
        return None
    if media == "application/openmetrics-text":
        if params.get("version", "1.0.0") in ("0.0.1", "1.0.0"):
            return Format(Encoding.OPENMETRICS, escaping)
        return None
    if media == "text/plain":
        version = params.get("version", "0.0.4")
        if version in ("0.0.4", "1.0.0"):
            return Format(Encoding.TEXT, escaping, version)
        return None
    if media in ("text/*", "*/*"):
        return Format(Encoding.TEXT, escaping)
    return None


#: Accept / Accept-Encoding headers whose answer is remembered: a scraper sends the same
#: header every time, and parsing it cost more than the rest of an empty scrape's handling.
#: Cleared when full, so odd headers from many clients cannot grow it.
_CACHE_LIMIT = 64
_negotiated: dict[tuple[str, bool], Format] = {}
_gzip_wanted: dict[str, bool] = {}


def negotiate(accept: str | None, *, prefer_text: bool = True) -> Format:
    """The format to answer in: the best Accept clause we serve; text when none matches."""
    if not accept:
        return Format.TEXT
    key = (accept, prefer_text)
    fmt = _negotiated.get(key)
    if fmt is None:
        if len(_negotiated) >= _CACHE_LIMIT:
            _negotiated.clear()
        fmt = _negotiated[key] = _negotiate(accept, prefer_text)
    return fmt


def _negotiate(accept: str, prefer_text: bool) -> Format:
    offers = [(clause, fmt) for clause in _clauses(accept) if (fmt := _served(clause))]
    if not offers:
        return Format.TEXT
    best = offers[0][1]
    if best.encoding is Encoding.OPENMETRICS and prefer_text:
        text = next((fmt for _, fmt in offers if fmt.encoding is Encoding.TEXT), None)
        if text is not None:
            return text
    return best


def wants_gzip(accept_encoding: str | None) -> bool:
    """gzip when `Accept-Encoding` gives it (or, failing that, `*`) a q above 0. A q that
    does not parse is ignored, as if the coding were listed plainly."""
    if not accept_encoding:
        return False
    wanted = _gzip_wanted.get(accept_encoding)
    if wanted is None:
        if len(_gzip_wanted) >= _CACHE_LIMIT:
            _gzip_wanted.clear()
        wanted = _gzip_wanted[accept_encoding] = _wants_gzip(accept_encoding)
    return wanted


def _wants_gzip(accept_encoding: str) -> bool:
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        fields = [f.strip() for f in part.split(";")]
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 1.0
        weights.setdefault(fields[0].lower(), q)
    return weights.get("gzip", weights.get("*", 0.0)) > 0.0


def without_created(families: Iterable[Metric]) -> list[Metric]:
    """Families with their `_created` samples left out (`scrape.created_series: false`)."""
    out = []
    for family in families:
        created = family.name + "_created"
        if any(s.name == created for s in family.samples):
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            copy.samples = [s for s in family.samples if s.name != created]
            family = copy
        out.append(family)
    return out


def encode(families: Iterable[Metric], fmt: Format, *, created: bool = True) -> bytes:
    """The body for `fmt`; `created=False` leaves out `_created` series (and timestamps)."""
    if not created:
        families = without_created(families)
    escaping = fmt.escaping or UNDERSCORES  # no scheme asked: legacy names, as before
    if fmt.encoding is Encoding.PROTOBUF:
        return protobuf_format.generate_protobuf(families, escaping)
    if escaping in (DOTS, VALUES):
        families = escape_families(families, escaping)
    if fmt.encoding is Encoding.OPENMETRICS:
        return generate_openmetrics(families, _library_escaping(escaping))
    return generate_text(families, _library_escaping(escaping))


def encoded_chunk(
    families: Iterable[Metric],
    fmt: Format,
    *,
    created: bool = True,
    scrape_samples: int | None = None,
) -> Chunk | None:
    """`families` (of distinct names) encoded for `fmt`, so that a scrape's families can be
    encoded as each source answers and joined once all have (None for protobuf, whose
    encoder takes a scrape whole). `scrape_samples`: the scrape's size when this is a part
    of it (see text_format.text_chunk)."""
    if fmt.encoding is Encoding.PROTOBUF:
        return None
    if not created:
        families = without_created(families)
    escaping = fmt.escaping or UNDERSCORES  # no scheme asked: legacy names, as before
    if escaping in (DOTS, VALUES):
        families = escape_families(families, escaping)
    names = _library_escaping(escaping)
    if fmt.encoding is Encoding.OPENMETRICS:
        return openmetrics_chunk(families, names, scrape_samples=scrape_samples)
    return text_chunk(families, names, scrape_samples=scrape_samples)


def joined(chunks: Sequence[Chunk], fmt: Format) -> bytes:
    """The body of a scrape from the chunks of all its families, in order, as `encode` would
    write the families merged by name (exporter.families.merge_same_name)."""
    names = _library_escaping(fmt.escaping or UNDERSCORES)
    if fmt.encoding is Encoding.OPENMETRICS:
        return joined_openmetrics(chunks, names)
    return joined_text(chunks, names)


def _library_escaping(escaping: str) -> str:
    """prometheus_client's encoders quote UTF-8 names, or replace their invalid characters."""
    return om_exposition.ALLOWUTF8 if escaping == ALLOW_UTF8 else om_exposition.UNDERSCORES


def compress(body: bytes, level: int) -> bytes:
    """gzip (mtime 0), with deflate's window and hash no larger than the body needs: what a
    full-size stream allocates (~260 KiB) costs more than compressing a small body. The output
    is the same as with the full window (no match can reach further back than the body)."""
    bits = max(9, min(15, (len(body) + _LOOKAHEAD).bit_length()))
    stream = zlib.compressobj(level, zlib.DEFLATED, 16 + bits, max(1, min(8, bits - 7)))
    return stream.compress(body) + stream.flush()


#: deflate keeps this many bytes of lookahead inside its window
_LOOKAHEAD = 262
