"""The Markdown summary of a benchmark run (the table the results README and issue quote)."""

from __future__ import annotations

from typing import Any

from benchmarks import search_quality


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
    ing = r["ingest"]
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
    lines += [
        f"| database size | – | {r['database_size']} | – | – |",
        "",
        "PostgreSQL settings: "
        + ", ".join(f"{k}={v}" for k, v in r["postgres"]["settings"].items()),
        "",
    ]
    if "search_quality" in r:
        lines += search_quality.markdown(r["search_quality"])
    return "\n".join(lines)
