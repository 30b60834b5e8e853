"""collectors.sql.families: the per-table budget builds its samples directly; they must be
exactly what prometheus_client's own `add_metric` builds, kept and folded tables alike."""

from __future__ import annotations

from collectors.base import Deadline, ScrapeContext
from collectors.specs import FamilySet
from collectors.sql import families as common
from collectors.sql.families import OTHER, fold_tables
from collectors.sql.postgresql import TABLE_STATS

STATS = (*TABLE_STATS, common.SIZE_STAT)


def table_rows(count: int) -> dict[str, dict[str, float | None]]:
    """`count` tables with distinct activity; the last has never been vacuumed or sized."""
    rows: dict[str, dict[str, float | None]] = {}
    for i in range(count):
        values: dict[str, float | None] = {
            stat.column: float(i * 10 + n) for n, stat in enumerate(STATS)
        }
        rows[f"t{i:02d}"] = values
    rows[f"t{count - 1:02d}"].update(vacuum_age=None, size=None)
    rows[OTHER] = {stat.column: 1.0 for stat in STATS}  # a table really named `other`
    return rows


def by_the_library(rows, limit: int) -> list:
    """The same families through FamilySet.add (prometheus_client's add_metric)."""
    ctx = ScrapeContext(Deadline.after(10))
    weights = {t: sum(v.get(c) or 0.0 for c in common.ACTIVITY_COLUMNS) for t, v in rows.items()}
    kept = ctx.keep_top({t: w for t, w in weights.items() if t != OTHER}, limit)
    out = FamilySet("main")
    for stat in STATS:
        folded = []
        for table in sorted(rows):
            value = rows[table].get(stat.column)
            if value is None:
                continue
            if table in kept:
                out.add(stat.spec, value, table)
            else:
                folded.append(value)
        if folded:
            out.add(stat.spec, stat.fold(folded), OTHER)
    return out.families()


def test_fold_tables_builds_what_add_metric_builds():
    rows = table_rows(12)
    for limit in (50, 5):  # every table kept; most folded under `other`
        ctx = ScrapeContext(Deadline.after(10))
        out = FamilySet("main")
        fold_tables(ctx, rows, STATS, out, limit)
        ours, theirs = out.families(), by_the_library(rows, limit)
        assert [(f.name, f.type, f.documentation, f.unit) for f in ours] == [
            (f.name, f.type, f.documentation, f.unit) for f in theirs
        ]
        assert [f.samples for f in ours] == [f.samples for f in theirs]
        assert all(type(f) is type(g) for f, g in zip(ours, theirs, strict=True))
    assert ctx.series_dropped == 12 - 5  # `other` itself is never ranked
