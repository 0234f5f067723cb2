"""The Markdown summary of a benchmark run (the table the results README and issue quote)."""

from __future__ import annotations

from typing import Any

from benchmarks import events_load, search_quality, soak


def _mark(met: bool | None) -> str:
    return "–" if met is None else ("yes" if met else "**no**")


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark `{r['scale']}` — {r['started_at'][:19]}Z",
        "",
        f"PostgreSQL: {r['postgres']['version']}  ",
        f"Machine: {r['machine']['cpus']} CPUs, Python {r['machine']['python']}, "
        f"{r['machine']['platform']}  ",
        f"Database size: {r['database_size']}; generation "
        + (
            "reused"
            if r["generation"]["reused"]
            else f"{r['generation']['timings_s']['total']:.0f} s"
        )
        + f"; whole run {r['duration_s']:.0f} s  ",
        "Rows: " + ", ".join(f"{k} {v:,}" for k, v in r["counts"].items()),
        "",
        "## Read queries",
        "",
        "| query | runs | p50 ms | p95 ms | p99 ms | target p95 | met |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for name, q in r["reads"].items():
        target = "–" if q["target_p95_ms"] is None else f"< {q['target_p95_ms']:g} ms"
        lines.append(
            f"| {name} | {q['runs']} | {q['p50_ms']:.2f} | {q['p95_ms']:.2f} | {q['p99_ms']:.2f} "
            f"| {target} | {_mark(q['met'])} |"
        )
    lines += request_path_lines(r)
    ing = r["ingest"]
    if "fresh_nas_files" not in ing:
        lines += ["", f"Ingest: {ing.get('skipped')}", ""]
        return "\n".join(lines)
    fresh = ing["fresh_nas_files"]
    orm = ing["orm_add_all_nas_files"]
    lines += [
        "",
        "## Ingest",
        "",
        "| path | rows | rows/s | vs raw COPY | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
        f"| raw binary COPY into nas_files | {fresh['rows']:,} | {fresh['raw_copy_rows_per_s']:,} "
        "| 1.00 | – | – |",
        f"| upsert_nas_files, fresh rows | {fresh['rows']:,} | {fresh['upsert_rows_per_s']:,} "
        f"| {fresh['ratio']:.2f} | ≥ 0.70 | {_mark(fresh['met'])} |",
        f"| ORM add_all + flush | {orm['rows']:,} | {orm['rows_per_s']:,} "
        f"| {orm['ratio_to_raw_copy']:.3f} | – | – |",
    ]
    for name, p in ing["other_paths"].items():
        lines.append(
            f"| upsert {name}, fresh rows | {p['rows']:,} | {p['rows_per_s']:,} | – | – | – |"
        )
    if "reupsert_nas_files" in ing:
        re_ = ing["reupsert_nas_files"]
        lines.append(
            f"| re-upsert nas_files, {re_['changed']:,} of {re_['rows']:,} changed "
            f"| {re_['rows']:,} | {re_['rows_per_s']:,} | {re_['seconds']:.2f} s "
            f"| < 6 s | {_mark(re_['met'])} |"
        )
    mig = r["migration"]
    if "median_s" not in mig:
        lines += ["", f"Operations: {mig.get('skipped')}", ""]
        return "\n".join(lines)
    lines += [
        "",
        "## Operations",
        "",
        "| operation | time | size | target | met |",
        "|---|---:|---:|---:|:---:|",
        f"| `pokervod-db upgrade head`, empty → head (whole process, median of "
        f"{len(mig['process_s'])}) | {mig['median_s']:.2f} s | – | < 2 s | {_mark(mig['met'])} |",
        f"| the same in-process (DDL and Alembic only) | {mig['in_process_s']:.2f} s | – | – | – |",
    ]
    br = r["backup_restore"]
    if "bare" in br:
        bare = br["bare"]
        lines += [
            f"| bare `pg_dump -Fc` | {bare['backup_s']:.1f} s | {_mb(bare['archive_bytes'])} | – | – |",
            f"| bare `pg_restore --single-transaction` | {bare['restore_s']:.1f} s | – | – | – |",
        ]
        pkg = br["package"]
        if "backup_s" in pkg:
            met = pkg["met"]
            lines += [
                f"| pokervod_db.backup ({pkg.get('compression')}) | {pkg['backup_s']:.1f} s "
                f"({pkg['backup_ratio_to_bare']:.2f}× bare) | {_mb(pkg['archive_bytes'])} "
                f"({pkg['size_ratio_to_bare']:.2f}×) | < 15 s, ≤ bare size "
                f"| {_mark(met['backup_under_15_s'] and met['archive_not_larger_than_bare'])} |",
                f"| pokervod_db restore | {pkg['restore_s']:.1f} s "
                f"({pkg['restore_ratio_to_bare']:.2f}× bare) | – | < 45 s "
                f"| {_mark(met['restore_under_45_s'])} |",
            ]
        else:
            lines.append(f"| pokervod_db.backup | {pkg.get('skipped')} | – | – | – |")
    else:
        lines.append(f"| backup/restore | {br.get('skipped')} | – | – | – |")
    lines += physical_rows(r)
    events = r.get("events") or {}
    events_section = events_load.markdown_lines(events) if "runs" in events else []
    if "operations" in (r.get("soak") or {}):
        events_section += soak.markdown_lines(r["soak"])
    lines += [
        f"| database size | – | {r['database_size']} | – | – |",
        "",
        "PostgreSQL settings: "
        + ", ".join(f"{k}={v}" for k, v in r["postgres"]["settings"].items()),
        "",
        *events_section,
    ]
    if "search_quality" in r:
        lines += search_quality.markdown(r["search_quality"])
    return "\n".join(lines)


def request_path_lines(r: dict[str, Any]) -> list[str]:
    """The package against the same SQL on bare asyncpg, sequential and concurrent."""
    rp = r.get("request_path") or {}
    lines: list[str] = []
    if "reads" in rp:
        lines += [
            "",
            "## Request path: package vs the same SQL on bare asyncpg (same transaction shape)",
            "",
            "Package = the lean form (`database.reader()`) where the read has one, else the "
            "session form; session = `async with factory() as s, s.begin()` vs its own replay.",
            "",
            "| read | form | statements | package p50 ms | bare p50 ms | ratio | target | met "
            "| session p50 ms (ratio) |",
            "|---|---|---:|---:|---:|---:|---:|:---:|---:|",
        ]
        for name, x in rp["reads"].items():
            form = x.get("form", "session") + (" + txn" if x.get("transaction") else "")
            session = (
                f"{x['session_p50_ms']:.3f} ({x['session_ratio']:.2f}×)"
                if x.get("session_ratio") is not None
                else "–"
            )
            lines.append(
                f"| {name} | {form} | {x['statements']} | {x['package_p50_ms']:.3f} "
                f"| {x['bare_p50_ms']:.3f} | {x['ratio']:.2f}× | ≤ {x['target_ratio']:g}× "
                f"| {_mark(x['met'])} | {session} |"
            )
    tp = r.get("throughput") or {}
    if "ratio" in tp:
        lines += [
            "",
            "| concurrent reads | clients | package reads/s | bare asyncpg reads/s | ratio "
            "| target | met |",
            "|---|---:|---:|---:|---:|---:|:---:|",
            f"| {', '.join(tp['mix'])} for {tp['seconds']:g} s, pool {tp['pool_size']} "
            f"| {tp['clients']} | {tp['api_reads_per_s']:,.0f} | {tp['raw_reads_per_s']:,.0f} "
            f"| {tp['ratio']:.2f} | ≥ {tp['target_ratio']:g} | {_mark(tp['met'])} |",
        ]
    return lines


def physical_rows(r: dict[str, Any]) -> list[str]:
    """Rows of the physical backup/restore and the replica lag (benchmarks/physical.py)."""
    rows: list[str] = []
    phys = r.get("physical")
    if phys and "backup_s" in phys:
        rows += [
            f"| physical base backup (whole server) + pg_verifybackup | {phys['backup_s']:.1f} s "
            f"+ {phys['verify_s']:.1f} s | {_mb(phys['backup_bytes'])} | – | – |",
            f"| physical restore (combine, recover, start, check) | {phys['restore_s']:.1f} s "
            "| – | – | – |",
        ]
    elif phys:
        rows.append(f"| physical backup/restore | {phys.get('skipped')} | – | – | – |")
    lag = r.get("replica_lag")
    if lag and "samples" in lag:
        worst = "–" if lag["max_lag_s"] is None else f"{lag['max_lag_s']:.2f} s"
        rows.append(
            f"| replica replay lag during ingest (max; {lag['samples']} samples) | {worst} "
            f"| {_mb(lag['max_bytes_behind'] or 0)} behind at most | – | – |"
        )
    elif lag:
        rows.append(f"| replica lag | {lag.get('skipped')} | – | – | – |")
    return rows
