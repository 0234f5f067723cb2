"""The status page at ``/``: one server-rendered HTML document with no external assets.

Everything shown comes from the collector's `Snapshot`; every value is escaped (table names,
statements and event payloads are data, not markup). The page reloads itself every
``REFRESH_S`` seconds; the layout is one column on a phone and a grid on a laptop.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape

from pokervod_db.cli.render import human_bytes
from pokervod_db.web.service import Snapshot

REFRESH_S = 10

_CSS = """
:root{--bg:#f5f6f8;--card:#fff;--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--ok:#12805c;
--warn:#b54708;--bad:#c01048;--bar:#3e63dd;--bar2:#9eb1ff;font-family:system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif}
@media (prefers-color-scheme:dark){:root{--bg:#101318;--card:#181c23;--fg:#e6e8ec;
--muted:#98a2b3;--line:#2a303b;--bar:#7c95ff;--bar2:#3a4a8c}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font-size:15px;
line-height:1.45}header{padding:1rem 1.25rem;display:flex;flex-wrap:wrap;gap:.5rem 1rem;
align-items:center;border-bottom:1px solid var(--line);background:var(--card)}
h1{font-size:1.15rem;margin:0}h2{font-size:1rem;margin:0 0 .6rem}
.meta{color:var(--muted);font-size:.85rem;overflow-wrap:anywhere}
main{display:grid;gap:1rem;padding:clamp(.5rem,2vw,1rem);grid-template-columns:repeat(auto-fit,minmax(min(100%,30rem),1fr))}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:clamp(.7rem,2vw,1rem);
min-width:0}section.wide{grid-column:1/-1}
table{border-collapse:collapse;width:100%;font-size:.875rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;white-space:nowrap}td.n,th.n{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}.scroll{overflow-x:auto}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.8rem;overflow-wrap:anywhere}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:999px;font-size:.75rem;
font-weight:700;color:#fff;white-space:nowrap}.ok{background:var(--ok)}.warn{background:var(--warn)}
.bad{background:var(--bad)}.none{color:var(--muted)}.bar{margin:0 0 .45rem}.lbl{display:flex;justify-content:space-between;gap:.5rem;
font-size:.85rem}.lbl .sub{color:var(--muted);white-space:nowrap}.bar svg{display:block;border-radius:3px}
svg .bg{fill:var(--line)}svg .heap{fill:var(--bar)}svg .idx{fill:var(--bar2)}.legend{color:var(--muted);font-size:.8rem}
.stmts tr.nums td{border-bottom:0;padding-bottom:0}.stmts th.n,.stmts td.n{text-align:left}
.sw{display:inline-block;width:.7rem;height:.7rem;border-radius:2px;vertical-align:middle}
"""


def _badge(
    ok: bool | None, *, critical: bool = True, labels: tuple[str, str] = ("OK", "FAIL")
) -> str:
    if ok is None:
        return '<span class="badge warn">?</span>'
    if ok:
        return f'<span class="badge ok">{labels[0]}</span>'
    return f'<span class="badge {"bad" if critical else "warn"}">{labels[1] if critical else "WARN"}</span>'


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def _empty(text: str) -> str:
    return f'<p class="none">{escape(text)}</p>'


def _health(snap: Snapshot) -> str:
    health = snap.health
    if health is None:
        return _empty("not checked yet")
    rows = "".join(
        f"<tr><td>{_badge(c.ok, critical=c.critical)}</td><td>{escape(c.name)}</td>"
        f"<td>{escape(c.detail)}</td></tr>"
        for c in health.checks
    )
    return f'<div class="scroll"><table><tr><th>state</th><th>check</th><th>detail</th></tr>{rows}</table></div>'


def table_chart(snap: Snapshot, *, limit: int = 15) -> str:
    """Horizontal bars of each table's size (heap and indexes stacked), largest first.

    One small inline SVG per bar, labels in HTML: the bars stretch with the card while the text
    keeps its size on a phone and on a laptop.
    """
    stats = snap.stats
    if stats is None or not stats.tables:
        return _empty("no table statistics (database unreachable or schema empty)")
    tables = sorted(stats.tables.values(), key=lambda t: t.total_bytes, reverse=True)[:limit]
    biggest = max(t.total_bytes for t in tables) or 1
    rows: list[str] = []
    for t in tables:
        heap = 100.0 * t.table_bytes / biggest
        index = 100.0 * t.index_bytes / biggest
        size = f"{human_bytes(t.total_bytes)} · {t.row_estimate:,} rows"
        rows.append(
            f'<div class="bar"><div class="lbl"><span>{escape(t.name)}</span>'
            f'<span class="sub">{escape(size)}</span></div>'
            f'<svg viewBox="0 0 100 10" preserveAspectRatio="none" width="100%" height="12">'
            f"<title>{escape(t.name)}: table {escape(human_bytes(t.table_bytes))}, "
            f"indexes {escape(human_bytes(t.index_bytes))}</title>"
            '<rect x="0" y="0" width="100" height="10" class="bg"/>'
            f'<rect x="0" y="0" width="{heap:.2f}" height="10" class="heap"/>'
            f'<rect x="{heap:.2f}" y="0" width="{index:.2f}" height="10" class="idx"/></svg></div>'
        )
    legend = (
        '<p class="legend"><span class="sw" style="background:var(--bar)"></span> table '
        '<span class="sw" style="background:var(--bar2)"></span> indexes · database '
        f"{escape(human_bytes(stats.database_bytes))}</p>"
    )
    return f'<div role="img" aria-label="table sizes" class="chart">{"".join(rows)}</div>{legend}'


def _statements(snap: Snapshot) -> str:
    top = snap.stats.top_statements if snap.stats else None
    if top is None:
        return _empty("no statistics yet")
    if not top.available:
        return _empty(top.note or "pg_stat_statements is not available")
    if not top.statements:
        return _empty("no statements recorded yet")
    ranked = sorted(top.statements, key=lambda s: s.mean_ms, reverse=True)
    # The statement gets a row of its own under its numbers: readable at a phone's width too.
    rows = "".join(
        f'<tr class="nums"><td class="n">{s.mean_ms:,.2f}</td><td class="n">{s.max_ms:,.1f}</td>'
        f'<td class="n">{s.calls:,}</td><td class="n">{s.total_ms:,.0f}</td><td class="n">'
        f'{s.rows:,}</td></tr><tr><td colspan="5"><code>{escape(s.query)}</code></td></tr>'
        for s in ranked
    )
    return (
        '<div class="scroll"><table class="stmts"><tr><th class="n">mean ms</th>'
        '<th class="n">max ms</th><th class="n">calls</th><th class="n">total ms</th>'
        f'<th class="n">rows</th></tr>{rows}</table></div>'
    )


def _indexes(snap: Snapshot) -> str:
    if snap.stats is None:
        return _empty("no statistics yet")
    report = snap.stats.indexes
    plain = [i for i in report.unused if not (i.unique or i.primary)]
    enforcing = len(report.unused) - len(plain)
    parts = [
        f"<p>{len(plain)} never-scanned indexes that enforce nothing "
        f'<span class="none">({enforcing} more enforce a unique or primary key)</span></p>'
    ]
    if plain:
        rows = "".join(
            f"<tr><td>{escape(i.table)}</td><td><code>{escape(i.index)}</code></td>"
            f'<td class="n">{escape(human_bytes(i.size_bytes))}</td></tr>'
            for i in plain
        )
        parts.append(
            '<div class="scroll"><table><tr><th>table</th><th>unused index</th>'
            f'<th class="n">size</th></tr>{rows}</table></div>'
        )
    if report.duplicates:
        rows = "".join(
            f"<tr><td>{escape(d.table)}</td><td><code>{escape(', '.join(d.indexes))}</code></td>"
            f"<td>{escape(', '.join(d.columns))}</td></tr>"
            for d in report.duplicates
        )
        parts.append(
            '<div class="scroll"><table><tr><th>table</th><th>duplicate indexes</th>'
            f"<th>columns</th></tr>{rows}</table></div>"
        )
    else:
        parts.append('<p class="none">no duplicate indexes</p>')
    return "".join(parts)


def _vacuum(snap: Snapshot, now: datetime) -> str:
    if snap.stats is None or not snap.stats.tables:
        return _empty("no statistics yet")
    tables = sorted(snap.stats.tables.values(), key=lambda t: t.dead_tuples, reverse=True)
    rows = []
    for t in tables:
        total = t.live_tuples + t.dead_tuples
        share = t.dead_tuples / total if total else 0.0
        vacuumed = max((v for v in (t.last_vacuum, t.last_autovacuum) if v), default=None)
        analyzed = max((v for v in (t.last_analyze, t.last_autoanalyze) if v), default=None)
        rows.append(
            f'<tr><td>{escape(t.name)}</td><td class="n">{t.live_tuples:,}</td>'
            f'<td class="n">{t.dead_tuples:,}</td><td class="n">{share:.0%}</td>'
            f"<td>{escape(_ago(vacuumed, now))}</td><td>{escape(_ago(analyzed, now))}</td></tr>"
        )
    return (
        '<div class="scroll"><table><tr><th>table</th><th class="n">live</th>'
        '<th class="n">dead</th><th class="n">dead %</th><th>vacuumed</th><th>analyzed</th></tr>'
        f"{''.join(rows)}</table></div>"
    )


def _backups(snap: Snapshot, now: datetime) -> str:
    parts: list[str] = []
    for op in ("backup", "restore"):
        run = snap.last_runs.get(op)
        if run is None:
            parts.append(f'<p>last {op}: <span class="none">none recorded</span></p>')
            continue
        took = f", {run.duration_s:.1f} s" if run.duration_s is not None else ""
        parts.append(
            f"<p>last {op}: {_badge(run.ok, labels=('OK', 'FAILED'))} "
            f"{escape(_ago(run.at, now))}{escape(took)} "
            f'<span class="none">{escape(run.detail)}</span></p>'
        )
    if snap.backups_error:
        parts.append(_empty(snap.backups_error))
    elif not snap.backups:
        parts.append(_empty("no backups in BACKUP_DIR; run `pokervod-db backup`"))
    else:
        rows = []
        for b in snap.backups[:10]:
            if b.problem:
                state = f'<span class="badge bad">INCOMPLETE</span> {escape(b.problem)}'
            elif b.verified_ok is None:
                state = '<span class="badge warn">UNVERIFIED</span>'
            else:
                state = _badge(b.verified_ok, labels=("VERIFIED", "FAILED"))
            rows.append(
                f"<tr><td><code>{escape(b.name)}</code></td>"
                f"<td>{escape(_ago(b.started_at, now))}</td>"
                f'<td class="n">{escape(human_bytes(b.size_bytes))}</td><td>{state}</td></tr>'
            )
        parts.append(
            '<div class="scroll"><table><tr><th>backup</th><th>taken</th><th class="n">size</th>'
            f"<th>verified</th></tr>{''.join(rows)}</table></div>"
        )
    return "".join(parts)


def _events(snap: Snapshot, now: datetime) -> str:
    if not snap.newest_events:
        return _empty("no events stored")
    rows = []
    for e in snap.newest_events:
        payload = json.dumps(e.payload, ensure_ascii=False, default=str)
        if len(payload) > 160:
            payload = payload[:159] + "…"
        rows.append(
            f'<tr><td class="n">{e.id}</td><td>{escape(_ago(e.timestamp, now))}</td>'
            f"<td><code>{escape(str(e.type))}</code></td><td>{escape(e.source_block)}</td>"
            f"<td><code>{escape(payload)}</code></td></tr>"
        )
    return (
        '<div class="scroll"><table><tr><th class="n">id</th><th>when</th><th>type</th>'
        f"<th>block</th><th>payload</th></tr>{''.join(rows)}</table></div>"
    )


def render_page(snap: Snapshot, *, database: str) -> str:
    """The whole status page for ``snap`` (``database`` is the masked URL)."""
    now = datetime.now(UTC)
    health = snap.health
    if health is None:
        overall = '<span class="badge warn">CHECKING</span>'
    elif health.healthy:
        overall = '<span class="badge ok">HEALTHY</span>'
    else:
        overall = '<span class="badge bad">UNHEALTHY</span>'
    collected = (
        f"collected {escape(_ago(snap.collected_at, now))} in {snap.duration_s:.2f} s"
        if snap.collected_at
        else "first collection running"
    )
    problems = "".join(f"<li>{escape(p)}</li>" for p in snap.errors)
    problem_list = (
        f'<section class="wide"><h2>Collector problems</h2><ul>{problems}</ul></section>'
        if problems
        else ""
    )

    def section(ident: str, title: str, body: str, *, wide: bool = False) -> str:
        css = ' class="wide"' if wide else ""
        return f'<section id="{ident}"{css}><h2>{escape(title)}</h2>{body}</section>'

    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        f"<title>pokervod-db status</title><style>{_CSS}</style></head><body>"
        f"<header><h1>pokervod-db</h1>{overall}"
        f'<span class="meta">{escape(database)}</span>'
        f'<span class="meta">{collected}; refreshes every {REFRESH_S} s</span></header><main>'
        f"{problem_list}"
        + section("health", "Health checks", _health(snap))
        + section("tables", "Table sizes", table_chart(snap))
        + section("statements", "Slowest statements", _statements(snap), wide=True)
        + section("indexes", "Unused and duplicate indexes", _indexes(snap))
        + section("vacuum", "Vacuum and dead tuples", _vacuum(snap, now))
        + section("backups", "Backups", _backups(snap, now))
        + section("events", "Newest events", _events(snap, now), wide=True)
        + "</main></body></html>"
    )
