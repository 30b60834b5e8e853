"""The landing page: what each collector is, whether it answered and why not.

Everything shown is escaped, and only bounded reasons and collector notes appear: never an
error message, a URL or a credential.
"""

from __future__ import annotations

import datetime
import re
from html import escape

from collectors.catalog import BY_NAME
from exporter import __version__
from exporter.scrape import Unit, UnitStatus
from exporter.state import Exporter


def _summary(text: str) -> str:
    """A catalog summary (Markdown for the README: `code` spans) as HTML."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", escape(text))


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _row(unit: Unit, status: UnitStatus) -> str:
    if status.success is None:
        state = "not scraped yet"
    elif status.success:
        state = "ok"
    else:
        state = f"down ({status.reason})"
    duration = "" if status.duration_seconds is None else f"{status.duration_seconds * 1000:.1f} ms"
    served = "/metrics and /probe" if unit.in_metrics else "/probe only"
    notes = "<br>".join(escape(n) for n in status.notes)
    cells = [
        escape(unit.collector_name),
        escape(unit.target),
        served,
        escape(state),
        _when(status.last_success),
        duration,
        notes,
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render_landing(exporter: Exporter, root_path: str = "") -> str:
    loaded = exporter.loaded
    base = escape(root_path.rstrip("/"))
    rows = "\n".join(
        _row(unit, loaded.engine.status.get(unit.key, UnitStatus())) for unit in loaded.units
    )
    catalog = "\n".join(
        f"<tr><td>{escape(spec.name)}</td>"
        f"<td>{'on' if loaded.config.enabled(spec.name) else 'off'}</td>"
        f"<td>{_summary(spec.summary)}</td></tr>"
        for spec in BY_NAME.values()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>afirgen-exporter</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .6em; }}
th {{ background: #f3f3f3; text-align: left; }}
</style></head>
<body>
<h1>afirgen-exporter {escape(__version__)}</h1>
<p><a href="{base}/metrics">Metrics</a> · <a href="{base}/sd">Targets (http_sd)</a> ·
<a href="{base}/-/healthy">Health</a> · <a href="{base}/-/ready">Readiness</a></p>
<h2>Targets</h2>
<table><tr><th>Collector</th><th>Target</th><th>Served by</th><th>Last scrape</th>
<th>Last success</th><th>Duration</th><th>Notes</th></tr>
{rows}
</table>
<h2>Collectors</h2>
<table><tr><th>Name</th><th>Enabled</th><th>What it reads</th></tr>
{catalog}
</table>
<p>Probe one target: <code>{base}/probe?target=NAME</code>.
Select collectors: <code>{base}/metrics?collect[]=NAME</code> or <code>exclude[]=NAME</code>.</p>
</body></html>
"""
